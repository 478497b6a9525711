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
//! # Resources
//! - Linux `Documentation/arch/x86/boot.rst` ("Loading the rest of the kernel", "64-bit Boot
//!   Protocol"); the ELF-64 specification (`Elf64_Ehdr`, `Elf64_Phdr`).

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
    let image = read(path)?;
    let name = path.display().to_string();
    if image.starts_with(&ELF_MAGIC) {
        load_elf(mem, &image, &name)
    } else if image.len() > HEADER + 4 && image[HEADER..HEADER + 4] == HDRS_MAGIC.to_le_bytes() {
        load_bzimage(mem, &image, &name)
    } else {
        Err(LoaderError::NotAKernel(name))
    }
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le32(bytes, at)) | u64::from(le32(bytes, at + 4)) << 32
}

// qa:begin stage4-bzimage
/// Loads a bzImage: checks the header, copies the protected-mode part to 1 MiB.
pub fn load_bzimage(mem: &GuestMemory, image: &[u8], name: &str) -> Result<LoadedKernel, LoaderError> {
    let version = le16(image, VERSION);
    if version < MIN_BOOT_PROTOCOL {
        return Err(LoaderError::OldProtocol { path: name.to_string(), version });
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
    let header_end = (JUMP + 2 + usize::from(image[JUMP + 1])).min(setup_size);
    let kernel =
        image.get(setup_size..).filter(|k| !k.is_empty()).ok_or_else(|| LoaderError::NotAKernel(name.to_string()))?;
    copy_in(mem, KERNEL_START, kernel, "the kernel")?;
    let init_size = u64::from(le32(image, INIT_SIZE)).max(kernel.len() as u64);
    Ok(LoadedKernel {
        entry: KERNEL_START + 0x200,
        setup_header: image[SETUP_SECTS..header_end].to_vec(),
        end: KERNEL_START + init_size,
    })
}
// qa:end stage4-bzimage

/// Loads an ELF64 vmlinux: each PT_LOAD segment at its physical address, BSS zeroed.
pub fn load_elf(mem: &GuestMemory, image: &[u8], name: &str) -> Result<LoadedKernel, LoaderError> {
    let bad = |what: &str| LoaderError::BadElf { path: name.to_string(), what: what.to_string() };
    if image.len() < 64 || image[4] != ELFCLASS64 || le16(image, 18) != EM_X86_64 {
        return Err(bad("not a 64-bit x86 ELF file"));
    }
    let entry = le64(image, 24);
    let (phoff, phentsize, phnum) = (le64(image, 32), usize::from(le16(image, 54)), usize::from(le16(image, 56)));
    if phentsize < 56 {
        return Err(bad("program headers are too small"));
    }
    let mut end = 0u64;
    for i in 0..phnum {
        let at =
            usize::try_from(phoff).ok().and_then(|p| p.checked_add(i * phentsize)).filter(|a| a + 56 <= image.len());
        let at = at.ok_or_else(|| bad("program header table is outside the file"))?;
        if le32(image, at) != PT_LOAD {
            continue;
        }
        let (offset, paddr, filesz, memsz) =
            (le64(image, at + 8), le64(image, at + 24), le64(image, at + 32), le64(image, at + 40));
        let data = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(filesz).ok())
            .and_then(|(o, n)| image.get(o..o.checked_add(n)?))
            .ok_or_else(|| bad("a segment is outside the file"))?;
        if memsz < filesz {
            return Err(bad("a segment is smaller in memory than in the file"));
        }
        copy_in(mem, paddr, data, "a kernel segment")?;
        let bss = usize::try_from(memsz - filesz).map_err(|_| bad("a segment is too large"))?;
        mem.zero(GuestAddress(paddr + filesz), bss).map_err(|_| LoaderError::DoesNotFit {
            what: "the kernel's BSS".into(),
            address: paddr + filesz,
            size: memsz - filesz,
        })?;
        end = end.max(paddr + memsz);
    }
    if end == 0 {
        return Err(bad("no loadable segments"));
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
    let initrd = read(path)?;
    let size = initrd.len() as u64;
    let address = place_initrd(mem, size, kernel_end, initrd_addr_max).ok_or_else(|| LoaderError::DoesNotFit {
        what: format!("the initrd {}", path.display()),
        address: kernel_end,
        size,
    })?;
    copy_in(mem, address, &initrd, "the initrd")?;
    Ok((address, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage02::layout::ram_regions;

    fn memory() -> GuestMemory {
        GuestMemory::new(&ram_regions(64 << 20)).unwrap()
    }

    fn fake_bzimage(version: u16, xloadflags: u16) -> Vec<u8> {
        let mut image = vec![0u8; 5 * 512 + 4096];
        image[SETUP_SECTS] = 4;
        image[JUMP + 1] = 0x6a; // header ends at 0x26c, as in 6.1 kernels
        image[HEADER..HEADER + 4].copy_from_slice(b"HdrS");
        image[VERSION..VERSION + 2].copy_from_slice(&version.to_le_bytes());
        image[XLOADFLAGS..XLOADFLAGS + 2].copy_from_slice(&xloadflags.to_le_bytes());
        image[5 * 512] = 0xe8; // first byte of the protected-mode kernel
        image
    }

    #[test]
    fn a_bzimage_goes_to_1_mib_with_its_entry_at_0x200() {
        let mem = memory();
        let kernel = load_bzimage(&mem, &fake_bzimage(0x20f, XLF_KERNEL_64), "k").unwrap();
        assert_eq!(kernel.entry, 0x10_0200);
        assert_eq!(kernel.setup_header.len(), 0x26c - 0x1f1);
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
        let dir = std::env::temp_dir().join(format!("minivirt-loader-{}", std::process::id()));
        std::fs::write(&dir, b"just some text\n").unwrap();
        let err = load_kernel(&memory(), &dir).unwrap_err();
        assert!(err.to_string().contains("is not a Linux kernel"), "{err}");
        std::fs::remove_file(dir).unwrap();
    }

    #[test]
    fn a_minimal_elf_is_loaded_at_its_physical_address() {
        let mut elf = vec![0u8; 0x200];
        elf[..4].copy_from_slice(&ELF_MAGIC);
        elf[4] = ELFCLASS64;
        elf[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        elf[24..32].copy_from_slice(&0x100_0000u64.to_le_bytes()); // e_entry
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[54..56].copy_from_slice(&56u16.to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        elf[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        elf[ph + 8..ph + 16].copy_from_slice(&0x100u64.to_le_bytes()); // p_offset
        elf[ph + 24..ph + 32].copy_from_slice(&0x100_0000u64.to_le_bytes()); // p_paddr
        elf[ph + 32..ph + 40].copy_from_slice(&0x10u64.to_le_bytes()); // p_filesz
        elf[ph + 40..ph + 48].copy_from_slice(&0x2000u64.to_le_bytes()); // p_memsz
        elf[0x100] = 0x90;
        let mem = memory();
        mem.write_obj(GuestAddress(0x100_0010), 0xffu8).unwrap();
        let kernel = load_elf(&mem, &elf, "vmlinux").unwrap();
        assert_eq!((kernel.entry, kernel.end), (0x100_0000, 0x100_2000));
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x100_0000)).unwrap(), 0x90);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x100_0010)).unwrap(), 0, "BSS is zeroed");
        // A segment outside the file is refused, not read out of bounds.
        elf[ph + 32..ph + 40].copy_from_slice(&0x1000u64.to_le_bytes());
        assert!(matches!(load_elf(&mem, &elf, "vmlinux"), Err(LoaderError::BadElf { .. })));
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
}
