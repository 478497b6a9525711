//! Descriptor chains: how the driver describes one request as a list of guest buffers, and how
//! the device follows that list without trusting any of it.
//!
//! A chain starts at the descriptor the available ring names (its *head*) and goes on through
//! `next` while `VIRTQ_DESC_F_NEXT` is set. One descriptor may instead point at an *indirect
//! table*, a second array of descriptors in guest RAM where the chain continues. Every index,
//! address, length and flag is the guest's, so `Queue::walk_chain` checks each step and refuses
//! loops, chains longer than the queue, buffers outside RAM and readable buffers after writable
//! ones.
//!
//! # Resources
//! - Virtio 1.2, §2.7.5 "The Virtqueue Descriptor Table", §2.7.5.3 "Indirect Descriptors",
//!   §2.7.4 "Message Framing":
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.

use stage02::memory::{GuestAddress, GuestMemory, MemoryError};

use super::{Queue, QueueArea, QueueError, MAX_QUEUE_SIZE};

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

/// Largest total length of a chain: "Drivers MUST NOT add a descriptor chain longer than 2^32
/// bytes in total". Used lengths are 32-bit, so this also keeps them exact.
pub const MAX_CHAIN_BYTES: u64 = u32::MAX as u64;

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

// The walk is a method of the queue: it needs the queue's table, size, maximum size and the
// negotiated features, which only the queue holds.
impl Queue {
    // lab:begin solution stage6-desc-chain "follow the descriptor chain from head and check every index, address and length the guest gave (indirect tables, loops, readable before writable)"
    /// Follows the chain that starts at descriptor `head` and checks every step: indices inside
    /// their table, no descriptor visited twice, buffers inside guest RAM, readable buffers
    /// before writable ones, at most one level of indirect table, and bounded length.
    pub(super) fn walk_chain(&self, mem: &GuestMemory, head: u16) -> Result<DescriptorChain, QueueError> {
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
