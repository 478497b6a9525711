//! The driver's side of a split virtqueue, written the way Linux's `virtio_ring.c` does it:
//! descriptors, the available ring and the used ring as the guest sees them. `--demo
//! virtqueue` plays the driver with it, and the unit tests drive the device side ([`queue`])
//! with it, so that the device is checked against a second implementation of the layout.
//!
//! # Resources
//! - Virtio 1.2, §2.7 "Split Virtqueues":
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.
//!
//! [`queue`]: super::queue

use super::queue::{Queue, DESCRIPTOR_SIZE, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use stage02::memory::{GuestAddress, GuestMemory, MemoryError};

/// One queue's three areas, at addresses the driver chooses, and its copy of `avail.idx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverQueue {
    /// The descriptor table.
    pub desc_table: u64,
    /// The available ring (driver area).
    pub avail_ring: u64,
    /// The used ring (device area).
    pub used_ring: u64,
    /// Entries in the queue.
    pub size: u16,
    /// The driver's copy of `avail.idx`: how many heads it has published.
    pub avail_idx: u16,
}

impl DriverQueue {
    /// Areas at `base`, `base + 0x1000` and `base + 0x2000` (room for 256 entries).
    pub fn at(base: u64, size: u16) -> Self {
        DriverQueue { desc_table: base, avail_ring: base + 0x1000, used_ring: base + 0x2000, size, avail_idx: 0 }
    }

    /// Writes descriptor `index` of the queue's table.
    ///
    /// # Errors
    /// When the descriptor is outside guest memory.
    pub fn set_desc(
        &self,
        mem: &GuestMemory,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) -> Result<(), MemoryError> {
        write_desc(mem, self.desc_table, index, addr, len, flags, next)
    }

    /// Writes a chain of `(addr, len, device_writable)` buffers at descriptors `first..`,
    /// linked with NEXT; returns the head.
    ///
    /// # Errors
    /// When a descriptor is outside guest memory.
    pub fn add_chain(&self, mem: &GuestMemory, first: u16, buffers: &[(u64, u32, bool)]) -> Result<u16, MemoryError> {
        for (i, &(addr, len, write)) in buffers.iter().enumerate() {
            let index = first.wrapping_add(i as u16);
            let mut flags = if write { VIRTQ_DESC_F_WRITE } else { 0 };
            if i + 1 < buffers.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.set_desc(mem, index, addr, len, flags, index.wrapping_add(1))?;
        }
        Ok(first)
    }

    /// Puts `head` in the next available ring slot, then bumps `avail.idx` (entry first, as
    /// the specification orders it).
    ///
    /// # Errors
    /// When the ring is outside guest memory.
    pub fn publish(&mut self, mem: &GuestMemory, head: u16) -> Result<(), MemoryError> {
        let slot = u64::from(self.avail_idx % self.size);
        mem.write_obj(GuestAddress(self.avail_ring + 4 + 2 * slot), head)?;
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(mem, self.avail_idx)
    }

    /// Writes `avail.idx` directly (to lie about it).
    ///
    /// # Errors
    /// When the ring is outside guest memory.
    pub fn set_avail_idx(&self, mem: &GuestMemory, idx: u16) -> Result<(), MemoryError> {
        mem.write_obj(GuestAddress(self.avail_ring + 2), idx)
    }

    /// Writes `avail.flags`.
    ///
    /// # Errors
    /// When the ring is outside guest memory.
    pub fn set_avail_flags(&self, mem: &GuestMemory, flags: u16) -> Result<(), MemoryError> {
        mem.write_obj(GuestAddress(self.avail_ring), flags)
    }

    /// `used.idx` as the device last published it.
    ///
    /// # Errors
    /// When the ring is outside guest memory.
    pub fn used_idx(&self, mem: &GuestMemory) -> Result<u16, MemoryError> {
        mem.read_obj(GuestAddress(self.used_ring + 2))
    }

    /// Used ring entry `n` (free-running): `(id, len)`.
    ///
    /// # Errors
    /// When the ring is outside guest memory.
    pub fn used_elem(&self, mem: &GuestMemory, n: u16) -> Result<(u32, u32), MemoryError> {
        let at = self.used_ring + 4 + 8 * u64::from(n % self.size);
        Ok((mem.read_obj(GuestAddress(at))?, mem.read_obj(GuestAddress(at + 4))?))
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

/// Writes descriptor `index` of the table at `table` (a queue's or an indirect one).
///
/// # Errors
/// When the descriptor is outside guest memory.
pub fn write_desc(
    mem: &GuestMemory,
    table: u64,
    index: u16,
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
) -> Result<(), MemoryError> {
    // Wrapping, as the address bus would: a table at the top of the address space is simply
    // outside RAM, an error, not an overflow.
    let at = table.wrapping_add(u64::from(index) * DESCRIPTOR_SIZE);
    mem.write_obj(GuestAddress(at), addr)?;
    mem.write_obj(GuestAddress(at.wrapping_add(8)), len)?;
    mem.write_obj(GuestAddress(at.wrapping_add(12)), flags)?;
    mem.write_obj(GuestAddress(at.wrapping_add(14)), next)
}
