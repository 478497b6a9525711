//! The guest side of the disk: a request as the driver lays it out in a descriptor chain, and
//! what the driver can get wrong in one.
//!
//! ```text
//!  device-readable                              device-writable
//!  ┌──────────────────────────────┬───────────┐┌───────────┬────────┐
//!  │ type  reserved  sector       │ data      ││ data      │ status │
//!  │ le32  le32      le64 (16 B)  │ (OUT)     ││ (IN, ID)  │ u8     │
//!  └──────────────────────────────┴───────────┘└───────────┴────────┘
//! ```
//!
//! The spec says where each field is *in the byte stream*, not in which descriptor: "The device
//! MUST NOT make assumptions about the particular arrangement of descriptors" (§2.7.4). Linux
//! puts the header, each data segment and the status in descriptors of their own, but a driver
//! may as well split the header or put the status byte at the end of the last data buffer. So
//! [`read_header`] reads the header from the start of the readable bytes and
//! [`split_status_byte`] takes the status to be the last writable byte, wherever the descriptor
//! boundaries fall.
//!
//! A request the driver got wrong is a [`RequestError`]: a guest error, reported and survived.
//! The driver learns of it from the status byte, `VIRTIO_BLK_S_UNSUPP` for a request type the
//! device does not support and `VIRTIO_BLK_S_IOERR` ("device or driver error") for the rest.
//!
//! # Resources
//! - Virtio 1.2, §5.2.6 "Device Operation" (`struct virtio_blk_req`, request types, status
//!   values) and §2.7.4 "Message Framing":
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.
//! - The driver: Linux `drivers/block/virtio_blk.c` (`virtblk_setup_cmd`, `virtblk_add_req`).

use stage02::memory::{GuestAddress, MemoryError};

use crate::virtio::queue::{BufferCursor, Descriptor};

/// Request type `VIRTIO_BLK_T_IN`: read sectors into the device-writable data.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Request type `VIRTIO_BLK_T_OUT`: write the device-readable data to sectors.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Request type `VIRTIO_BLK_T_FLUSH`: make completed writes stable.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Request type `VIRTIO_BLK_T_GET_ID`: read the device ID string (the serial).
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

/// Status `VIRTIO_BLK_S_OK`: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status `VIRTIO_BLK_S_IOERR`: "device or driver error".
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status `VIRTIO_BLK_S_UNSUPP`: the request type is not supported.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Size of the request header, `struct virtio_blk_req` up to `data`: `le32 type`,
/// `le32 reserved`, `le64 sector`.
pub const REQUEST_HEADER_SIZE: usize = 16;
/// Length of the device ID string of `VIRTIO_BLK_T_GET_ID`, NUL-padded (no NUL if all 20 bytes
/// are used).
pub const VIRTIO_BLK_ID_BYTES: usize = 20;

/// What the driver got wrong in one request. Each is a guest error: the device reports it, ends
/// the request with the [status](RequestError::status) byte, and goes on with the next.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The chain has no device-writable byte to put the status in.
    #[error("request has no device-writable byte for its status")]
    NoStatusByte,
    /// The device-readable part is too short for a request header.
    #[error("request header is {0} bytes, shorter than 16")]
    ShortHeader(usize),
    /// The data is not a whole number of sectors.
    #[error("request has {0} bytes of data, not a multiple of 512")]
    PartialSectorData(u64),
    /// The request reaches beyond the end of the disk.
    #[error("request for {len} bytes at sector {sector} is beyond the end of the disk ({capacity} sectors)")]
    OutOfRange {
        /// First sector.
        sector: u64,
        /// Data length in bytes.
        len: u64,
        /// Disk size in sectors.
        capacity: u64,
    },
    /// A write to a read-only disk.
    #[error("write request on a read-only disk")]
    ReadOnly,
    /// A request type we do not implement.
    #[error("unsupported request type {0}")]
    Unsupported(u32),
    /// Guest memory refused a copy to or from the request's buffers (the queue checked them, so
    /// this is not expected).
    #[error("guest memory: {0}")]
    Memory(#[from] MemoryError),
}

impl RequestError {
    /// The status byte the driver sees for a request that failed this way (§5.2.6):
    /// `VIRTIO_BLK_S_UNSUPP` for an unsupported type, `VIRTIO_BLK_S_IOERR` otherwise.
    pub fn status(&self) -> u8 {
        match self {
            RequestError::Unsupported(_) => VIRTIO_BLK_S_UNSUPP,
            _ => VIRTIO_BLK_S_IOERR,
        }
    }
}

/// A parsed request header.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestHeader {
    pub(super) request_type: u32,
    pub(super) sector: u64,
}

/// Reads and parses the 16-byte header at the start of the device-readable bytes.
pub(super) fn read_header(readable: &mut BufferCursor) -> Result<RequestHeader, RequestError> {
    let mut bytes = [0u8; REQUEST_HEADER_SIZE];
    let n = readable.read(&mut bytes)?;
    if n < REQUEST_HEADER_SIZE {
        return Err(RequestError::ShortHeader(n));
    }
    let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = bytes;
    // The `reserved` field (formerly `ioprio`) is a hint we ignore.
    Ok(RequestHeader {
        request_type: u32::from_le_bytes([t0, t1, t2, t3]),
        sector: u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
    })
}

/// Splits the device-writable buffers into data and the status byte, the very last byte:
/// returns the data length and the status byte's address, or `None` if there is no writable
/// byte at all.
pub(super) fn split_status_byte(writable: &[Descriptor]) -> Option<(u64, GuestAddress)> {
    let total: u64 = writable.iter().map(|d| u64::from(d.len)).sum();
    let last = writable.iter().rev().find(|d| d.len > 0)?;
    let status_at = last.addr.checked_add(u64::from(last.len) - 1)?;
    Some((total - 1, status_at))
}
