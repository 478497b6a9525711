//! What the driver can get wrong with a virtqueue, one variant per mistake, and which of the
//! three areas a mistake is in.

use std::fmt;

use stage02::memory::{GuestAddress, MemoryError};

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
/// The setup errors come from [`Queue::enable`](super::Queue::enable); the others from
/// [`Queue::pop`](super::Queue::pop), where [`QueueError::head`] and [`QueueError::stops_queue`]
/// tell the device what to do next.
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
    /// The buffers of the chain add up to more than [`MAX_CHAIN_BYTES`](super::MAX_CHAIN_BYTES).
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
    /// [`Queue::pop`](super::Queue::pop) has consumed that available ring entry; the device
    /// returns the chain with `add_used(head, 0)` so that the driver's descriptors are not lost.
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
