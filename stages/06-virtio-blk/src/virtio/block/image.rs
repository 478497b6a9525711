//! The host side of the disk: a raw image file, opened once and then read and written at byte
//! offsets.
//!
//! Everything that can fail here is the host's business, not the guest's: a missing file, no
//! permission, a file that is not a whole number of sectors, an I/O error, an image that someone
//! truncated while the guest was using it. Those are [`DiskImageError`]s. The VMM's user is told
//! (at startup, or on stderr while the guest runs); the guest only sees `VIRTIO_BLK_S_IOERR` for
//! the request that hit it.
//!
//! # Resources
//! - `pread(2)`, `pwrite(2)`, `fdatasync(2)`: what [`FileExt::read_exact_at`],
//!   [`FileExt::write_all_at`] and [`File::sync_data`] do underneath.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{VirtioBlockError, SECTOR_SIZE};

/// What went wrong with the image file on the host. Never the guest's fault.
#[derive(Debug, thiserror::Error)]
pub enum DiskImageError {
    /// The image could not be opened.
    #[error("cannot open disk image {} for {mode}: {source}", .path.display())]
    Open {
        /// The image.
        path: PathBuf,
        /// "reading" or "reading and writing".
        mode: &'static str,
        /// What the host said.
        source: io::Error,
    },
    /// The image's size could not be found.
    #[error("cannot read the size of disk image {}: {source}", .path.display())]
    Metadata {
        /// The image.
        path: PathBuf,
        /// What the host said.
        source: io::Error,
    },
    /// The image is a directory, a device or a socket, not a raw image file.
    #[error("disk image {} is not a regular file", .path.display())]
    NotAFile {
        /// The image.
        path: PathBuf,
    },
    /// The image has no sectors at all.
    #[error("disk image {} is empty", .path.display())]
    Empty {
        /// The image.
        path: PathBuf,
    },
    /// The image size is not a whole number of sectors; we refuse rather than hide the tail.
    #[error("disk image {} is {size} bytes, not a multiple of 512 (try: truncate -s %512 {})", .path.display(), .path.display())]
    PartialSector {
        /// The image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A read found the end of the file before the end of the disk the guest was promised: the
    /// image shrank after it was opened.
    #[error("disk image ends before byte {end}, inside the disk the guest sees: was it truncated while in use?")]
    Truncated {
        /// The end of the read that came up short.
        end: u64,
    },
    /// The host failed a read, write or flush of the image.
    #[error("host I/O error on the disk image at byte {offset}: {source}")]
    Io {
        /// Byte offset in the image.
        offset: u64,
        /// What the host said.
        source: io::Error,
    },
}

/// A raw disk image, open and measured.
#[derive(Debug)]
pub struct DiskImage {
    file: File,
    path: PathBuf,
    read_only: bool,
    size: u64,
}

impl DiskImage {
    /// Where the image is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the guest may only read it.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Its size in bytes, a multiple of [`SECTOR_SIZE`].
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its size in 512-byte sectors: `capacity` in the configuration space.
    pub fn capacity(&self) -> u64 {
        self.size / SECTOR_SIZE
    }

    /// Reads `buf.len()` bytes at byte `offset` of the image.
    ///
    /// # Errors
    /// [`DiskImageError::Truncated`] if the file ends first, [`DiskImageError::Io`] if the host
    /// fails the read.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskImageError> {
        self.file.read_exact_at(buf, offset).map_err(|source| match source.kind() {
            io::ErrorKind::UnexpectedEof => DiskImageError::Truncated { end: offset.saturating_add(buf.len() as u64) },
            _ => DiskImageError::Io { offset, source },
        })
    }

    /// Writes `buf` at byte `offset` of the image.
    ///
    /// # Errors
    /// [`DiskImageError::Io`] if the host fails the write (a read-only image fails here too).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskImageError> {
        self.file.write_all_at(buf, offset).map_err(|source| DiskImageError::Io { offset, source })
    }

    /// Makes completed writes stable: they reach the disk under the image file.
    ///
    /// # Errors
    /// [`DiskImageError::Io`] (at offset 0) if the host fails the sync.
    pub fn sync_data(&self) -> Result<(), DiskImageError> {
        self.file.sync_data().map_err(|source| DiskImageError::Io { offset: 0, source })
    }
}

/// Opens the raw image at `path` for the guest, read-only or read-write.
///
/// The size is fixed now: the guest sees `size / 512` sectors, and the file never grows.
///
/// # Arguments
/// - `path`: a regular file whose size is a non-zero multiple of 512 bytes.
/// - `read_only`: open it read-only and offer `VIRTIO_BLK_F_RO`; guest writes then fail.
///
/// # Errors
/// A [`VirtioBlockError::Image`], never a request error: [`DiskImageError::Open`] (missing, no
/// permission), [`DiskImageError::Metadata`], [`DiskImageError::NotAFile`],
/// [`DiskImageError::Empty`] or [`DiskImageError::PartialSector`]; every message names the path.
///
/// # Example
/// ```ignore
/// let disk = open_disk(Path::new("labs/guest/out/disk.ext4"), true)?;
/// assert_eq!(disk.capacity(), 64 << 11); // 64 MiB
/// ```
pub fn open_disk(path: &Path, read_only: bool) -> Result<DiskImage, VirtioBlockError> {
    let mode = if read_only { "reading" } else { "reading and writing" };
    let file = OpenOptions::new().read(true).write(!read_only).open(path).map_err(|source| DiskImageError::Open {
        path: path.to_owned(),
        mode,
        source,
    })?;
    let metadata = file.metadata().map_err(|source| DiskImageError::Metadata { path: path.to_owned(), source })?;
    // A directory opens fine for reading; a block device would report a size of 0.
    if !metadata.is_file() {
        return Err(DiskImageError::NotAFile { path: path.to_owned() }.into());
    }
    let size = metadata.len();
    if size == 0 {
        return Err(DiskImageError::Empty { path: path.to_owned() }.into());
    }
    if size % SECTOR_SIZE != 0 {
        return Err(DiskImageError::PartialSector { path: path.to_owned(), size }.into());
    }
    Ok(DiskImage { file, path: path.to_owned(), read_only, size })
}
