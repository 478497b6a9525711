//! HVA → HPA: which host page frame backs an address of the VMM, from `/proc/self/pagemap`.
//!
//! The last step of the GVA→GPA→HVA→HPA chain belongs to the host kernel: guest RAM is an
//! ordinary mapping of the VMM, and the host's page tables decide which physical frame is
//! behind each of its pages — or none yet, since a page gets a frame when first touched.
//! Linux shows a process its own page table through `/proc/self/pagemap`: one 64-bit entry
//! per virtual page, at offset `hva / page_size * 8`.
//!
//! Since Linux 4.2 the frame number reads as 0 unless the reader has `CAP_SYS_ADMIN` (frame
//! numbers helped Rowhammer attacks). That is an answer, not an error: [`HostFrame::Hidden`].
//!
//! # Resources
//! - Linux `Documentation/admin-guide/mm/pagemap.rst` (the entry bits used here).
//! - QEMU `monitor/hmp-cmds-target.c` (`vtop`, behind `gpa2hpa`), which reads the same file.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The VMM's own page map.
pub const PAGEMAP_PATH: &str = "/proc/self/pagemap";
/// Bytes per pagemap entry: one per virtual page.
pub const PAGEMAP_ENTRY_SIZE: u64 = 8;
/// Entry bit 63: the page is in RAM.
pub const PM_PRESENT: u64 = 1 << 63;
/// Entry bit 62: the page is swapped out (bits 0–54 then hold the swap type and offset).
pub const PM_SWAPPED: u64 = 1 << 62;
/// Entry bit 61: a file page or a shared anonymous page (guest RAM is shared anonymous memory).
pub const PM_FILE_OR_SHARED_ANON: u64 = 1 << 61;
/// Entry bit 56: the page is mapped exactly once.
pub const PM_EXCLUSIVE: u64 = 1 << 56;
/// Entry bit 55: the page was written since the soft-dirty bits were last cleared.
pub const PM_SOFT_DIRTY: u64 = 1 << 55;
/// Entry bits 0–54: the page frame number, if present (0 without `CAP_SYS_ADMIN`).
pub const PM_PFN_MASK: u64 = (1 << 55) - 1;

/// What the host's page table says about one page of the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFrame {
    /// The page is in host RAM at this frame.
    Frame {
        /// The host page frame number.
        pfn: u64,
        /// The host-physical address of the byte asked for: frame × page size + offset.
        hpa: u64,
    },
    /// The page is in host RAM, but the host hides its frame from this process.
    Hidden,
    /// No frame yet: nothing has touched the page since it was mapped.
    NotPresent,
    /// The host has swapped the page out.
    Swapped,
}

// qa:begin stage8-host-frame
impl HostFrame {
    /// Decodes pagemap entry `entry` for the byte at `hva` on a host with `page_size`-byte pages.
    pub fn from_entry(entry: u64, hva: u64, page_size: u64) -> HostFrame {
        let pfn = entry & PM_PFN_MASK;
        if entry & PM_PRESENT == 0 {
            if entry & PM_SWAPPED != 0 {
                HostFrame::Swapped
            } else {
                HostFrame::NotPresent
            }
        } else if pfn == 0 {
            HostFrame::Hidden
        } else {
            HostFrame::Frame { pfn, hpa: pfn * page_size + hva % page_size }
        }
    }
}
// qa:end stage8-host-frame

impl fmt::Display for HostFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostFrame::Frame { pfn, hpa } => write!(f, "host frame {pfn:#x}, HPA {hpa:#x}"),
            HostFrame::Hidden => write!(
                f,
                "the host hides page frame numbers from processes without CAP_SYS_ADMIN; run the VMM as root to see the HPA"
            ),
            HostFrame::NotPresent => write!(f, "no host frame yet: nothing has touched this page"),
            HostFrame::Swapped => write!(f, "the host has swapped this page out"),
        }
    }
}

/// Errors from reading the page map.
#[derive(Debug, thiserror::Error)]
pub enum PagemapError {
    /// `/proc/self/pagemap` cannot be opened (no procfs, or a kernel without CONFIG_PROC_PAGE_MONITOR).
    #[error("cannot open {PAGEMAP_PATH}")]
    Open(#[source] io::Error),
    /// The entry for this address cannot be read.
    #[error("cannot read the {PAGEMAP_PATH} entry of HVA {hva:#x}")]
    Read {
        /// The address asked for.
        hva: u64,
        /// What the read said.
        #[source]
        source: io::Error,
    },
}

/// The VMM's page map, open for lookups.
pub struct Pagemap {
    file: File,
    page_size: u64,
}

impl Pagemap {
    /// Opens `/proc/self/pagemap`.
    ///
    /// # Errors
    /// [`PagemapError::Open`] when the file cannot be opened.
    pub fn open() -> Result<Pagemap, PagemapError> {
        let file = File::open(PAGEMAP_PATH).map_err(PagemapError::Open)?;
        Ok(Pagemap { file, page_size: host_page_size() })
    }

    /// The host frame behind the VMM's address `hva`.
    ///
    /// # Errors
    /// [`PagemapError::Read`] when the entry cannot be read (an address beyond the address space).
    ///
    /// # Example
    /// ```
    /// use stage08::pagemap::{HostFrame, Pagemap};
    ///
    /// let page = vec![1u8; 4096]; // touched, so it has a frame
    /// let frame = Pagemap::open().unwrap().frame(page.as_ptr() as u64).unwrap();
    /// assert!(matches!(frame, HostFrame::Frame { .. } | HostFrame::Hidden));
    /// ```
    pub fn frame(&self, hva: u64) -> Result<HostFrame, PagemapError> {
        let mut entry = [0u8; PAGEMAP_ENTRY_SIZE as usize];
        let offset = hva / self.page_size * PAGEMAP_ENTRY_SIZE;
        self.file.read_exact_at(&mut entry, offset).map_err(|source| PagemapError::Read { hva, source })?;
        Ok(HostFrame::from_entry(u64::from_ne_bytes(entry), hva, self.page_size))
    }
}

/// The host's page size in bytes.
pub fn host_page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage02::memory::{GuestAddress, GuestMemory};

    /// Whether this test process has CAP_SYS_ADMIN (bit 21 of CapEff in /proc/self/status).
    fn can_see_frames() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap();
        u64::from_str_radix(caps.trim(), 16).unwrap() & (1 << 21) != 0
    }

    #[test]
    fn entries_decode_to_frames_hidden_frames_and_absent_pages() {
        let hva = 0x7f00_0000_1234;
        assert_eq!(
            HostFrame::from_entry(PM_PRESENT | PM_EXCLUSIVE | 0x1a2b3, hva, 4096),
            HostFrame::Frame { pfn: 0x1a2b3, hpa: 0x1a2b3234 }
        );
        assert_eq!(HostFrame::from_entry(PM_PRESENT | PM_FILE_OR_SHARED_ANON, hva, 4096), HostFrame::Hidden);
        assert_eq!(HostFrame::from_entry(0, hva, 4096), HostFrame::NotPresent);
        assert_eq!(HostFrame::from_entry(PM_SWAPPED | 0x55, hva, 4096), HostFrame::Swapped);
        assert!(HostFrame::Hidden.to_string().contains("CAP_SYS_ADMIN"), "a sentence that says why");
    }

    #[test]
    fn a_page_gets_a_frame_when_first_touched() {
        // Guest RAM exactly as the VMM maps it: shared, anonymous, no reserve.
        let mem = GuestMemory::new(&[(0, 0x4000)]).unwrap();
        let base = mem.regions()[0].host_address();
        let pagemap = Pagemap::open().unwrap();
        assert_eq!(pagemap.frame(base + 0x1000).unwrap(), HostFrame::NotPresent);

        mem.write_obj(GuestAddress(0x1008), 0x7472_6976_696e_696du64).unwrap();
        mem.write_obj(GuestAddress(0x2000), 1u8).unwrap();
        let first = pagemap.frame(base + 0x1008).unwrap();
        let second = pagemap.frame(base + 0x2000).unwrap();
        if can_see_frames() {
            let (HostFrame::Frame { pfn: a, hpa }, HostFrame::Frame { pfn: b, .. }) = (first, second) else {
                panic!("with CAP_SYS_ADMIN the frames are visible: {first:?}, {second:?}");
            };
            assert_eq!(hpa % host_page_size(), (base + 0x1008) % host_page_size(), "the offset in the page is kept");
            assert_ne!(a, b, "two pages, two frames");
        } else {
            assert_eq!((first, second), (HostFrame::Hidden, HostFrame::Hidden));
        }
    }
}
