//! Loading a kernel into guest memory: a bzImage per the boot protocol, or an ELF `vmlinux`.
//!
//! A **bzImage** is a boot sector and real-mode setup code (`setup_sects` + 1 sectors, whose
//! header the zero page needs), followed by the protected-mode kernel, which goes at 1 MiB.
//! Its 64-bit entry point is the load address + 0x200. The kernel decompresses itself first.
//!
//! An **ELF vmlinux** is the uncompressed kernel: no setup code, just program headers saying
//! where each piece goes, and an entry point (the physical address of `startup_64`). Booting
//! it skips the decompressor, which is very slow on hosts that emulate kernel code. It has no
//! setup header, so the loader writes a minimal one ([`synthetic_setup_header`]).
//!
//! Every offset and size in these files is checked against the file's length and guest RAM
//! before it is used, with checked arithmetic: a truncated or corrupt kernel is a one-line
//! [`LoaderError`], never a panic or a write outside guest RAM.
//!
//! # Resources
//! - Linux `Documentation/arch/x86/boot.rst` ("The Real-Mode Kernel Header", "Loading the rest
//!   of the kernel", "64-bit Boot Protocol"); the ELF-64 specification (`Elf64_Ehdr`, `Elf64_Phdr`).

use crate::bootparams::*;
use crate::layout::KERNEL_START;
use stage02::memory::{GuestAddress, GuestMemory};
use std::path::Path;

/// ELF magic.
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
/// `e_ident[EI_CLASS]`: 64-bit.
pub const ELFCLASS64: u8 = 2;
/// `e_machine`: x86-64.
pub const EM_X86_64: u16 = 62;
/// `p_type`: a loadable segment.
pub const PT_LOAD: u32 = 1;
/// Size of `Elf64_Ehdr`.
const ELF_HEADER_SIZE: usize = 64;
/// Size of `Elf64_Phdr`; `e_phentsize` may be larger, never smaller.
const PROGRAM_HEADER_SIZE: usize = 56;
/// `syssize` (protocol 2.04+): the size of the protected-mode kernel in 16-byte paragraphs.
const SYSSIZE: usize = 0x1f4;

/// Errors from loading the kernel or initrd.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Neither ELF nor a bzImage.
    #[error("{0} is not a Linux kernel (no ELF header, no \"HdrS\" boot header at 0x202)")]
    NotAKernel(String),
    /// The file ends before something its own headers say is there.
    #[error("{path} is truncated: {what} ends at {end:#x} but the file has {len:#x} bytes")]
    Truncated {
        /// The file.
        path: String,
        /// The part that is cut off: "its boot header", "its program header table", ...
        what: &'static str,
        /// Where that part ends.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// A bzImage too old to have a 64-bit entry point.
    #[error("{path}: boot protocol {version:#06x} is too old (need 2.12 or later with a 64-bit entry point)")]
    OldProtocol {
        /// The file.
        path: String,
        /// Its protocol version.
        version: u16,
    },
    /// A bzImage without XLF_KERNEL_64.
    #[error("{0}: this bzImage has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)")]
    No64BitEntry(String),
    /// A bzImage whose header contradicts the boot protocol.
    #[error("{path}: {what}")]
    BadBzImage {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// An ELF file we cannot load.
    #[error("{path}: {what}")]
    BadElf {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// Something does not fit in guest RAM.
    #[error("{what} ({size} bytes at {address:#x}) does not fit in guest RAM; try a larger --mem")]
    DoesNotFit {
        /// What.
        what: String,
        /// Where it was to go.
        address: u64,
        /// Its size.
        size: u64,
    },
    /// An initrd of zero bytes, which the kernel would silently ignore.
    #[error("the initrd {0} is empty")]
    EmptyInitrd(String),
}

/// A loaded kernel.
#[derive(Debug)]
pub struct LoadedKernel {
    /// Guest-physical 64-bit entry point.
    pub entry: u64,
    /// The setup header bytes (from offset 0x1f1) for the zero page.
    pub setup_header: Vec<u8>,
    /// One past the highest byte the kernel occupies (including `init_size`).
    pub end: u64,
}

fn read(path: &Path) -> Result<Vec<u8>, LoaderError> {
    std::fs::read(path).map_err(|source| LoaderError::Read { path: path.display().to_string(), source })
}

fn copy_in(mem: &GuestMemory, address: u64, bytes: &[u8], what: &str) -> Result<(), LoaderError> {
    mem.write(GuestAddress(address), bytes).map_err(|_| LoaderError::DoesNotFit {
        what: what.to_string(),
        address,
        size: bytes.len() as u64,
    })
}

/// Loads the kernel at `path`, ELF or bzImage, into `mem`.
pub fn load_kernel(mem: &GuestMemory, path: &Path) -> Result<LoadedKernel, LoaderError> {
    load_kernel_image(mem, &read(path)?, &path.display().to_string())
}

/// Loads a kernel already read into `image`, ELF or bzImage; `name` names it in errors.
pub fn load_kernel_image(mem: &GuestMemory, image: &[u8], name: &str) -> Result<LoadedKernel, LoaderError> {
    if image.starts_with(&ELF_MAGIC) {
        load_elf(mem, image, name)
    } else if image.get(HEADER..HEADER + 4) == Some(&HDRS_MAGIC.to_le_bytes()) {
        load_bzimage(mem, image, name)
    } else {
        Err(LoaderError::NotAKernel(name.to_string()))
    }
}

// The readers below index the image directly: callers check the length first.
fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le32(bytes, at)) | u64::from(le32(bytes, at + 4)) << 32
}

/// Where the setup header's last field ends for protocol `version` (2.12 or later):
/// `handover_offset` (0x264, 4 bytes) since 2.11, `kernel_info_offset` (0x268) since 2.15.
fn header_fields_end(version: u16) -> usize {
    if version >= 0x020f {
        0x26c
    } else {
        0x268
    }
}

// qa:begin stage4-bzimage
/// Loads a bzImage: checks the header, copies the protected-mode part to 1 MiB.
pub fn load_bzimage(mem: &GuestMemory, image: &[u8], name: &str) -> Result<LoadedKernel, LoaderError> {
    let truncated =
        |what, end: usize| LoaderError::Truncated { path: name.into(), what, end: end as u64, len: image.len() as u64 };
    let bad = |what: String| LoaderError::BadBzImage { path: name.into(), what };
    if image.len() < VERSION + 2 {
        return Err(truncated("its boot header", VERSION + 2));
    }
    let version = le16(image, VERSION);
    if version < MIN_BOOT_PROTOCOL {
        return Err(LoaderError::OldProtocol { path: name.to_string(), version });
    }
    // The header runs from 0x1f1 to 0x202 + the jump's offset byte, and holds every field of
    // its protocol version; all the fields read below lie inside it.
    let fields_end = header_fields_end(version);
    if image.len() < fields_end {
        return Err(truncated("its boot header", fields_end));
    }
    let header_end = JUMP + 2 + usize::from(image[JUMP + 1]);
    if header_end < fields_end {
        return Err(bad(format!(
            "its boot header ends at {header_end:#x}, before the fields of protocol {version:#06x} (up to {fields_end:#x})"
        )));
    }
    if image.len() < header_end {
        return Err(truncated("its boot header", header_end));
    }
    if le16(image, XLOADFLAGS) & XLF_KERNEL_64 == 0 {
        return Err(LoaderError::No64BitEntry(name.to_string()));
    }
    // setup_sects == 0 means 4, for historical reasons; the boot sector is one more.
    let setup_sects = match image[SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let setup_size = (setup_sects + 1) * 512;
    if image.len() < setup_size {
        return Err(truncated("its setup code", setup_size));
    }
    // syssize tells how long the kernel after the setup is: a cut-off download shows here.
    let kernel_size = le32(image, SYSSIZE) as usize * 16;
    if kernel_size <= 0x200 {
        return Err(bad(format!(
            "its kernel is {kernel_size} bytes (syssize), too small for the 64-bit entry at 0x200"
        )));
    }
    if image.len() < setup_size + kernel_size {
        return Err(truncated("its protected-mode kernel", setup_size + kernel_size));
    }
    let kernel = &image[setup_size..];
    // The kernel decompresses and initialises in place: it needs init_size bytes of RAM.
    let init_size = (le32(image, INIT_SIZE) as usize).max(kernel.len());
    if !mem.contains_range(GuestAddress(KERNEL_START), init_size) {
        let what = "the kernel with its init_size".into();
        return Err(LoaderError::DoesNotFit { what, address: KERNEL_START, size: init_size as u64 });
    }
    copy_in(mem, KERNEL_START, kernel, "the kernel")?;
    Ok(LoadedKernel {
        entry: KERNEL_START + 0x200,
        setup_header: image[SETUP_SECTS..header_end].to_vec(),
        end: KERNEL_START + init_size as u64,
    })
}
// qa:end stage4-bzimage

/// Loads an ELF64 vmlinux: each PT_LOAD segment at its physical address, BSS zeroed.
pub fn load_elf(mem: &GuestMemory, image: &[u8], name: &str) -> Result<LoadedKernel, LoaderError> {
    let bad = |what: String| LoaderError::BadElf { path: name.to_string(), what };
    let truncated = |what, end| LoaderError::Truncated { path: name.into(), what, end, len: image.len() as u64 };
    if image.len() < ELF_HEADER_SIZE {
        return Err(truncated("its ELF header", ELF_HEADER_SIZE as u64));
    }
    if image[4] != ELFCLASS64 || le16(image, 18) != EM_X86_64 {
        return Err(bad("not a 64-bit x86 ELF file".into()));
    }
    let entry = le64(image, 24);
    let (phoff, phentsize, phnum) = (le64(image, 32), usize::from(le16(image, 54)), usize::from(le16(image, 56)));
    if phentsize < PROGRAM_HEADER_SIZE {
        return Err(bad("program headers are too small".into()));
    }
    // At most 65535 entries of 65535 bytes: only the offset can overflow.
    let table_end = phoff
        .checked_add((phnum * phentsize) as u64)
        .ok_or_else(|| bad(format!("the program header table at {phoff:#x} is outside the file")))?;
    if table_end > image.len() as u64 {
        return Err(truncated("its program header table", table_end));
    }
    let (mut end, mut entry_loaded) = (0u64, false);
    for i in 0..phnum {
        let at = phoff as usize + i * phentsize; // inside the table, so inside the file
        if le32(image, at) != PT_LOAD {
            continue;
        }
        let (offset, paddr, filesz, memsz) =
            (le64(image, at + 8), le64(image, at + 24), le64(image, at + 32), le64(image, at + 40));
        if memsz < filesz {
            return Err(bad(format!("the segment at {paddr:#x} is smaller in memory than in the file")));
        }
        if memsz == 0 {
            continue; // nothing to load
        }
        let data_end =
            offset.checked_add(filesz).ok_or_else(|| bad(format!("the segment at {paddr:#x} is outside the file")))?;
        if data_end > image.len() as u64 {
            return Err(truncated("a loadable segment", data_end));
        }
        // The zero page, command line and MP table go below 1 MiB, after the kernel.
        if paddr < KERNEL_START {
            return Err(bad(format!("a segment at {paddr:#x} is below 1 MiB, where the boot structures go")));
        }
        // Zeroing the whole segment checks that all of it is RAM; then the file's part is
        // copied in, and what stays zero is the BSS.
        let does_not_fit = || LoaderError::DoesNotFit { what: "a kernel segment".into(), address: paddr, size: memsz };
        let size = usize::try_from(memsz).map_err(|_| does_not_fit())?;
        mem.zero(GuestAddress(paddr), size).map_err(|_| does_not_fit())?;
        copy_in(mem, paddr, &image[offset as usize..data_end as usize], "a kernel segment")?;
        end = end.max(paddr + memsz); // no overflow: the segment is inside RAM
        entry_loaded |= (paddr..paddr + memsz).contains(&entry);
    }
    if end == 0 {
        return Err(bad("no loadable segments".into()));
    }
    if !entry_loaded {
        return Err(bad(format!("the entry point {entry:#x} is in no loadable segment")));
    }
    Ok(LoadedKernel { entry, setup_header: synthetic_setup_header(), end })
}

/// The setup header a vmlinux lacks: just what the 64-bit entry code reads.
pub fn synthetic_setup_header() -> Vec<u8> {
    let mut page = ZeroPage::default();
    page.set_u16(BOOT_FLAG, BOOT_FLAG_MAGIC);
    page.set_u32(HEADER, HDRS_MAGIC);
    page.set_u16(VERSION, 0x020f);
    page.set_u16(XLOADFLAGS, XLF_KERNEL_64);
    page.set_u32(KERNEL_ALIGNMENT, 0x100_0000);
    page.set_u32(INITRD_ADDR_MAX, 0x7fff_ffff);
    page.set_u32(CMDLINE_SIZE, crate::layout::CMDLINE_MAX_SIZE as u32 - 1);
    page.as_bytes()[SETUP_SECTS..INIT_SIZE + 4].to_vec()
}

// qa:begin stage4-initrd-placement
/// Places the initrd as high as allowed: page-aligned, ending below both `initrd_addr_max`
/// and the end of RAM below 4 GiB, above the kernel. Returns its address.
pub fn place_initrd(mem: &GuestMemory, size: u64, kernel_end: u64, initrd_addr_max: u64) -> Option<u64> {
    // The region holding the kernel is the one that runs up to the 32-bit device hole.
    let region = mem.find_region(GuestAddress(crate::layout::KERNEL_START))?;
    let top = region.end().0.min(initrd_addr_max.saturating_add(1));
    let address = top.checked_sub(size)? & !0xfff;
    (address >= kernel_end).then_some(address)
}
// qa:end stage4-initrd-placement

/// Loads the initrd at `path` and returns (address, size).
pub fn load_initrd(
    mem: &GuestMemory,
    path: &Path,
    kernel_end: u64,
    initrd_addr_max: u64,
) -> Result<(u64, u64), LoaderError> {
    let name = path.display().to_string();
    let place = |size| {
        place_initrd(mem, size, kernel_end, initrd_addr_max).ok_or_else(|| LoaderError::DoesNotFit {
            what: format!("the initrd {name}"),
            address: kernel_end,
            size,
        })
    };
    // A file larger than RAM (a disk image, say) is refused before it is read into memory.
    let metadata = std::fs::metadata(path).map_err(|source| LoaderError::Read { path: name.clone(), source })?;
    place(metadata.len())?;
    let initrd = read(path)?;
    if initrd.is_empty() {
        return Err(LoaderError::EmptyInitrd(name));
    }
    let size = initrd.len() as u64;
    let address = place(size)?;
    copy_in(mem, address, &initrd, "the initrd")?;
    Ok((address, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage02::layout::ram_regions;

    const RAM_END: u64 = 64 << 20;

    fn memory() -> GuestMemory {
        GuestMemory::new(&ram_regions(RAM_END)).unwrap()
    }

    /// A file in the temporary directory, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> TempFile {
            let path = std::env::temp_dir().join(format!("minivirt-loader-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn put(image: &mut [u8], at: usize, bytes: &[u8]) {
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// A bzImage with 4 setup sectors and a 4 KiB protected-mode kernel.
    fn fake_bzimage(version: u16, xloadflags: u16) -> Vec<u8> {
        let mut image = vec![0u8; 5 * 512 + 4096];
        image[SETUP_SECTS] = 4;
        put(&mut image, SYSSIZE, &(4096u32 / 16).to_le_bytes());
        image[JUMP + 1] = 0x6a; // header ends at 0x26c, as in 6.1 kernels
        put(&mut image, HEADER, b"HdrS");
        put(&mut image, VERSION, &version.to_le_bytes());
        put(&mut image, XLOADFLAGS, &xloadflags.to_le_bytes());
        image[5 * 512] = 0xe8; // first byte of the protected-mode kernel
        image
    }

    fn bzimage_error(image: &[u8]) -> String {
        load_bzimage(&memory(), image, "k").unwrap_err().to_string()
    }

    #[test]
    fn a_bzimage_goes_to_1_mib_with_its_entry_at_0x200() {
        let mem = memory();
        let kernel = load_bzimage(&mem, &fake_bzimage(0x20f, XLF_KERNEL_64), "k").unwrap();
        assert_eq!(kernel.entry, 0x10_0200);
        assert_eq!(kernel.setup_header.len(), 0x26c - 0x1f1);
        assert_eq!(kernel.end, 0x10_0000 + 4096);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x10_0000)).unwrap(), 0xe8);
    }

    #[test]
    fn old_or_32_bit_only_bzimages_are_refused() {
        let mem = memory();
        assert!(matches!(load_bzimage(&mem, &fake_bzimage(0x20b, 1), "k"), Err(LoaderError::OldProtocol { .. })));
        assert!(matches!(load_bzimage(&mem, &fake_bzimage(0x20f, 0), "k"), Err(LoaderError::No64BitEntry(_))));
    }

    #[test]
    fn not_a_kernel_is_named() {
        let file = TempFile::new("text", b"just some text\n");
        let err = load_kernel(&memory(), &file.0).unwrap_err();
        assert!(err.to_string().contains("is not a Linux kernel"), "{err}");
    }

    #[test]
    fn a_bzimage_cut_off_in_its_header_is_named() {
        // Issue 12's file: 0x210 bytes with "HdrS" and protocol 2.15, whose header needs 0x26c.
        let mut image = vec![0u8; 0x210];
        put(&mut image, HEADER, b"HdrS");
        put(&mut image, VERSION, &0x020fu16.to_le_bytes());
        let file = TempFile::new("truncated-bzImage", &image);
        let err = load_kernel(&memory(), &file.0).unwrap_err();
        let expected = "is truncated: its boot header ends at 0x26c but the file has 0x210 bytes";
        assert_eq!(err.to_string(), format!("{} {expected}", file.0.display()));
        // Cut before the version, and within a header that the jump byte says is longer.
        assert_eq!(
            bzimage_error(&image[..0x207]),
            "k is truncated: its boot header ends at 0x208 but the file has 0x207 bytes"
        );
        let mut long_header = fake_bzimage(0x20f, XLF_KERNEL_64);
        long_header[JUMP + 1] = 0xff;
        assert_eq!(
            bzimage_error(&long_header[..0x280]),
            "k is truncated: its boot header ends at 0x301 but the file has 0x280 bytes"
        );
    }

    #[test]
    fn a_header_shorter_than_its_protocol_is_refused() {
        let mut image = fake_bzimage(0x20f, XLF_KERNEL_64);
        image[JUMP + 1] = 0x20; // would end at 0x222, inside the protocol's fields
        assert_eq!(
            bzimage_error(&image),
            "k: its boot header ends at 0x222, before the fields of protocol 0x020f (up to 0x26c)"
        );
    }

    #[test]
    fn more_setup_sectors_than_the_file_has_is_named() {
        let mut image = fake_bzimage(0x20f, XLF_KERNEL_64);
        image[SETUP_SECTS] = 40;
        assert_eq!(
            bzimage_error(&image),
            "k is truncated: its setup code ends at 0x5200 but the file has 0x1a00 bytes"
        );
    }

    #[test]
    fn a_kernel_shorter_than_its_syssize_is_named() {
        let image = fake_bzimage(0x20f, XLF_KERNEL_64);
        assert_eq!(
            bzimage_error(&image[..5 * 512 + 0x800]),
            "k is truncated: its protected-mode kernel ends at 0x1a00 but the file has 0x1200 bytes"
        );
        let mut tiny = image;
        put(&mut tiny, SYSSIZE, &0x20u32.to_le_bytes());
        assert!(bzimage_error(&tiny).contains("too small for the 64-bit entry at 0x200"));
    }

    #[test]
    fn a_kernel_whose_init_size_exceeds_ram_does_not_fit() {
        let mut image = fake_bzimage(0x20f, XLF_KERNEL_64);
        put(&mut image, INIT_SIZE, &(64u32 << 20).to_le_bytes());
        assert_eq!(
            bzimage_error(&image),
            "the kernel with its init_size (67108864 bytes at 0x100000) does not fit in guest RAM; try a larger --mem"
        );
        put(&mut image, INIT_SIZE, &(32u32 << 20).to_le_bytes());
        assert_eq!(load_bzimage(&memory(), &image, "k").unwrap().end, 0x10_0000 + (32 << 20));
    }

    /// Offset of the one program header of [`minimal_elf`].
    const PH: usize = 64;

    /// An ELF vmlinux of 0x200 bytes: one PT_LOAD of 0x10 bytes from offset 0x100, loaded at
    /// 16 MiB with 0x2000 bytes in memory; the entry point is its first byte.
    fn minimal_elf() -> Vec<u8> {
        let mut elf = vec![0u8; 0x200];
        put(&mut elf, 0, &ELF_MAGIC);
        elf[4] = ELFCLASS64;
        put(&mut elf, 18, &EM_X86_64.to_le_bytes());
        put(&mut elf, 24, &0x100_0000u64.to_le_bytes()); // e_entry
        put(&mut elf, 32, &(PH as u64).to_le_bytes()); // e_phoff
        put(&mut elf, 54, &56u16.to_le_bytes()); // e_phentsize
        put(&mut elf, 56, &1u16.to_le_bytes()); // e_phnum
        put(&mut elf, PH, &PT_LOAD.to_le_bytes());
        put(&mut elf, PH + 8, &0x100u64.to_le_bytes()); // p_offset
        put(&mut elf, PH + 24, &0x100_0000u64.to_le_bytes()); // p_paddr
        put(&mut elf, PH + 32, &0x10u64.to_le_bytes()); // p_filesz
        put(&mut elf, PH + 40, &0x2000u64.to_le_bytes()); // p_memsz
        elf[0x100] = 0x90;
        elf
    }

    fn elf_error(elf: &[u8]) -> LoaderError {
        load_elf(&memory(), elf, "vmlinux").unwrap_err()
    }

    #[test]
    fn a_minimal_elf_is_loaded_at_its_physical_address() {
        let elf = minimal_elf();
        let mem = memory();
        mem.write_obj(GuestAddress(0x100_0010), 0xffu8).unwrap();
        let kernel = load_elf(&mem, &elf, "vmlinux").unwrap();
        assert_eq!((kernel.entry, kernel.end), (0x100_0000, 0x100_2000));
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x100_0000)).unwrap(), 0x90);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x100_0010)).unwrap(), 0, "BSS is zeroed");
    }

    #[test]
    fn an_elf_segment_past_the_end_of_the_file_is_named() {
        let mut elf = minimal_elf();
        put(&mut elf, PH + 32, &0x1000u64.to_le_bytes());
        assert_eq!(
            elf_error(&elf).to_string(),
            "vmlinux is truncated: a loadable segment ends at 0x1100 but the file has 0x200 bytes"
        );
        assert_eq!(
            elf_error(&elf[..0x20]).to_string(),
            "vmlinux is truncated: its ELF header ends at 0x40 but the file has 0x20 bytes"
        );
    }

    #[test]
    fn an_elf_program_header_table_past_the_end_of_the_file_is_named() {
        let mut elf = minimal_elf();
        put(&mut elf, 56, &3u16.to_le_bytes()); // e_phnum: 3 × 56 bytes from 0x40 end at 0xe8
        assert_eq!(
            elf_error(&elf[..0xc0]).to_string(),
            "vmlinux is truncated: its program header table ends at 0xe8 but the file has 0xc0 bytes"
        );
        put(&mut elf, 56, &0xffffu16.to_le_bytes());
        put(&mut elf, 54, &0xffffu16.to_le_bytes());
        assert!(matches!(elf_error(&elf), LoaderError::Truncated { end: 0xfffe_0041, .. }));
    }

    #[test]
    fn overflowing_elf_offsets_are_errors_not_panics() {
        let cases: [(usize, u64); 5] = [
            (32, u64::MAX - 0x10),       // e_phoff: the table wraps around
            (PH + 8, u64::MAX - 4),      // p_offset + p_filesz wraps
            (PH + 24, u64::MAX - 0xff),  // p_paddr + p_memsz wraps
            (PH + 40, u64::MAX),         // p_memsz larger than any RAM
            (PH + 24, RAM_END - 0x1000), // the BSS runs past the end of RAM
        ];
        for (offset, value) in cases {
            let mut elf = minimal_elf();
            put(&mut elf, offset, &value.to_le_bytes());
            let err = elf_error(&elf);
            assert!(
                matches!(
                    err,
                    LoaderError::BadElf { .. } | LoaderError::Truncated { .. } | LoaderError::DoesNotFit { .. }
                ),
                "{offset:#x} = {value:#x}: {err}"
            );
        }
    }

    #[test]
    fn a_segment_ending_at_the_end_of_ram_is_loaded() {
        let mut elf = minimal_elf();
        put(&mut elf, 24, &(RAM_END - 0x10).to_le_bytes());
        put(&mut elf, PH + 24, &(RAM_END - 0x10).to_le_bytes());
        put(&mut elf, PH + 40, &0x10u64.to_le_bytes()); // no BSS
        let kernel = load_elf(&memory(), &elf, "vmlinux").unwrap();
        assert_eq!(kernel.end, RAM_END);
    }

    #[test]
    fn elf_segments_and_entry_points_outside_the_kernel_are_refused() {
        let mut elf = minimal_elf();
        put(&mut elf, 24, &0x200_0000u64.to_le_bytes());
        assert_eq!(elf_error(&elf).to_string(), "vmlinux: the entry point 0x2000000 is in no loadable segment");
        let mut elf = minimal_elf();
        put(&mut elf, 24, &0x7000u64.to_le_bytes());
        put(&mut elf, PH + 24, &0x7000u64.to_le_bytes());
        assert!(elf_error(&elf).to_string().contains("below 1 MiB"));
    }

    #[test]
    fn the_initrd_goes_high_but_below_the_limits() {
        let mem = memory();
        let end_of_ram = 64 << 20;
        assert_eq!(place_initrd(&mem, 0x1800, 0x20_0000, 0x7fff_ffff), Some(end_of_ram - 0x2000));
        assert_eq!(place_initrd(&mem, 0x1000, 0x20_0000, 0x1ff_ffff), Some(0x200_0000 - 0x1000));
        assert_eq!(place_initrd(&mem, 63 << 20, 0x20_0000, 0x7fff_ffff), None, "overlaps the kernel");
        assert_eq!(place_initrd(&mem, 1 << 40, 0x20_0000, 0x7fff_ffff), None, "larger than RAM");
    }

    #[test]
    fn an_initrd_is_loaded_where_it_was_placed() {
        let mem = memory();
        let file = TempFile::new("initrd", &[0x5a; 0x1800]);
        let (address, size) = load_initrd(&mem, &file.0, 0x20_0000, 0x7fff_ffff).unwrap();
        assert_eq!((address, size), (RAM_END - 0x2000, 0x1800));
        assert_eq!(mem.read_obj::<u8>(GuestAddress(address + 0x17ff)).unwrap(), 0x5a);
    }

    #[test]
    fn empty_or_oversized_initrds_are_named() {
        let mem = memory();
        let empty = TempFile::new("empty-initrd", b"");
        let err = load_initrd(&mem, &empty.0, 0x20_0000, 0x7fff_ffff).unwrap_err();
        assert_eq!(err.to_string(), format!("the initrd {} is empty", empty.0.display()));
        // A sparse 1 GiB file: refused from its size, without reading it.
        let huge = TempFile::new("huge-initrd", b"");
        std::fs::File::options().write(true).open(&huge.0).unwrap().set_len(1 << 30).unwrap();
        let err = load_initrd(&mem, &huge.0, 0x20_0000, 0x7fff_ffff).unwrap_err();
        assert!(matches!(err, LoaderError::DoesNotFit { size: 0x4000_0000, .. }), "{err}");
    }
}
