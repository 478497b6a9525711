//! The split virtqueue, seen from the device.
//!
//! A virtqueue is how a virtio driver hands buffers to a device. In the split layout it is three
//! areas of guest RAM, each written by one side only:
//!
//! ```text
//!  descriptor table (driver writes)      available ring (driver writes)   used ring (device writes)
//!  ┌──────┬─────┬───────┬──────┐         ┌───────┬─────┬─────────────┐   ┌───────┬─────┬──────────────────┐
//!  │ addr │ len │ flags │ next │ × size  │ flags │ idx │ ring[size]  │   │ flags │ idx │ ring[size]:      │
//!  └──────┴─────┴───────┴──────┘         └───────┴─────┴─────────────┘   │       │     │   {id, len}      │
//!   one guest buffer each; NEXT           heads of chains the driver      └───────┴─────┴──────────────────┘
//!   chains them into a request            offers, `idx` counts them        heads the device is done with
//! ```
//!
//! The driver fills descriptors, writes the head of the chain into the available ring, bumps
//! `avail.idx` and notifies the device. The device ([`Queue::pop`]) follows the chain, does the
//! work, writes `{head, bytes written}` into the used ring and bumps `used.idx`
//! ([`Queue::add_used`]), then interrupts the driver if it wants to be told
//! ([`Queue::needs_notification`]).
//!
//! Every number in these areas is written by the guest: an index, a length, an address or a
//! flag can be anything, at any time. So nothing is trusted: the rings are checked against guest
//! RAM when the driver enables the queue, every descriptor is checked before its buffer is
//! handed to the device, chains that loop or never end are refused, and all arithmetic on guest
//! numbers is checked. A malformed chain is a [`QueueError`], never a hang or a panic.
//!
//! This is the split layout only: packed virtqueues (`VIRTIO_F_RING_PACKED`) and
//! `VIRTIO_F_EVENT_IDX` are not offered, so the driver never uses them. Indirect descriptor
//! tables ([`VIRTIO_RING_F_INDIRECT_DESC`]) are supported.
//!
//! The rings and [`Queue`] are here; following a descriptor chain is in `chain.rs`
//! ([`DescriptorChain`]), reading and writing its buffers as one byte stream in `cursor.rs`
//! ([`BufferCursor`]), and the guest's mistakes in `error.rs` ([`QueueError`]).
//!
//! # Resources
//! - Virtio 1.2, §2.7 "Split Virtqueues" (§2.6 in 1.1), and in it §2.7.5 "The Virtqueue
//!   Descriptor Table", §2.7.5.3 "Indirect Descriptors", §2.7.6 "The Virtqueue Available Ring",
//!   §2.7.8 "The Virtqueue Used Ring":
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.
//! - The driver side, to see what the device must cope with: Linux
//!   `drivers/virtio/virtio_ring.c` (`virtqueue_add_split`, `virtqueue_kick_prepare_split`).
//! - Firecracker `src/vmm/src/devices/virtio/queue.rs`, a device-side queue in Rust.

use std::sync::atomic::{fence, Ordering};

use stage02::memory::{GuestAddress, GuestMemory};

mod chain;
mod cursor;
mod error;
#[cfg(test)]
mod tests;

pub use chain::{
    Descriptor, DescriptorChain, DESCRIPTOR_SIZE, DESC_ADDR_OFFSET, DESC_FLAGS_OFFSET, DESC_LEN_OFFSET,
    DESC_NEXT_OFFSET, MAX_CHAIN_BYTES, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
pub use cursor::BufferCursor;
pub use error::{QueueArea, QueueError};

/// Feature bit 28, `VIRTIO_F_INDIRECT_DESC` (§6 "Reserved Feature Bits"): the driver may put a
/// descriptor with [`VIRTQ_DESC_F_INDIRECT`] in a chain, pointing at a table of descriptors.
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;

/// The largest queue size this device side accepts (the spec allows up to 32768).
///
/// It bounds every chain walk: a chain has at most this many descriptors, and an indirect table
/// at most this many entries.
pub const MAX_QUEUE_SIZE: u16 = 256;

/// Available ring flag `VIRTQ_AVAIL_F_NO_INTERRUPT`: the driver asks not to be interrupted when
/// buffers are used (a hint: "the device SHOULD NOT send a notification").
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Offset of `flags` in both rings (`struct virtq_avail`, `struct virtq_used`).
pub const RING_FLAGS_OFFSET: u64 = 0;
/// Offset of `idx` in both rings: a free-running 16-bit count of entries ever added.
pub const RING_IDX_OFFSET: u64 = 2;
/// Offset of `ring[0]` in both rings.
pub const RING_ENTRIES_OFFSET: u64 = 4;
/// Size of one available ring entry: `le16`, the index of a chain's head descriptor.
pub const AVAIL_ELEMENT_SIZE: u64 = 2;
/// Size of one used ring entry, `struct virtq_used_elem`: `le32 id` (the head), `le32 len`.
pub const USED_ELEMENT_SIZE: u64 = 8;
/// The `le16` after each ring's entries (`used_event`, `avail_event`): only for
/// `VIRTIO_F_EVENT_IDX`, which we do not offer, but the driver allocates it and we check it.
pub const RING_EVENT_SIZE: u64 = 2;

/// Alignment of the descriptor table (§2.7 "Virtqueue Part / Alignment").
pub const DESC_TABLE_ALIGN: u64 = 16;
/// Alignment of the available ring.
pub const AVAIL_RING_ALIGN: u64 = 2;
/// Alignment of the used ring.
pub const USED_RING_ALIGN: u64 = 4;

/// One split virtqueue as the device sees it: the registers the driver programs through the
/// transport, and the device's two cursors into the rings.
///
/// The transport sets the size and the three addresses while the queue is not ready, then calls
/// [`Queue::enable`] when the driver writes 1 to `QueueReady`; the setters are ignored while the
/// queue is ready, so a ready queue always has checked areas. The device then calls
/// [`Queue::pop`] and [`Queue::add_used`].
#[derive(Debug, Clone)]
pub struct Queue {
    max_size: u16,
    size: u16,
    ready: bool,
    desc_table: GuestAddress,
    avail_ring: GuestAddress,
    used_ring: GuestAddress,
    /// Free-running index of the next available ring entry to read.
    next_avail: u16,
    /// Free-running index of the next used ring entry to write (what `used.idx` says).
    next_used: u16,
    /// Whether `VIRTIO_F_INDIRECT_DESC` was negotiated.
    indirect_desc: bool,
}

impl Queue {
    /// A queue of at most `max_size` entries (`QueueNumMax`), in its reset state.
    ///
    /// `max_size` should be a power of two no larger than [`MAX_QUEUE_SIZE`]; the transport
    /// checks this when it is built.
    pub fn new(max_size: u16) -> Self {
        Queue {
            max_size,
            size: max_size,
            ready: false,
            desc_table: GuestAddress(0),
            avail_ring: GuestAddress(0),
            used_ring: GuestAddress(0),
            next_avail: 0,
            next_used: 0,
            indirect_desc: false,
        }
    }

    /// Back to the state after [`Queue::new`]: not ready, addresses zero, size at the maximum
    /// (as PCI's `queue_size` reads after reset; MMIO drivers always write `QueueNum` anyway).
    pub fn reset(&mut self) {
        *self = Queue::new(self.max_size);
    }

    /// `QueueNumMax`: the largest size the device accepts.
    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    /// `QueueNum`: the size the driver chose.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// `QueueReady`: whether the driver enabled the queue and its areas passed the checks.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Guest address of the descriptor table.
    pub fn desc_table(&self) -> GuestAddress {
        self.desc_table
    }

    /// Guest address of the available ring.
    pub fn avail_ring(&self) -> GuestAddress {
        self.avail_ring
    }

    /// Guest address of the used ring.
    pub fn used_ring(&self) -> GuestAddress {
        self.used_ring
    }

    /// The device's cursor into the available ring (free-running).
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// The device's cursor into the used ring (free-running; equals `used.idx`).
    pub fn next_used(&self) -> u16 {
        self.next_used
    }

    /// Sets `QueueNum`; ignored while the queue is ready. Checked by [`Queue::enable`].
    pub fn set_size(&mut self, size: u16) {
        if !self.ready {
            self.size = size;
        }
    }

    /// Sets the descriptor table address; ignored while the queue is ready.
    pub fn set_desc_table(&mut self, addr: GuestAddress) {
        if !self.ready {
            self.desc_table = addr;
        }
    }

    /// Sets the available ring address; ignored while the queue is ready.
    pub fn set_avail_ring(&mut self, addr: GuestAddress) {
        if !self.ready {
            self.avail_ring = addr;
        }
    }

    /// Sets the used ring address; ignored while the queue is ready.
    pub fn set_used_ring(&mut self, addr: GuestAddress) {
        if !self.ready {
            self.used_ring = addr;
        }
    }

    /// The driver wrote 1 to `QueueReady`: checks the size and the three areas, then starts
    /// reading the rings from their beginning.
    ///
    /// `driver_features` are the features the driver accepted (it sets up queues after
    /// `FEATURES_OK`, so they are final): they say whether indirect descriptors may appear.
    ///
    /// # Errors
    /// [`QueueError::BadSize`], [`QueueError::Misaligned`] or [`QueueError::AreaOutsideRam`];
    /// the queue stays not ready.
    pub fn enable(&mut self, mem: &GuestMemory, driver_features: u64) -> Result<(), QueueError> {
        let size = self.size;
        if !size.is_power_of_two() || size > self.max_size {
            return Err(QueueError::BadSize { size, max: self.max_size });
        }
        let entries = u64::from(size);
        let areas = [
            (QueueArea::DescriptorTable, self.desc_table, DESC_TABLE_ALIGN, DESCRIPTOR_SIZE * entries),
            (
                QueueArea::AvailableRing,
                self.avail_ring,
                AVAIL_RING_ALIGN,
                RING_ENTRIES_OFFSET + AVAIL_ELEMENT_SIZE * entries + RING_EVENT_SIZE,
            ),
            (
                QueueArea::UsedRing,
                self.used_ring,
                USED_RING_ALIGN,
                RING_ENTRIES_OFFSET + USED_ELEMENT_SIZE * entries + RING_EVENT_SIZE,
            ),
        ];
        for (area, addr, align, len) in areas {
            if addr.0 % align != 0 {
                return Err(QueueError::Misaligned { area, addr, align });
            }
            // At most 6 + 8 * 256 bytes: the cast cannot truncate.
            if !mem.contains_range(addr, len as usize) {
                return Err(QueueError::AreaOutsideRam { area, addr, len });
            }
        }
        self.indirect_desc = driver_features & (1 << VIRTIO_RING_F_INDIRECT_DESC) != 0;
        self.next_avail = 0;
        self.next_used = 0;
        self.ready = true;
        Ok(())
    }

    /// The driver wrote 0 to `QueueReady`: the device stops touching the rings.
    pub fn disable(&mut self) {
        self.ready = false;
    }

    // qa:begin stage6-avail-ring
    /// How many chains the driver has made available that the device has not popped yet.
    ///
    /// # Errors
    /// As for [`Queue::pop`]'s ring errors.
    pub fn pending(&self, mem: &GuestMemory) -> Result<u16, QueueError> {
        if !self.ready {
            return Err(QueueError::NotReady);
        }
        let avail_idx = self.read_ring_u16(mem, QueueArea::AvailableRing, self.avail_ring, RING_IDX_OFFSET)?;
        self.pending_since(avail_idx)
    }

    /// Takes the next chain the driver made available, if any.
    ///
    /// - `None`: nothing new (or the queue is not ready).
    /// - `Some(Ok(chain))`: a checked chain; the device owes the driver `add_used(chain.head(), n)`.
    /// - `Some(Err(e))`: a guest error. If [`QueueError::head`] is `Some`, the entry was consumed
    ///   and the chain is malformed: return it with `add_used(head, 0)`. If
    ///   [`QueueError::stops_queue`], nothing was consumed: stop popping until the next
    ///   notification.
    pub fn pop(&mut self, mem: &GuestMemory) -> Option<Result<DescriptorChain, QueueError>> {
        let pending = match self.pending(mem) {
            Ok(0) | Err(QueueError::NotReady) => return None,
            Ok(pending) => pending,
            Err(error) => return Some(Err(error)),
        };
        debug_assert!(pending <= self.size);
        // The driver writes the ring entry, then (after a write barrier) `idx`. We read `idx`
        // first; this fence keeps the entry read below from being done before it.
        fence(Ordering::Acquire);
        // `size` is a power of two, so the free-running index wraps onto the ring exactly.
        let slot = self.next_avail % self.size;
        let offset = RING_ENTRIES_OFFSET + AVAIL_ELEMENT_SIZE * u64::from(slot);
        let head = match self.read_ring_u16(mem, QueueArea::AvailableRing, self.avail_ring, offset) {
            Ok(head) => head,
            Err(error) => return Some(Err(error)),
        };
        self.next_avail = self.next_avail.wrapping_add(1);
        Some(self.walk_chain(mem, head))
    }

    /// How far `avail.idx` is ahead of the device, checked against the queue size.
    fn pending_since(&self, avail_idx: u16) -> Result<u16, QueueError> {
        // Both indices count entries ever added, modulo 2^16: after 65535 comes 0. The
        // difference in wrapping arithmetic is the number of new entries even across the wrap
        // (avail.idx 2, next_avail 65534: 4 new entries).
        let pending = avail_idx.wrapping_sub(self.next_avail);
        // The driver cannot have more than `size` chains outstanding: a larger jump means
        // `avail.idx` is garbage, and the entries it claims would be stale ring slots.
        if pending > self.size {
            return Err(QueueError::AvailIdxJump { next_avail: self.next_avail, avail_idx, size: self.size });
        }
        Ok(pending)
    }
    // qa:end stage6-avail-ring

    // qa:begin stage6-add-used
    /// Returns chain `head` to the driver, saying the device wrote `len` bytes into its
    /// device-writable buffers, and publishes it by bumping `used.idx`.
    ///
    /// # Errors
    /// [`QueueError::NotReady`], [`QueueError::HeadOutOfRange`] (a device bug: heads come from
    /// [`Queue::pop`]), or [`QueueError::RingAccess`] if the used ring cannot be written, which
    /// the checks in [`Queue::enable`] rule out.
    pub fn add_used(&mut self, mem: &GuestMemory, head: u16, len: u32) -> Result<(), QueueError> {
        if !self.ready {
            return Err(QueueError::NotReady);
        }
        if head >= self.size {
            return Err(QueueError::HeadOutOfRange { head, size: self.size });
        }
        let slot = self.next_used % self.size;
        let element = RING_ENTRIES_OFFSET + USED_ELEMENT_SIZE * u64::from(slot);
        self.write_ring(mem, element, u32::from(head).to_le())?;
        self.write_ring(mem, element + 4, len.to_le())?;
        self.next_used = self.next_used.wrapping_add(1);
        // The driver reads `used.idx`, then the element: the element must be visible first.
        // (x86 keeps stores in order anyway; the fence also stops the compiler reordering.)
        fence(Ordering::Release);
        self.write_ring(mem, RING_IDX_OFFSET, self.next_used.to_le())
    }
    // qa:end stage6-add-used

    /// Whether the driver wants an interrupt for the buffers just used: not if it set
    /// [`VIRTQ_AVAIL_F_NO_INTERRUPT`] (it is polling the used ring, e.g. in its interrupt
    /// handler's loop).
    ///
    /// Call after [`Queue::add_used`]. The driver clears the flag, then re-reads `used.idx`; we
    /// wrote `used.idx`, then read the flag. A full fence between our store and our load makes
    /// sure that at least one side sees the other's write, so no completion is ever missed.
    ///
    /// # Errors
    /// [`QueueError::NotReady`], or [`QueueError::RingAccess`] (ruled out by [`Queue::enable`]).
    pub fn needs_notification(&self, mem: &GuestMemory) -> Result<bool, QueueError> {
        if !self.ready {
            return Err(QueueError::NotReady);
        }
        fence(Ordering::SeqCst);
        let flags = self.read_ring_u16(mem, QueueArea::AvailableRing, self.avail_ring, RING_FLAGS_OFFSET)?;
        Ok(flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
    }

    fn read_ring_u16(
        &self,
        mem: &GuestMemory,
        area: QueueArea,
        base: GuestAddress,
        offset: u64,
    ) -> Result<u16, QueueError> {
        let addr = base.checked_add(offset).unwrap_or(GuestAddress(u64::MAX));
        mem.read_obj::<u16>(addr).map(u16::from_le).map_err(|source| QueueError::RingAccess { area, source })
    }

    fn write_ring<T: stage02::memory::ByteValued>(
        &self,
        mem: &GuestMemory,
        offset: u64,
        value: T,
    ) -> Result<(), QueueError> {
        let addr = self.used_ring.checked_add(offset).unwrap_or(GuestAddress(u64::MAX));
        mem.write_obj(addr, value).map_err(|source| QueueError::RingAccess { area: QueueArea::UsedRing, source })
    }
}
