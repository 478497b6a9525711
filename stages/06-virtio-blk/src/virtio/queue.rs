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
//! # Resources
//! - Virtio 1.2, §2.7 "Split Virtqueues" (§2.6 in 1.1), and in it §2.7.5 "The Virtqueue
//!   Descriptor Table", §2.7.5.3 "Indirect Descriptors", §2.7.6 "The Virtqueue Available Ring",
//!   §2.7.8 "The Virtqueue Used Ring":
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.
//! - The driver side, to see what the device must cope with: Linux
//!   `drivers/virtio/virtio_ring.c` (`virtqueue_add_split`, `virtqueue_kick_prepare_split`).
//! - Firecracker `src/vmm/src/devices/virtio/queue.rs`, a device-side queue in Rust.

use std::fmt;
use std::sync::atomic::{fence, Ordering};

use stage02::memory::{GuestAddress, GuestMemory, MemoryError};

/// Feature bit 28, `VIRTIO_F_INDIRECT_DESC` (§6 "Reserved Feature Bits"): the driver may put a
/// descriptor with [`VIRTQ_DESC_F_INDIRECT`] in a chain, pointing at a table of descriptors.
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;

/// The largest queue size this device side accepts (the spec allows up to 32768).
///
/// It bounds every chain walk: a chain has at most this many descriptors, and an indirect table
/// at most this many entries.
pub const MAX_QUEUE_SIZE: u16 = 256;

/// Size of one descriptor, `struct virtq_desc`: `le64 addr`, `le32 len`, `le16 flags`, `le16 next`.
pub const DESCRIPTOR_SIZE: u64 = 16;
/// Offset of `addr` in a descriptor: the guest-physical address of the buffer.
pub const DESC_ADDR_OFFSET: u64 = 0;
/// Offset of `len` in a descriptor: the buffer's length in bytes.
pub const DESC_LEN_OFFSET: u64 = 8;
/// Offset of `flags` in a descriptor.
pub const DESC_FLAGS_OFFSET: u64 = 12;
/// Offset of `next` in a descriptor: the index of the next descriptor if `VIRTQ_DESC_F_NEXT`.
pub const DESC_NEXT_OFFSET: u64 = 14;

/// Descriptor flag `VIRTQ_DESC_F_NEXT`: the chain continues at the descriptor named by `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag `VIRTQ_DESC_F_WRITE`: the buffer is device write-only (otherwise read-only).
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag `VIRTQ_DESC_F_INDIRECT`: the buffer is a table of descriptors (§2.7.5.3).
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;

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

/// Largest total length of a chain: "Drivers MUST NOT add a descriptor chain longer than 2^32
/// bytes in total". Used lengths are 32-bit, so this also keeps them exact.
pub const MAX_CHAIN_BYTES: u64 = u32::MAX as u64;

/// One of the three areas of a split virtqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueArea {
    /// The descriptor table ("Descriptor Area", `QueueDesc` on MMIO).
    DescriptorTable,
    /// The available ring ("Driver Area", `QueueDriver` on MMIO).
    AvailableRing,
    /// The used ring ("Device Area", `QueueDevice` on MMIO).
    UsedRing,
}

impl fmt::Display for QueueArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueueArea::DescriptorTable => "descriptor table",
            QueueArea::AvailableRing => "available ring",
            QueueArea::UsedRing => "used ring",
        })
    }
}

/// What the driver got wrong with a virtqueue, one variant per mistake.
///
/// The setup errors come from [`Queue::enable`]; the others from [`Queue::pop`], where
/// [`QueueError::head`] and [`QueueError::stops_queue`] tell the device what to do next.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// `QueueNum` is zero, not a power of two, or above `QueueNumMax`.
    #[error("queue size {size} is not a power of two between 1 and {max}")]
    BadSize {
        /// The size the driver wrote.
        size: u16,
        /// The device's maximum.
        max: u16,
    },
    /// A queue area does not start at a multiple of its alignment.
    #[error("{area} at {addr} is not aligned to {align} bytes")]
    Misaligned {
        /// Which area.
        area: QueueArea,
        /// Where the driver put it.
        addr: GuestAddress,
        /// The alignment the spec requires.
        align: u64,
    },
    /// A queue area is not entirely inside (one region of) guest RAM.
    #[error("{area} at {addr} ({len:#x} bytes) is not inside guest RAM")]
    AreaOutsideRam {
        /// Which area.
        area: QueueArea,
        /// Where the driver put it.
        addr: GuestAddress,
        /// Its size for the queue size in use.
        len: u64,
    },
    /// The queue was used before the driver enabled it (or after it disabled it).
    #[error("the queue is not ready")]
    NotReady,
    /// `avail.idx` moved further ahead of the device than there are ring entries.
    #[error("available ring index jumped from {next_avail} to {avail_idx}, more than the queue size {size}")]
    AvailIdxJump {
        /// The next entry the device would read.
        next_avail: u16,
        /// What the driver wrote in `avail.idx`.
        avail_idx: u16,
        /// The queue size.
        size: u16,
    },
    /// Guest memory refused an access to a ring that was checked when the queue was enabled.
    #[error("cannot access the {area}: {source}")]
    RingAccess {
        /// Which area.
        area: QueueArea,
        /// What guest memory said.
        source: MemoryError,
    },
    /// An available ring entry (or a used element) names a descriptor beyond the table.
    #[error("head descriptor {head} is outside a table of {size} descriptors")]
    HeadOutOfRange {
        /// The index found in the ring.
        head: u16,
        /// The queue size.
        size: u16,
    },
    /// A descriptor's `next` is beyond the table it is in.
    #[error("chain {head}: next descriptor {next} is outside a table of {table_len} descriptors")]
    NextOutOfRange {
        /// Head of the chain.
        head: u16,
        /// The bad `next`.
        next: u16,
        /// Entries in the table (the queue's, or an indirect one).
        table_len: u16,
    },
    /// Following `next` comes back to a descriptor already in the chain.
    #[error("chain {head} loops back to descriptor {index}")]
    DescriptorLoop {
        /// Head of the chain.
        head: u16,
        /// The descriptor seen twice.
        index: u16,
    },
    /// The chain has more descriptors than a chain may have.
    #[error("chain {head} is longer than {limit} descriptors")]
    ChainTooLong {
        /// Head of the chain.
        head: u16,
        /// The largest chain accepted.
        limit: u16,
    },
    /// The buffers of the chain add up to more than [`MAX_CHAIN_BYTES`].
    #[error("chain {head} describes more than 4 GiB of buffers")]
    ChainTooLarge {
        /// Head of the chain.
        head: u16,
    },
    /// A buffer is not entirely inside (one region of) guest RAM.
    #[error("chain {head}: buffer {addr}+{len:#x} is not inside guest RAM")]
    BufferOutsideRam {
        /// Head of the chain.
        head: u16,
        /// The buffer's address.
        addr: GuestAddress,
        /// Its length.
        len: u32,
    },
    /// A device-readable buffer comes after a device-writable one ("The driver MUST place any
    /// device-writable descriptor elements after any device-readable descriptor elements").
    #[error("chain {head}: a device-readable buffer follows a device-writable one")]
    ReadableAfterWritable {
        /// Head of the chain.
        head: u16,
    },
    /// `VIRTQ_DESC_F_INDIRECT` without `VIRTIO_F_INDIRECT_DESC` negotiated.
    #[error("chain {head}: indirect descriptor, but VIRTIO_F_INDIRECT_DESC was not negotiated")]
    IndirectNotNegotiated {
        /// Head of the chain.
        head: u16,
    },
    /// `VIRTQ_DESC_F_INDIRECT` inside an indirect table ("only one table per descriptor").
    #[error("chain {head}: an indirect table points to another indirect table")]
    NestedIndirect {
        /// Head of the chain.
        head: u16,
    },
    /// Both `VIRTQ_DESC_F_INDIRECT` and `VIRTQ_DESC_F_NEXT` ("The driver MUST NOT set both").
    #[error("chain {head}: an indirect descriptor also has VIRTQ_DESC_F_NEXT")]
    IndirectWithNext {
        /// Head of the chain.
        head: u16,
    },
    /// An indirect table whose length is zero, not a multiple of 16, or too large.
    #[error("chain {head}: indirect table of {len} bytes is not 1 to {max} descriptors of 16 bytes")]
    BadIndirectLength {
        /// Head of the chain.
        head: u16,
        /// The descriptor's `len`.
        len: u32,
        /// The most entries accepted.
        max: u16,
    },
    /// An indirect table not entirely inside (one region of) guest RAM.
    #[error("chain {head}: indirect table {addr}+{len:#x} is not inside guest RAM")]
    IndirectTableOutsideRam {
        /// Head of the chain.
        head: u16,
        /// The table's address.
        addr: GuestAddress,
        /// Its length in bytes.
        len: u32,
    },
}

impl QueueError {
    /// The head of the malformed chain this error is about, if the driver should get it back.
    ///
    /// [`Queue::pop`] has consumed that available ring entry; the device returns the chain with
    /// `add_used(head, 0)` so that the driver's descriptors are not lost.
    pub fn head(&self) -> Option<u16> {
        match *self {
            QueueError::NextOutOfRange { head, .. }
            | QueueError::DescriptorLoop { head, .. }
            | QueueError::ChainTooLong { head, .. }
            | QueueError::ChainTooLarge { head }
            | QueueError::BufferOutsideRam { head, .. }
            | QueueError::ReadableAfterWritable { head }
            | QueueError::IndirectNotNegotiated { head }
            | QueueError::NestedIndirect { head }
            | QueueError::IndirectWithNext { head }
            | QueueError::BadIndirectLength { head, .. }
            | QueueError::IndirectTableOutsideRam { head, .. } => Some(head),
            _ => None,
        }
    }

    /// Whether the device should stop popping: the ring itself is unusable for now.
    ///
    /// Nothing was consumed; another `pop` would only report the same thing. The device carries
    /// on at the next notification, when the driver may have put things right.
    pub fn stops_queue(&self) -> bool {
        matches!(self, QueueError::NotReady | QueueError::AvailIdxJump { .. } | QueueError::RingAccess { .. })
    }
}

/// One guest buffer of a chain, checked to be inside guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// Guest-physical address of the buffer.
    pub addr: GuestAddress,
    /// Its length in bytes.
    pub len: u32,
    /// Whether the device may write it (and must not read it); otherwise it may only read it.
    pub write_only: bool,
}

/// A request from the driver: the buffers of one descriptor chain, in order, every one of them
/// inside guest RAM, device-readable ones first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorChain {
    head: u16,
    descriptors: Vec<Descriptor>,
}

impl DescriptorChain {
    /// Index of the head descriptor: what [`Queue::add_used`] gives back to the driver.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// All buffers, in chain order (indirect tables already followed).
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.descriptors
    }

    /// The device-readable buffers (they come first).
    pub fn readable(&self) -> &[Descriptor] {
        &self.descriptors[..self.first_writable()]
    }

    /// The device-writable buffers (they come last).
    pub fn writable(&self) -> &[Descriptor] {
        &self.descriptors[self.first_writable()..]
    }

    fn first_writable(&self) -> usize {
        self.descriptors.iter().position(|d| d.write_only).unwrap_or(self.descriptors.len())
    }
}

impl<'a> IntoIterator for &'a DescriptorChain {
    type Item = &'a Descriptor;
    type IntoIter = std::slice::Iter<'a, Descriptor>;

    fn into_iter(self) -> Self::IntoIter {
        self.descriptors.iter()
    }
}

/// A descriptor as the driver wrote it, before any check.
#[derive(Debug, Clone, Copy)]
struct RawDescriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// Which descriptors of a table a chain walk has already visited (tables have at most 256).
#[derive(Default)]
struct Visited([u64; MAX_QUEUE_SIZE as usize / 64]);

impl Visited {
    /// Marks `index`; false if it was already marked (or cannot be tracked).
    fn insert(&mut self, index: u16) -> bool {
        let Some(word) = self.0.get_mut(usize::from(index / 64)) else { return false };
        let bit = 1u64 << (index % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }
}

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

    // lab:begin solution stage6-desc-chain "follow the descriptor chain from head and check every index, address and length the guest gave (indirect tables, loops, readable before writable)"
    /// Follows the chain that starts at descriptor `head` and checks every step: indices inside
    /// their table, no descriptor visited twice, buffers inside guest RAM, readable buffers
    /// before writable ones, at most one level of indirect table, and bounded length.
    fn walk_chain(&self, mem: &GuestMemory, head: u16) -> Result<DescriptorChain, QueueError> {
        if head >= self.size {
            return Err(QueueError::HeadOutOfRange { head, size: self.size });
        }
        // "A driver MUST NOT create a descriptor chain longer than the Queue Size of the
        // device": QueueNumMax, which also covers chains that continue in an indirect table.
        let limit = self.max_size;
        let mut descriptors: Vec<Descriptor> = Vec::new();
        let mut total_bytes = 0u64;
        // The table we are walking: the queue's own, or (at most once) an indirect one.
        let (mut table, mut table_len) = (self.desc_table, self.size);
        let mut in_indirect = false;
        let mut visited = Visited::default();
        let mut index = head;
        loop {
            // A table of n descriptors cannot hold a chain of more than n without a loop.
            if !visited.insert(index) {
                return Err(QueueError::DescriptorLoop { head, index });
            }
            let desc = read_descriptor(mem, table, index)?;

            if desc.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                if !self.indirect_desc {
                    return Err(QueueError::IndirectNotNegotiated { head });
                }
                if in_indirect {
                    return Err(QueueError::NestedIndirect { head });
                }
                if desc.flags & VIRTQ_DESC_F_NEXT != 0 {
                    return Err(QueueError::IndirectWithNext { head });
                }
                let entries = u64::from(desc.len) / DESCRIPTOR_SIZE;
                let bad_len = u64::from(desc.len) % DESCRIPTOR_SIZE != 0;
                if bad_len || entries == 0 || entries > u64::from(MAX_QUEUE_SIZE) {
                    return Err(QueueError::BadIndirectLength { head, len: desc.len, max: MAX_QUEUE_SIZE });
                }
                let addr = GuestAddress(desc.addr);
                if !mem.contains_range(addr, desc.len as usize) {
                    return Err(QueueError::IndirectTableOutsideRam { head, addr, len: desc.len });
                }
                // The write flag of this descriptor means nothing ("MUST ignore"): the chain
                // goes on at entry 0 of the table, and this descriptor is not a buffer.
                (table, table_len) = (addr, entries as u16);
                in_indirect = true;
                visited = Visited::default();
                index = 0;
                continue;
            }

            let buffer = Descriptor {
                addr: GuestAddress(desc.addr),
                len: desc.len,
                write_only: desc.flags & VIRTQ_DESC_F_WRITE != 0,
            };
            if !mem.contains_range(buffer.addr, buffer.len as usize) {
                return Err(QueueError::BufferOutsideRam { head, addr: buffer.addr, len: buffer.len });
            }
            if !buffer.write_only && descriptors.last().is_some_and(|d| d.write_only) {
                return Err(QueueError::ReadableAfterWritable { head });
            }
            total_bytes += u64::from(buffer.len);
            if total_bytes > MAX_CHAIN_BYTES {
                return Err(QueueError::ChainTooLarge { head });
            }
            if descriptors.len() >= usize::from(limit) {
                return Err(QueueError::ChainTooLong { head, limit });
            }
            descriptors.push(buffer);

            if desc.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(DescriptorChain { head, descriptors });
            }
            if desc.next >= table_len {
                return Err(QueueError::NextOutOfRange { head, next: desc.next, table_len });
            }
            index = desc.next;
        }
    }
    // lab:end

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

/// Reads descriptor `index` of the table at `table` (the index is already known to be inside
/// the table, and the table inside guest RAM).
fn read_descriptor(mem: &GuestMemory, table: GuestAddress, index: u16) -> Result<RawDescriptor, QueueError> {
    let area = QueueArea::DescriptorTable;
    let at = |offset: u64| {
        table
            .checked_add(u64::from(index) * DESCRIPTOR_SIZE + offset)
            .ok_or(MemoryError::OutOfRange { addr: table, len: usize::MAX })
    };
    let read = || -> Result<RawDescriptor, MemoryError> {
        Ok(RawDescriptor {
            addr: u64::from_le(mem.read_obj(at(DESC_ADDR_OFFSET)?)?),
            len: u32::from_le(mem.read_obj(at(DESC_LEN_OFFSET)?)?),
            flags: u16::from_le(mem.read_obj(at(DESC_FLAGS_OFFSET)?)?),
            next: u16::from_le(mem.read_obj(at(DESC_NEXT_OFFSET)?)?),
        })
    };
    read().map_err(|source| QueueError::RingAccess { area, source })
}

/// A cursor over guest buffers seen as one byte stream: the readable part of a chain, or the
/// writable part, possibly cut short with [`BufferCursor::limit`].
///
/// The buffers were checked by [`Queue::pop`], so copies only fail if guest memory changed
/// shape, which it does not; the errors are still passed on rather than assumed away.
pub struct BufferCursor<'a> {
    mem: &'a GuestMemory,
    buffers: &'a [Descriptor],
    /// Buffer the cursor is in.
    index: usize,
    /// Bytes already done in that buffer.
    offset: u32,
    /// Bytes the cursor may still move over.
    remaining: u64,
    /// Bytes it has moved over.
    done: u64,
}

impl<'a> BufferCursor<'a> {
    /// A cursor at the start of `buffers`.
    pub fn new(mem: &'a GuestMemory, buffers: &'a [Descriptor]) -> Self {
        let remaining = buffers.iter().map(|d| u64::from(d.len)).sum();
        BufferCursor { mem, buffers, index: 0, offset: 0, remaining, done: 0 }
    }

    /// The same cursor, stopping after at most `max` more bytes.
    pub fn limit(mut self, max: u64) -> Self {
        self.remaining = self.remaining.min(max);
        self
    }

    /// Bytes left before the end (or the limit).
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Bytes moved over so far.
    pub fn bytes_done(&self) -> u64 {
        self.done
    }

    /// Copies guest bytes into `buf` until it is full or the stream ends; returns the count.
    ///
    /// # Errors
    /// [`MemoryError`] if guest memory refuses a copy; the cursor stays before the failed part.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, MemoryError> {
        let mut copied = 0;
        while let Some((addr, n)) = self.next_piece(buf.len() - copied) {
            self.mem.read(addr, &mut buf[copied..copied + n])?;
            self.advance(n);
            copied += n;
        }
        Ok(copied)
    }

    /// Copies `buf` into guest buffers until it is all written or the stream ends; returns the
    /// count.
    ///
    /// # Errors
    /// [`MemoryError`] if guest memory refuses a copy; the cursor stays before the failed part.
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, MemoryError> {
        let mut copied = 0;
        while let Some((addr, n)) = self.next_piece(buf.len() - copied) {
            self.mem.write(addr, &buf[copied..copied + n])?;
            self.advance(n);
            copied += n;
        }
        Ok(copied)
    }

    /// Where the next contiguous piece of at most `want` bytes is, skipping finished buffers.
    fn next_piece(&mut self, want: usize) -> Option<(GuestAddress, usize)> {
        let want = (want as u64).min(self.remaining);
        if want == 0 {
            return None;
        }
        loop {
            let buffer = self.buffers.get(self.index)?;
            let left = buffer.len - self.offset;
            if left == 0 {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            let n = want.min(u64::from(left));
            let addr = buffer.addr.checked_add(u64::from(self.offset))?;
            return Some((addr, n as usize));
        }
    }

    fn advance(&mut self, n: usize) {
        // `n` fits in the current buffer (`next_piece` said so), hence in u32.
        self.offset += n as u32;
        self.remaining -= n as u64;
        self.done += n as u64;
    }
}

/// A driver's side of a split virtqueue, for tests: writes descriptors and the available ring
/// the way Linux's `virtio_ring.c` does, and reads the used ring back.
#[cfg(test)]
pub(crate) mod test_driver {
    use super::*;

    /// One queue's three areas, at addresses the test chooses.
    pub(crate) struct DriverQueue {
        pub desc_table: u64,
        pub avail_ring: u64,
        pub used_ring: u64,
        pub size: u16,
        /// Our copy of `avail.idx`.
        pub avail_idx: u16,
    }

    impl DriverQueue {
        /// Areas at `base`, `base + 0x1000` and `base + 0x2000` (enough for 256 entries).
        pub fn at(base: u64, size: u16) -> Self {
            DriverQueue { desc_table: base, avail_ring: base + 0x1000, used_ring: base + 0x2000, size, avail_idx: 0 }
        }

        /// Writes descriptor `index` of the queue's table.
        pub fn set_desc(&self, mem: &GuestMemory, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
            write_desc(mem, self.desc_table, index, addr, len, flags, next);
        }

        /// Writes a chain of `(addr, len, write_only)` buffers at descriptors `first..`, linked
        /// with NEXT; returns the head.
        pub fn add_chain(&self, mem: &GuestMemory, first: u16, buffers: &[(u64, u32, bool)]) -> u16 {
            for (i, &(addr, len, write)) in buffers.iter().enumerate() {
                let index = first + i as u16;
                let mut flags = if write { VIRTQ_DESC_F_WRITE } else { 0 };
                if i + 1 < buffers.len() {
                    flags |= VIRTQ_DESC_F_NEXT;
                }
                self.set_desc(mem, index, addr, len, flags, index + 1);
            }
            first
        }

        /// Puts `head` in the next available ring slot, then bumps `avail.idx` (entry first).
        pub fn publish(&mut self, mem: &GuestMemory, head: u16) {
            let slot = u64::from(self.avail_idx % self.size);
            mem.write_obj(GuestAddress(self.avail_ring + 4 + 2 * slot), head).unwrap();
            self.avail_idx = self.avail_idx.wrapping_add(1);
            self.set_avail_idx(mem, self.avail_idx);
        }

        /// Writes `avail.idx` directly (for tests that lie about it).
        pub fn set_avail_idx(&self, mem: &GuestMemory, idx: u16) {
            mem.write_obj(GuestAddress(self.avail_ring + 2), idx).unwrap();
        }

        /// Writes `avail.flags`.
        pub fn set_avail_flags(&self, mem: &GuestMemory, flags: u16) {
            mem.write_obj(GuestAddress(self.avail_ring), flags).unwrap();
        }

        /// `used.idx` as the device last published it.
        pub fn used_idx(&self, mem: &GuestMemory) -> u16 {
            mem.read_obj(GuestAddress(self.used_ring + 2)).unwrap()
        }

        /// Used ring entry `n` (free-running): `(id, len)`.
        pub fn used_elem(&self, mem: &GuestMemory, n: u16) -> (u32, u32) {
            let at = self.used_ring + 4 + 8 * u64::from(n % self.size);
            (mem.read_obj(GuestAddress(at)).unwrap(), mem.read_obj(GuestAddress(at + 4)).unwrap())
        }

        /// A device-side [`Queue`] set up on these areas (size, addresses), not yet enabled.
        pub fn device_queue(&self, max_size: u16) -> Queue {
            let mut queue = Queue::new(max_size);
            queue.set_size(self.size);
            queue.set_desc_table(GuestAddress(self.desc_table));
            queue.set_avail_ring(GuestAddress(self.avail_ring));
            queue.set_used_ring(GuestAddress(self.used_ring));
            queue
        }
    }

    /// Writes descriptor `index` of the table at `table` (the queue's or an indirect one).
    pub(crate) fn write_desc(mem: &GuestMemory, table: u64, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = table + u64::from(index) * DESCRIPTOR_SIZE;
        mem.write_obj(GuestAddress(at), addr).unwrap();
        mem.write_obj(GuestAddress(at + 8), len).unwrap();
        mem.write_obj(GuestAddress(at + 12), flags).unwrap();
        mem.write_obj(GuestAddress(at + 14), next).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::test_driver::{write_desc, DriverQueue};
    use super::*;

    const INDIRECT: u64 = 1 << VIRTIO_RING_F_INDIRECT_DESC;
    /// One of the area address setters.
    type Setter = fn(&mut Queue, GuestAddress);
    /// Where test buffers go.
    const DATA: u64 = 0x1_0000;

    /// 128 KiB of RAM at 0, and 64 KiB more at 1 MiB (with a hole between).
    fn memory() -> GuestMemory {
        GuestMemory::new(&[(0, 0x2_0000), (0x10_0000, 0x1_0000)]).unwrap()
    }

    /// A driver queue of `size` entries at 0x1000 and its enabled device side.
    fn setup(mem: &GuestMemory, size: u16, features: u64) -> (DriverQueue, Queue) {
        let driver = DriverQueue::at(0x1000, size);
        let mut queue = driver.device_queue(MAX_QUEUE_SIZE);
        queue.enable(mem, features).unwrap();
        (driver, queue)
    }

    fn pop_err(queue: &mut Queue, mem: &GuestMemory) -> QueueError {
        match queue.pop(mem) {
            Some(Err(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn test_enable_checks_size() {
        let mem = memory();
        let driver = DriverQueue::at(0x1000, 16);
        for size in [0, 3, 100, 512] {
            let mut queue = driver.device_queue(256);
            queue.set_size(size);
            assert!(matches!(queue.enable(&mem, 0), Err(QueueError::BadSize { .. })), "size {size}");
            assert!(!queue.is_ready());
        }
        let mut queue = driver.device_queue(8);
        queue.set_size(16);
        assert!(matches!(queue.enable(&mem, 0), Err(QueueError::BadSize { size: 16, max: 8 })));
        queue.set_size(8);
        queue.enable(&mem, 0).unwrap();
        assert!(queue.is_ready());
    }

    #[test]
    fn test_enable_checks_alignment() {
        let mem = memory();
        let driver = DriverQueue::at(0x1000, 16);
        let cases: [(Setter, u64, QueueArea); 3] = [
            (Queue::set_desc_table, 0x1008, QueueArea::DescriptorTable),
            (Queue::set_avail_ring, 0x2001, QueueArea::AvailableRing),
            (Queue::set_used_ring, 0x3002, QueueArea::UsedRing),
        ];
        for (set, addr, expected) in cases {
            let mut queue = driver.device_queue(256);
            set(&mut queue, GuestAddress(addr));
            match queue.enable(&mem, 0) {
                Err(QueueError::Misaligned { area, .. }) => assert_eq!(area, expected),
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    #[test]
    fn test_enable_checks_areas_are_in_ram() {
        let mem = memory();
        let driver = DriverQueue::at(0x1000, 256);
        // 256 descriptors need 4 KiB: at 0x1f010 the table runs past the end of region 0.
        let cases: [(Setter, u64); 4] = [
            (Queue::set_desc_table, 0x1_f010),
            (Queue::set_avail_ring, 0x5_0000),
            (Queue::set_used_ring, 0x1_fffc),
            (Queue::set_used_ring, u64::MAX - 3),
        ];
        for (set, addr) in cases {
            let mut queue = driver.device_queue(256);
            set(&mut queue, GuestAddress(addr));
            assert!(matches!(queue.enable(&mem, 0), Err(QueueError::AreaOutsideRam { .. })), "{addr:#x}");
        }
    }

    #[test]
    fn test_setters_are_ignored_while_ready() {
        let mem = memory();
        let (_, mut queue) = setup(&mem, 16, 0);
        queue.set_size(4);
        queue.set_desc_table(GuestAddress(0x8000));
        assert_eq!((queue.size(), queue.desc_table()), (16, GuestAddress(0x1000)));
        queue.disable();
        queue.set_size(4);
        assert_eq!(queue.size(), 4);
    }

    #[test]
    fn test_pop_returns_chains_in_order_then_none() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 16, 0);
        assert!(queue.pop(&mem).is_none(), "nothing published yet");
        let a = driver.add_chain(&mem, 0, &[(DATA, 16, false), (DATA + 0x100, 512, true), (DATA + 0x400, 1, true)]);
        let b = driver.add_chain(&mem, 5, &[(0x10_0000, 8, false)]);
        driver.publish(&mem, a);
        driver.publish(&mem, b);
        assert_eq!(queue.pending(&mem).unwrap(), 2);

        let chain = queue.pop(&mem).unwrap().unwrap();
        assert_eq!(chain.head(), 0);
        assert_eq!(chain.descriptors().len(), 3);
        assert_eq!(chain.readable(), &[Descriptor { addr: GuestAddress(DATA), len: 16, write_only: false }]);
        assert_eq!(chain.writable().len(), 2);
        assert_eq!(chain.writable()[1], Descriptor { addr: GuestAddress(DATA + 0x400), len: 1, write_only: true });
        let chain = queue.pop(&mem).unwrap().unwrap();
        assert_eq!(chain.head(), 5);
        assert_eq!(chain.into_iter().map(|d| d.len).collect::<Vec<_>>(), [8]);
        assert!(queue.pop(&mem).is_none());
        assert_eq!(queue.next_avail(), 2);
    }

    #[test]
    fn test_avail_idx_wraps_around() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 4, 0);
        driver.add_chain(&mem, 0, &[(DATA, 4, true)]);
        // Drive both indices to just below the 16-bit wrap.
        for _ in 0..65534u32 {
            driver.publish(&mem, 0);
            let chain = queue.pop(&mem).unwrap().unwrap();
            queue.add_used(&mem, chain.head(), 4).unwrap();
        }
        assert_eq!(queue.next_avail(), 65534);
        for _ in 0..4 {
            driver.publish(&mem, 0);
        }
        assert_eq!(driver.avail_idx, 2, "avail.idx wrapped");
        assert_eq!(queue.pending(&mem).unwrap(), 4);
        for _ in 0..4 {
            let chain = queue.pop(&mem).unwrap().unwrap();
            queue.add_used(&mem, chain.head(), 4).unwrap();
        }
        assert!(queue.pop(&mem).is_none());
        assert_eq!(driver.used_idx(&mem), 2);
    }

    #[test]
    fn test_avail_idx_jump_is_refused_and_nothing_consumed() {
        let mem = memory();
        let (driver, mut queue) = setup(&mem, 8, 0);
        driver.add_chain(&mem, 0, &[(DATA, 4, true)]);
        driver.set_avail_idx(&mem, 9);
        let error = pop_err(&mut queue, &mem);
        assert!(matches!(error, QueueError::AvailIdxJump { next_avail: 0, avail_idx: 9, size: 8 }));
        assert!(error.stops_queue() && error.head().is_none());
        assert_eq!(queue.next_avail(), 0);
        // A driver going backwards is the same mistake seen modulo 2^16.
        driver.set_avail_idx(&mem, 0xffff);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::AvailIdxJump { .. }));
        // Once avail.idx makes sense again, the queue works.
        driver.set_avail_idx(&mem, 1);
        assert_eq!(queue.pop(&mem).unwrap().unwrap().head(), 0);
    }

    #[test]
    fn test_head_out_of_range_is_consumed() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 8, 0);
        driver.publish(&mem, 8);
        let error = pop_err(&mut queue, &mem);
        assert!(matches!(error, QueueError::HeadOutOfRange { head: 8, size: 8 }));
        assert!(!error.stops_queue() && error.head().is_none());
        assert!(queue.pop(&mem).is_none(), "the bad entry was consumed");
    }

    #[test]
    fn test_looping_chain_is_refused() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 8, 0);
        driver.set_desc(&mem, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
        driver.set_desc(&mem, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
        driver.publish(&mem, 0);
        let error = pop_err(&mut queue, &mem);
        assert!(matches!(error, QueueError::DescriptorLoop { head: 0, index: 0 }));
        assert_eq!(error.head(), Some(0));
        // A descriptor pointing at itself.
        driver.set_desc(&mem, 3, DATA, 16, VIRTQ_DESC_F_NEXT, 3);
        driver.publish(&mem, 3);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::DescriptorLoop { head: 3, index: 3 }));
    }

    #[test]
    fn test_chain_longer_than_the_queue_is_refused() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 4, 0);
        // All four descriptors, and the last one goes on to the first: five would be needed.
        for i in 0..4u16 {
            driver.set_desc(&mem, i, DATA, 16, VIRTQ_DESC_F_NEXT, (i + 1) % 4);
        }
        driver.publish(&mem, 0);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::DescriptorLoop { head: 0, index: 0 }));
        // Next index beyond the table.
        driver.set_desc(&mem, 3, DATA, 16, VIRTQ_DESC_F_NEXT, 4);
        driver.publish(&mem, 3);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::NextOutOfRange { next: 4, table_len: 4, .. }));
    }

    #[test]
    fn test_chain_longer_than_max_size_through_indirect_is_refused() {
        let mem = memory();
        let driver = DriverQueue::at(0x1000, 8);
        let mut queue = driver.device_queue(8);
        queue.enable(&mem, INDIRECT).unwrap();
        let mut driver = driver;
        // 4 direct descriptors then an indirect table of 5: 9 buffers, more than QueueNumMax 8.
        let table = 0x8000;
        for i in 0..4u16 {
            driver.set_desc(&mem, i, DATA, 16, VIRTQ_DESC_F_NEXT, i + 1);
        }
        driver.set_desc(&mem, 4, table, 5 * 16, VIRTQ_DESC_F_INDIRECT, 0);
        for i in 0..5u16 {
            let flags = if i < 4 { VIRTQ_DESC_F_NEXT } else { 0 };
            write_desc(&mem, table, i, DATA, 16, flags, i + 1);
        }
        driver.publish(&mem, 0);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::ChainTooLong { head: 0, limit: 8 }));
    }

    #[test]
    fn test_buffers_outside_ram_are_refused() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 8, 0);
        let cases = [
            (0x2_0000, 1),      // just past region 0
            (0x1_fff0, 0x20),   // straddles the end of region 0
            (0x8_0000, 0),      // in the hole, even empty
            (0x10_fff0, 0x20),  // straddles the end of region 1
            (u64::MAX - 3, 16), // wraps around
        ];
        for (addr, len) in cases {
            driver.set_desc(&mem, 0, addr, len, 0, 0);
            driver.publish(&mem, 0);
            let error = pop_err(&mut queue, &mem);
            assert!(matches!(error, QueueError::BufferOutsideRam { head: 0, .. }), "{addr:#x}+{len:#x}: {error}");
        }
        // The last byte of RAM is fine.
        driver.set_desc(&mem, 0, 0x10_ffff, 1, 0, 0);
        driver.publish(&mem, 0);
        assert!(queue.pop(&mem).unwrap().is_ok());
    }

    #[test]
    fn test_readable_after_writable_is_refused() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 8, 0);
        let head = driver.add_chain(&mem, 0, &[(DATA, 1, true), (DATA, 16, false)]);
        driver.publish(&mem, head);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::ReadableAfterWritable { head: 0 }));
    }

    #[test]
    fn test_chain_larger_than_4_gib_is_refused() {
        // Map 3 GiB to describe 4 GiB of buffers: never touched, so it costs no host memory.
        let mem = GuestMemory::new(&[(0, 0x1_0000), (0x1_0000_0000, 0xc000_0000)]).unwrap();
        let (mut driver, mut queue) = setup(&mem, 8, 0);
        let big = 0x1_0000_0000;
        driver.add_chain(&mem, 0, &[(big, 0xc000_0000, false), (big, 0x4000_0000, false)]);
        driver.publish(&mem, 0);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::ChainTooLarge { head: 0 }));
    }

    #[test]
    fn test_indirect_table_is_followed() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 8, INDIRECT);
        let table = 0x8000;
        write_desc(&mem, table, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 2);
        write_desc(&mem, table, 2, DATA + 0x200, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
        write_desc(&mem, table, 1, DATA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
        // The WRITE flag on the indirect descriptor itself must be ignored.
        driver.set_desc(&mem, 3, table, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
        driver.publish(&mem, 3);
        let chain = queue.pop(&mem).unwrap().unwrap();
        assert_eq!(chain.head(), 3);
        let lens: Vec<_> = chain.into_iter().map(|d| (d.len, d.write_only)).collect();
        assert_eq!(lens, [(16, false), (512, true), (1, true)]);
    }

    #[test]
    fn test_direct_descriptors_may_precede_an_indirect_one() {
        // §2.7.5.3.2: "The device MUST handle the case of zero or more normal chained
        // descriptors followed by a single descriptor with flags & VIRTQ_DESC_F_INDIRECT."
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 8, INDIRECT);
        let table = 0x8000;
        driver.set_desc(&mem, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
        driver.set_desc(&mem, 1, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
        write_desc(&mem, table, 0, DATA + 0x100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
        write_desc(&mem, table, 1, DATA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
        driver.publish(&mem, 0);
        let chain = queue.pop(&mem).unwrap().unwrap();
        assert_eq!(chain.readable().len(), 1);
        assert_eq!(chain.writable().len(), 2);
    }

    #[test]
    fn test_indirect_mistakes_are_refused() {
        let mem = memory();
        let table = 0x8000;
        let check = |features: u64, len: u32, flags: u16, inner_flags: u16, expected: fn(&QueueError) -> bool| {
            let (mut driver, mut queue) = setup(&mem, 8, features);
            write_desc(&mem, table, 0, DATA, 16, inner_flags, 0);
            driver.set_desc(&mem, 0, table, len, flags, 1);
            driver.set_desc(&mem, 1, DATA, 16, 0, 0);
            driver.publish(&mem, 0);
            let error = pop_err(&mut queue, &mem);
            assert!(expected(&error), "{error}");
            assert_eq!(error.head(), Some(0));
        };
        let indirect = VIRTQ_DESC_F_INDIRECT;
        check(0, 16, indirect, 0, |e| matches!(e, QueueError::IndirectNotNegotiated { .. }));
        check(INDIRECT, 16, indirect, indirect, |e| matches!(e, QueueError::NestedIndirect { .. }));
        check(INDIRECT, 16, indirect | VIRTQ_DESC_F_NEXT, 0, |e| matches!(e, QueueError::IndirectWithNext { .. }));
        for len in [0, 15, 24, 257 * 16] {
            check(INDIRECT, len, indirect, 0, |e| matches!(e, QueueError::BadIndirectLength { .. }));
        }
        let (mut driver, mut queue) = setup(&mem, 8, INDIRECT);
        driver.set_desc(&mem, 0, 0x1_ff00, 0x200, indirect, 0);
        driver.publish(&mem, 0);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::IndirectTableOutsideRam { .. }));
    }

    #[test]
    fn test_indirect_loops_and_bad_next_are_refused() {
        let mem = memory();
        let table = 0x8000;
        let (mut driver, mut queue) = setup(&mem, 8, INDIRECT);
        write_desc(&mem, table, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
        write_desc(&mem, table, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
        driver.set_desc(&mem, 2, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
        driver.publish(&mem, 2);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::DescriptorLoop { head: 2, index: 0 }));
        write_desc(&mem, table, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 2);
        driver.publish(&mem, 2);
        assert!(matches!(pop_err(&mut queue, &mem), QueueError::NextOutOfRange { next: 2, table_len: 2, .. }));
    }

    #[test]
    fn test_add_used_publishes_element_then_index() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 4, 0);
        driver.add_chain(&mem, 2, &[(DATA, 8, true)]);
        for n in 0..6u16 {
            driver.publish(&mem, 2);
            let chain = queue.pop(&mem).unwrap().unwrap();
            queue.add_used(&mem, chain.head(), 100 + u32::from(n)).unwrap();
            assert_eq!(driver.used_idx(&mem), n + 1);
            assert_eq!(driver.used_elem(&mem, n), (2, 100 + u32::from(n)), "slot {}", n % 4);
        }
        assert!(matches!(queue.add_used(&mem, 4, 0), Err(QueueError::HeadOutOfRange { head: 4, size: 4 })));
        queue.disable();
        assert!(matches!(queue.add_used(&mem, 0, 0), Err(QueueError::NotReady)));
        assert!(queue.pop(&mem).is_none(), "a disabled queue is not read");
    }

    #[test]
    fn test_needs_notification_follows_no_interrupt_flag() {
        let mem = memory();
        let (driver, queue) = setup(&mem, 4, 0);
        assert!(queue.needs_notification(&mem).unwrap());
        driver.set_avail_flags(&mem, VIRTQ_AVAIL_F_NO_INTERRUPT);
        assert!(!queue.needs_notification(&mem).unwrap());
    }

    #[test]
    fn test_reset_forgets_everything() {
        let mem = memory();
        let (mut driver, mut queue) = setup(&mem, 4, INDIRECT);
        driver.add_chain(&mem, 0, &[(DATA, 8, true)]);
        driver.publish(&mem, 0);
        queue.pop(&mem).unwrap().unwrap();
        queue.reset();
        assert!(!queue.is_ready());
        assert_eq!((queue.size(), queue.next_avail(), queue.next_used()), (MAX_QUEUE_SIZE, 0, 0));
        assert_eq!(queue.desc_table(), GuestAddress(0));
    }

    #[test]
    fn test_buffer_cursor_spans_buffers_and_stops_at_limit() {
        let mem = memory();
        let buffers = [
            Descriptor { addr: GuestAddress(DATA), len: 3, write_only: true },
            Descriptor { addr: GuestAddress(DATA + 0x100), len: 0, write_only: true },
            Descriptor { addr: GuestAddress(0x10_0000), len: 4, write_only: true },
        ];
        let mut writer = BufferCursor::new(&mem, &buffers).limit(6);
        assert_eq!(writer.remaining(), 6);
        assert_eq!(writer.write(b"abcdefgh").unwrap(), 6);
        assert_eq!(writer.write(b"x").unwrap(), 0);
        assert_eq!(writer.bytes_done(), 6);
        let mut got = [0u8; 3];
        mem.read(GuestAddress(DATA), &mut got).unwrap();
        assert_eq!(&got, b"abc");
        let mut got = [0u8; 4];
        mem.read(GuestAddress(0x10_0000), &mut got).unwrap();
        assert_eq!(&got, b"def\0");

        let mut reader = BufferCursor::new(&mem, &buffers);
        let mut all = [0u8; 10];
        assert_eq!(reader.read(&mut all).unwrap(), 7);
        assert_eq!(&all[..7], b"abcdef\0");
    }
}
