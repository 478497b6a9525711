//! virtio-blk: a disk for the guest, backed by a raw image file on the host.
//!
//! The guest's driver (Linux `drivers/block/virtio_blk.c`) turns each block I/O into one
//! descriptor chain on the device's single request queue: a 16-byte header (type, sector), the
//! data, and a status byte (the layout is in `request.rs`). The device reads the header, moves
//! the data between guest memory and the image file at `sector * 512`, writes the status byte
//! ([`VIRTIO_BLK_S_OK`], [`VIRTIO_BLK_S_IOERR`], [`VIRTIO_BLK_S_UNSUPP`]) and returns the chain
//! with the number of bytes it wrote.
//!
//! A request can fail on either side, and [`VirtioBlockError`] says which:
//! - the guest's side, a [`RequestError`]: sectors beyond the disk, data that is not whole
//!   sectors, a write to a read-only disk, a request type we do not support, no room for the
//!   status. It is reported as a guest error (rate-limited, `stage02::guest_error!`).
//! - the host's side, a [`DiskImageError`]: the image file failed (an I/O error, or it was
//!   truncated while in use). It is printed for the VMM's user, who has something to fix.
//!
//! Either way the driver gets `VIRTIO_BLK_S_IOERR` ("device or driver error"), or
//! `VIRTIO_BLK_S_UNSUPP` for an unsupported request type (§5.2.6), and the device goes on with
//! the next request.
//!
//! The device is in this file; the host's image file in `image.rs` ([`DiskImage`],
//! [`open_disk`]); the request layout and its parsing in `request.rs`; the tests in `tests.rs`.
//!
//! # Resources
//! - Virtio 1.2, §5.2 "Block Device" (feature bits §5.2.3, configuration layout §5.2.4,
//!   device operation §5.2.6), and §2.7.4 "Message Framing":
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.
//! - The driver: Linux `drivers/block/virtio_blk.c` (`virtblk_setup_cmd`, `virtblk_add_req`,
//!   `virtblk_probe` for the configuration fields it reads).
//! - Firecracker `src/vmm/src/devices/virtio/block/virtio/{device.rs,request.rs}`.

use stage02::guest_error;
use stage02::memory::{GuestMemory, MemoryError};

use super::mmio::{MmioError, VirtioDevice, VIRTIO_F_VERSION_1};
use super::queue::{BufferCursor, DescriptorChain, Queue, VIRTIO_RING_F_INDIRECT_DESC};

mod image;
mod request;
#[cfg(test)]
mod tests;

pub use image::{open_disk, DiskImage, DiskImageError};
pub use request::{
    RequestError, REQUEST_HEADER_SIZE, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};

use request::{read_header, split_status_byte, RequestHeader};

/// Virtio device ID of a block device (§5.2.1), shown in `DeviceID`.
pub const VIRTIO_ID_BLOCK: u32 = 2;

/// Feature bit `VIRTIO_BLK_F_SEG_MAX` (2): `seg_max` in the configuration is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u32 = 2;
/// Feature bit `VIRTIO_BLK_F_RO` (5): the disk is read-only.
pub const VIRTIO_BLK_F_RO: u32 = 5;
/// Feature bit `VIRTIO_BLK_F_BLK_SIZE` (6): `blk_size` in the configuration is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u32 = 6;
/// Feature bit `VIRTIO_BLK_F_FLUSH` (9): the device takes `VIRTIO_BLK_T_FLUSH` requests.
pub const VIRTIO_BLK_F_FLUSH: u32 = 9;

/// The unit of `capacity` and `sector`, whatever the disk's block size: 512 bytes.
pub const SECTOR_SIZE: u64 = 512;
/// The device ID string unless the VMM chooses another ([`VirtioBlock::with_serial`]).
pub const DEFAULT_SERIAL: &str = "minivirt-vda";

/// Size of the request queue (`QueueNumMax`).
pub const QUEUE_SIZE: u16 = 256;
/// `seg_max`: data buffers per request. Linux adds a header and a status descriptor, so a
/// request fits in a chain of `QUEUE_SIZE` descriptors, the most a chain may have.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// `blk_size`: the block size we tell the guest to use.
pub const BLK_SIZE: u32 = 512;

/// Offset of `le64 capacity` in the configuration space: the disk size in 512-byte sectors.
pub const CONFIG_CAPACITY_OFFSET: usize = 0;
/// Offset of `le32 size_max` (largest data buffer; we do not offer `VIRTIO_BLK_F_SIZE_MAX`).
pub const CONFIG_SIZE_MAX_OFFSET: usize = 8;
/// Offset of `le32 seg_max` (valid with `VIRTIO_BLK_F_SEG_MAX`).
pub const CONFIG_SEG_MAX_OFFSET: usize = 12;
/// Offset of `struct virtio_blk_geometry` (not offered: zero).
pub const CONFIG_GEOMETRY_OFFSET: usize = 16;
/// Offset of `le32 blk_size` (valid with `VIRTIO_BLK_F_BLK_SIZE`).
pub const CONFIG_BLK_SIZE_OFFSET: usize = 20;
/// Bytes of configuration space we present: up to and including `blk_size`. Fields after it
/// belong to features we do not offer; they read as zero.
pub const CONFIG_SPACE_SIZE: usize = 24;

/// Bytes moved between the file and guest memory at a time: requests can be megabytes, the
/// bounce buffer is not.
pub const IO_CHUNK_SIZE: usize = 64 * 1024;

/// Where guest errors of this module are reported from.
const SOURCE: &str = "virtio-blk";

/// Why a request failed, by whose fault: the guest asked for something wrong, or the host's image
/// file failed. Opening the image ([`open_disk`]) fails only on the host's side.
#[derive(Debug, thiserror::Error)]
pub enum VirtioBlockError {
    /// The host's side: the image file (opening it, or I/O on it). The VMM's user is told.
    #[error(transparent)]
    Image(#[from] DiskImageError),
    /// The guest's side: the driver's request was invalid. A guest error, rate-limited.
    #[error(transparent)]
    Request(#[from] RequestError),
}

impl VirtioBlockError {
    /// The status byte the driver sees for a request that failed this way: the request error's
    /// own ([`RequestError::status`]), and `VIRTIO_BLK_S_IOERR` for a failure of the host.
    pub fn status(&self) -> u8 {
        match self {
            VirtioBlockError::Request(error) => error.status(),
            VirtioBlockError::Image(_) => VIRTIO_BLK_S_IOERR,
        }
    }

    /// Whether the guest caused it (and not the host).
    pub fn is_guest_error(&self) -> bool {
        matches!(self, VirtioBlockError::Request(_))
    }
}

/// A buffer of the request that guest memory refused is on the guest's side (the buffers are
/// the guest's), like every other mistake in a request.
impl From<MemoryError> for VirtioBlockError {
    fn from(error: MemoryError) -> Self {
        VirtioBlockError::Request(RequestError::Memory(error))
    }
}

/// The virtio-blk device: one request queue, served synchronously from the image file.
pub struct VirtioBlock {
    disk: DiskImage,
    serial: [u8; VIRTIO_BLK_ID_BYTES],
    /// Features the driver accepted at `DRIVER_OK`.
    driver_features: u64,
    /// Bounce buffer between the file and guest memory, [`IO_CHUNK_SIZE`] bytes.
    buffer: Vec<u8>,
}

impl VirtioBlock {
    /// A block device for `disk`, with device ID [`DEFAULT_SERIAL`].
    pub fn new(disk: DiskImage) -> Self {
        VirtioBlock { disk, serial: [0; VIRTIO_BLK_ID_BYTES], driver_features: 0, buffer: vec![0; IO_CHUNK_SIZE] }
            .with_serial(DEFAULT_SERIAL)
    }

    /// The same device answering `VIRTIO_BLK_T_GET_ID` with `serial` (cut to 20 bytes; Linux
    /// shows it in `/sys/block/vda/serial`).
    pub fn with_serial(mut self, serial: &str) -> Self {
        self.serial = [0; VIRTIO_BLK_ID_BYTES];
        let bytes = serial.as_bytes();
        let n = bytes.len().min(VIRTIO_BLK_ID_BYTES);
        self.serial[..n].copy_from_slice(&bytes[..n]);
        self
    }

    /// The disk behind the device.
    pub fn disk(&self) -> &DiskImage {
        &self.disk
    }

    // qa:begin stage6-blk-config
    /// The configuration space, `struct virtio_blk_config` up to `blk_size` (§5.2.4).
    fn config_space(&self) -> [u8; CONFIG_SPACE_SIZE] {
        let mut config = [0u8; CONFIG_SPACE_SIZE];
        let mut put = |offset: usize, bytes: &[u8]| config[offset..offset + bytes.len()].copy_from_slice(bytes);
        // Always present: the size in 512-byte sectors, whatever blk_size says.
        put(CONFIG_CAPACITY_OFFSET, &self.disk.capacity().to_le_bytes());
        // size_max (8) and geometry (16) stay zero: we do not offer their features.
        put(CONFIG_SEG_MAX_OFFSET, &SEG_MAX.to_le_bytes());
        put(CONFIG_BLK_SIZE_OFFSET, &BLK_SIZE.to_le_bytes());
        config
    }
    // qa:end stage6-blk-config

    // qa:begin stage6-check-range
    /// Checks that `len` bytes at `sector` are whole sectors inside the disk; returns the byte
    /// offset (so `offset + len` cannot overflow either).
    fn check_range(&self, sector: u64, len: u64) -> Result<u64, RequestError> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(RequestError::PartialSectorData(len));
        }
        // `sector` is whatever the guest wrote: `sector * 512 + len` can overflow a u64.
        let end = sector.checked_mul(SECTOR_SIZE).and_then(|offset| offset.checked_add(len));
        match end {
            Some(end) if end <= self.disk.size() => Ok(end - len),
            _ => Err(RequestError::OutOfRange { sector, len, capacity: self.disk.capacity() }),
        }
    }
    // qa:end stage6-check-range

    /// `VIRTIO_BLK_T_IN`: copies sectors from the file into the guest's buffers.
    fn read_sectors(&mut self, sector: u64, data: &mut BufferCursor) -> Result<(), VirtioBlockError> {
        let len = data.remaining();
        let start = self.check_range(sector, len)?;
        for offset in (start..start + len).step_by(IO_CHUNK_SIZE) {
            let n = (start + len - offset).min(IO_CHUNK_SIZE as u64) as usize;
            let chunk = &mut self.buffer[..n];
            self.disk.read_at(chunk, offset)?;
            data.write(chunk)?;
        }
        Ok(())
    }

    /// `VIRTIO_BLK_T_OUT`: copies the guest's buffers into sectors of the file.
    fn write_sectors(&mut self, sector: u64, data: &mut BufferCursor) -> Result<(), VirtioBlockError> {
        // "MUST set the status byte to VIRTIO_BLK_S_IOERR for a write request if the
        // VIRTIO_BLK_F_RO feature if offered, and MUST NOT write any data."
        if self.disk.read_only() {
            return Err(RequestError::ReadOnly.into());
        }
        let len = data.remaining();
        let start = self.check_range(sector, len)?;
        for offset in (start..start + len).step_by(IO_CHUNK_SIZE) {
            let n = (start + len - offset).min(IO_CHUNK_SIZE as u64) as usize;
            let chunk = &mut self.buffer[..n];
            data.read(chunk)?;
            self.disk.write_at(chunk, offset)?;
        }
        // A driver that did not accept VIRTIO_BLK_F_FLUSH cannot ask for a flush, so each
        // write must be stable when we complete it (§5.2.6.2: "writethrough").
        if self.driver_features & (1 << VIRTIO_BLK_F_FLUSH) == 0 {
            self.flush()?;
        }
        Ok(())
    }

    /// `VIRTIO_BLK_T_FLUSH`: completed writes reach the disk under the image file.
    fn flush(&self) -> Result<(), VirtioBlockError> {
        Ok(self.disk.sync_data()?)
    }

    // lab:begin solution stage6-blk-request "carry out one virtio-blk request: IN reads sectors into the writable buffers, OUT writes the readable ones, FLUSH syncs, GET_ID returns the serial"
    /// Carries out one request whose header is `header`: `readable` is the rest of the
    /// device-readable bytes, `writable` the device-writable bytes before the status byte.
    fn execute(
        &mut self,
        header: RequestHeader,
        readable: &mut BufferCursor,
        writable: &mut BufferCursor,
    ) -> Result<(), VirtioBlockError> {
        match header.request_type {
            VIRTIO_BLK_T_IN => self.read_sectors(header.sector, writable),
            VIRTIO_BLK_T_OUT => self.write_sectors(header.sector, readable),
            VIRTIO_BLK_T_FLUSH => self.flush(),
            VIRTIO_BLK_T_GET_ID => {
                // At most 20 bytes, fewer if the driver gave less room.
                writable.write(&self.serial)?;
                Ok(())
            }
            // DISCARD, WRITE_ZEROES, GET_LIFETIME, ... belong to features we do not offer.
            other => Err(RequestError::Unsupported(other).into()),
        }
    }
    // lab:end

    /// Handles one chain; returns the used length: bytes written into its device-writable
    /// buffers, data and status byte.
    fn handle_request(&mut self, chain: &DescriptorChain, mem: &GuestMemory) -> u32 {
        let Some((data_len, status_at)) = split_status_byte(chain.writable()) else {
            // Nowhere to say what happened: give the chain back untouched.
            guest_error!(SOURCE, "chain {}: {}", chain.head(), RequestError::NoStatusByte);
            return 0;
        };
        let mut readable = BufferCursor::new(mem, chain.readable());
        let mut writable = BufferCursor::new(mem, chain.writable()).limit(data_len);
        let result = read_header(&mut readable)
            .map_err(VirtioBlockError::from)
            .and_then(|header| self.execute(header, &mut readable, &mut writable));
        let status = match result {
            Ok(()) => VIRTIO_BLK_S_OK,
            Err(error) => {
                match &error {
                    // The guest's mistake: a guest error, which a hostile guest cannot flood.
                    VirtioBlockError::Request(mistake) => guest_error!(SOURCE, "chain {}: {mistake}", chain.head()),
                    // The host's failure: the user has something to fix.
                    VirtioBlockError::Image(failure) => {
                        eprintln!("[minivirt] {SOURCE}: {}: {failure}", self.disk.path().display())
                    }
                }
                error.status()
            }
        };
        // The chain is at most 4 GiB (the queue checked), so the count fits.
        let data_written = writable.bytes_done() as u32;
        match mem.write_obj(status_at, status) {
            Ok(()) => data_written + 1,
            Err(error) => {
                guest_error!(SOURCE, "chain {}: cannot write the status: {error}", chain.head());
                data_written
            }
        }
    }
}

impl VirtioDevice for VirtioBlock {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn device_features(&self) -> u64 {
        let mut features = 1 << VIRTIO_F_VERSION_1
            | 1 << VIRTIO_RING_F_INDIRECT_DESC
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_FLUSH;
        if self.disk.read_only() {
            features |= 1 << VIRTIO_BLK_F_RO;
        }
        features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = self.config_space();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(CONFIG_SPACE_SIZE);
        let end = start.saturating_add(data.len()).min(CONFIG_SPACE_SIZE);
        data.fill(0);
        data[..end - start].copy_from_slice(&config[start..end]);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only `writeback` (VIRTIO_BLK_F_CONFIG_WCE) is writable, and we do not offer it.
        guest_error!(SOURCE, "{}-byte write to read-only configuration space at {offset:#x}", data.len());
    }

    fn activate(&mut self, driver_features: u64, queues: &[Queue]) -> Result<(), MmioError> {
        if !queues.first().is_some_and(Queue::is_ready) {
            return Err(MmioError::QueueNotReady(0));
        }
        self.driver_features = driver_features;
        Ok(())
    }

    fn process_queue(
        &mut self,
        queue_index: usize,
        queues: &mut [Queue],
        mem: &GuestMemory,
    ) -> Result<bool, MmioError> {
        let Some(queue) = queues.get_mut(queue_index) else {
            guest_error!(SOURCE, "notify for queue {queue_index}, which does not exist");
            return Ok(false);
        };
        let mut used_any = false;
        // At most one ring's worth per notification: the guest could otherwise keep this
        // vCPU here forever by making us read data over `avail.idx`. What is left over was
        // made available after we started, and its own notification will come.
        for _ in 0..queue.size() {
            let Some(next) = queue.pop(mem) else { break };
            match next {
                Ok(chain) => {
                    let len = self.handle_request(&chain, mem);
                    queue.add_used(mem, chain.head(), len)?;
                    used_any = true;
                }
                Err(error) => {
                    guest_error!(SOURCE, "{error}");
                    if let Some(head) = error.head() {
                        queue.add_used(mem, head, 0)?;
                        used_any = true;
                    }
                    if error.stops_queue() {
                        break;
                    }
                }
            }
        }
        Ok(used_any && queue.needs_notification(mem)?)
    }

    fn reset(&mut self) {
        self.driver_features = 0;
    }
}
