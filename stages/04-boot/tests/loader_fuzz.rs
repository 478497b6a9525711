//! Deterministic fuzzing of the kernel and initrd loaders (issue 12): random files, valid
//! minimal images cut at every length, and valid images with random bytes and header fields.
//!
//! Whatever the file holds, loading must not panic, and when it succeeds everything the loader
//! says it loaded must lie inside guest RAM: the kernel up to its `end`, the entry point inside
//! the loaded kernel, the initrd below both the end of RAM and its limit. The random numbers
//! come from a seeded splitmix64, as in stage 6's virtio fuzz loop, so a failure reproduces.

use stage02::layout::ram_regions;
use stage02::memory::{GuestAddress, GuestMemory};
use stage04::bootparams::*;
use stage04::layout::KERNEL_START;
use stage04::loader::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Guest RAM for the kernel tests: 640 KiB low, then 1 MiB to 4 MiB.
const RAM_SIZE: u64 = 4 << 20;

/// A small deterministic PRNG (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// A value for a field of `width` bytes: often one at an edge, the file's length or RAM's.
    fn field_value(&mut self, width: usize, file_len: usize) -> u64 {
        let max = if width == 8 { u64::MAX } else { (1u64 << (8 * width)) - 1 };
        let value = match self.below(10) {
            0 => 0,
            1 => 1,
            2 => max - self.below(2),
            3 => self.below(0x1000),
            4 => (file_len as u64).wrapping_add(self.below(0x200)).wrapping_sub(0x100),
            5 => RAM_SIZE.wrapping_add(self.below(0x2000)).wrapping_sub(0x1000),
            6 => KERNEL_START + self.below(RAM_SIZE),
            7 => max.wrapping_sub(self.below(0x1_0000)),
            _ => self.next(),
        };
        value & max
    }
}

fn put(image: &mut [u8], at: usize, bytes: &[u8]) {
    image[at..at + bytes.len()].copy_from_slice(bytes);
}

/// `syssize`, the protected-mode kernel's length in 16-byte paragraphs.
const SYSSIZE: usize = 0x1f4;
/// The valid bzImage's protected-mode kernel: 1 KiB after 4 setup sectors and the boot sector.
const BZ_SETUP_SIZE: usize = 5 * 512;
const BZ_KERNEL_SIZE: usize = 0x400;

/// A minimal valid bzImage, every byte of it needed: protocol 2.15, header to 0x26c, 64-bit
/// entry, init_size 1 MiB.
fn valid_bzimage() -> Vec<u8> {
    let mut image: Vec<u8> = (0..BZ_SETUP_SIZE + BZ_KERNEL_SIZE).map(|i| (i * 7) as u8).collect();
    image[SETUP_SECTS] = 4;
    put(&mut image, SYSSIZE, &(BZ_KERNEL_SIZE as u32 / 16).to_le_bytes());
    put(&mut image, BOOT_FLAG, &BOOT_FLAG_MAGIC.to_le_bytes());
    put(&mut image, JUMP, &[0xeb, 0x6a]);
    put(&mut image, HEADER, b"HdrS");
    put(&mut image, VERSION, &0x020fu16.to_le_bytes());
    put(&mut image, XLOADFLAGS, &XLF_KERNEL_64.to_le_bytes());
    put(&mut image, INIT_SIZE, &0x10_0000u32.to_le_bytes());
    image
}

/// Header fields of a bzImage worth corrupting: (offset, width).
const BZ_FIELDS: &[(usize, usize)] = &[
    (SETUP_SECTS, 1),
    (SYSSIZE, 4),
    (JUMP + 1, 1),
    (HEADER, 4),
    (VERSION, 2),
    (XLOADFLAGS, 2),
    (INITRD_ADDR_MAX, 4),
    (CMDLINE_SIZE, 4),
    (INIT_SIZE, 4),
];

/// Offsets of the valid ELF's two program headers.
const PHDRS: [usize; 2] = [64, 64 + 56];

/// A minimal valid ELF vmlinux of 0x200 bytes, every byte of it needed: two PT_LOAD segments,
/// at 2 MiB (0x80 bytes from the file, 0x1000 in memory) and 3 MiB (0x80 bytes, ending the file).
fn valid_elf() -> Vec<u8> {
    let mut elf: Vec<u8> = (0..0x200).map(|i| (i * 13) as u8).collect();
    put(&mut elf, 0, &ELF_MAGIC);
    put(&mut elf, 4, &[ELFCLASS64, 1, 1]);
    put(&mut elf, 18, &EM_X86_64.to_le_bytes());
    put(&mut elf, 24, &0x20_0000u64.to_le_bytes()); // e_entry
    put(&mut elf, 32, &64u64.to_le_bytes()); // e_phoff
    put(&mut elf, 54, &56u16.to_le_bytes()); // e_phentsize
    put(&mut elf, 56, &2u16.to_le_bytes()); // e_phnum
    for (ph, (offset, paddr, memsz)) in
        PHDRS.into_iter().zip([(0x100u64, 0x20_0000u64, 0x1000u64), (0x180, 0x30_0000, 0x80)])
    {
        put(&mut elf, ph, &PT_LOAD.to_le_bytes());
        put(&mut elf, ph + 8, &offset.to_le_bytes());
        put(&mut elf, ph + 24, &paddr.to_le_bytes());
        put(&mut elf, ph + 32, &0x80u64.to_le_bytes()); // p_filesz
        put(&mut elf, ph + 40, &memsz.to_le_bytes());
    }
    elf
}

/// Header fields of an ELF worth corrupting: (offset, width).
fn elf_fields() -> Vec<(usize, usize)> {
    let mut fields = vec![(4, 1), (18, 2), (24, 8), (32, 8), (54, 2), (56, 2)];
    for ph in PHDRS {
        fields.extend([(ph, 4), (ph + 8, 8), (ph + 24, 8), (ph + 32, 8), (ph + 40, 8)]);
    }
    fields
}

/// Loads `image` and checks the loader's claims against guest RAM and the image. Panics (the
/// test fails) naming `case` if the loader panicked or claims something outside RAM.
fn check(mem: &GuestMemory, image: &[u8], case: &dyn Fn() -> String) -> bool {
    let result = catch_unwind(AssertUnwindSafe(|| load_kernel_image(mem, image, "fuzz")))
        .unwrap_or_else(|_| panic!("{}: the loader panicked on a file of {:#x} bytes", case(), image.len()));
    let Ok(kernel) = result else { return false };
    let ram = |address: u64, size: u64| mem.contains_range(GuestAddress(address), size as usize);
    if image.starts_with(&ELF_MAGIC) {
        assert!(kernel.end > KERNEL_START && ram(kernel.end - 1, 1), "{}: ELF end {:#x}", case(), kernel.end);
        assert!(ram(kernel.entry, 1) && kernel.entry < kernel.end, "{}: ELF entry {:#x}", case(), kernel.entry);
    } else {
        assert_eq!(kernel.entry, KERNEL_START + 0x200, "{}", case());
        assert!(kernel.end > kernel.entry && ram(KERNEL_START, kernel.end - KERNEL_START), "{}: end", case());
        // The entry point was loaded, from 0x200 past the setup sectors.
        let setup_sects = match image[SETUP_SECTS] {
            0 => 4,
            n => usize::from(n),
        };
        let setup_size = (setup_sects + 1) * 512;
        let entry_byte: u8 = mem.read_obj(GuestAddress(kernel.entry)).unwrap();
        assert_eq!(Some(&entry_byte), image.get(setup_size + 0x200), "{}: entry byte", case());
        // The setup header is the image's own, from 0x1f1, complete for protocol 2.12+.
        let header = &kernel.setup_header;
        assert!(header.len() >= 0x268 - SETUP_SECTS, "{}: header of {:#x} bytes", case(), header.len());
        assert_eq!(Some(header.as_slice()), image.get(SETUP_SECTS..SETUP_SECTS + header.len()), "{}", case());
    }
    true
}

#[test]
fn random_files_never_panic() {
    let mem = GuestMemory::new(&ram_regions(RAM_SIZE)).unwrap();
    let mut rng = Rng(0x6c6f_6164_6572_0001);
    for round in 0..20_000 {
        let len = rng.index(0x1800);
        let mut image = rng.bytes(len);
        // Give most files a magic, so that they get past the first check.
        match rng.below(3) {
            0 if image.len() >= 58 => {
                put(&mut image, 0, &ELF_MAGIC);
                if rng.chance(70) {
                    image[4] = ELFCLASS64;
                    put(&mut image, 18, &EM_X86_64.to_le_bytes());
                    put(&mut image, 54, &56u16.to_le_bytes());
                }
            }
            1 if image.len() >= 0x208 => {
                put(&mut image, HEADER, b"HdrS");
                if rng.chance(70) {
                    put(&mut image, VERSION, &(0x020c + rng.below(8) as u16).to_le_bytes());
                }
            }
            _ => {}
        }
        check(&mem, &image, &|| format!("random file {round}"));
    }
}

#[test]
fn valid_images_cut_at_every_length_are_refused_and_longer_ones_load() {
    let mem = GuestMemory::new(&ram_regions(RAM_SIZE)).unwrap();
    let mut rng = Rng(0x6c6f_6164_6572_0002);
    for (kind, valid) in [("bzImage", valid_bzimage()), ("ELF", valid_elf())] {
        assert!(check(&mem, &valid, &|| format!("the valid {kind}")), "the valid {kind} loads");
        for len in 0..valid.len() {
            let loaded = check(&mem, &valid[..len], &|| format!("{kind} cut to {len:#x} bytes"));
            assert!(!loaded, "{kind} cut to {len:#x} bytes loads");
        }
        for round in 0..1000 {
            // Random bytes after the image are not part of it.
            let mut longer = valid.clone();
            let extra = 1 + rng.index(0x800);
            longer.extend(rng.bytes(extra));
            let loaded = check(&mem, &longer, &|| format!("{kind} extended to {:#x} bytes ({round})", longer.len()));
            assert!(loaded, "{kind} extended to {:#x} bytes is refused", longer.len());
        }
    }
}

#[test]
fn corrupted_headers_never_panic_or_load_outside_ram() {
    let mem = GuestMemory::new(&ram_regions(RAM_SIZE)).unwrap();
    let mut rng = Rng(0x6c6f_6164_6572_0003);
    let elf_fields = elf_fields();
    for (kind, valid, fields, header_len) in
        [("bzImage", valid_bzimage(), BZ_FIELDS, 0x300), ("ELF", valid_elf(), elf_fields.as_slice(), 0xb0)]
    {
        let mut loaded = 0;
        let rounds = 40_000;
        for round in 0..rounds {
            let mut image = valid.clone();
            let mut changes = Vec::new();
            if rng.chance(50) {
                // Random bytes, mostly in the headers.
                for _ in 0..1 + rng.below(8) {
                    let at = if rng.chance(80) { rng.index(header_len) } else { rng.index(image.len()) };
                    image[at] = rng.next() as u8;
                    changes.push(format!("byte {at:#x} = {:#04x}", image[at]));
                }
            } else {
                // Random values, of the right width, in header fields.
                for _ in 0..1 + rng.below(3) {
                    let (at, width) = fields[rng.index(fields.len())];
                    let value = rng.field_value(width, image.len());
                    put(&mut image, at, &value.to_le_bytes()[..width]);
                    changes.push(format!("field {at:#x}/{width} = {value:#x}"));
                }
            }
            if rng.chance(10) {
                image.truncate(rng.index(image.len() + 1));
                changes.push(format!("cut to {:#x} bytes", image.len()));
            }
            if check(&mem, &image, &|| format!("{kind} round {round}: {}", changes.join(", "))) {
                loaded += 1;
            }
        }
        // Some corruptions are harmless (a byte of code, a larger init_size): the loop must
        // reach the success path often enough for its checks to mean something.
        assert!(loaded > rounds / 20, "only {loaded} of {rounds} corrupted {kind}s loaded");
        assert!(loaded < rounds, "every corrupted {kind} loaded");
    }
}

#[test]
fn initrds_of_any_size_land_inside_ram_and_below_their_limit() {
    let mem = GuestMemory::new(&ram_regions(RAM_SIZE)).unwrap();
    let main_ram_end = RAM_SIZE;
    let mut rng = Rng(0x6c6f_6164_6572_0004);
    for round in 0..20_000 {
        let size = match rng.below(4) {
            0 => rng.next(),
            1 => rng.below(RAM_SIZE + 0x2000),
            _ => rng.below(0x10_0000),
        };
        let kernel_end = if rng.chance(90) { KERNEL_START + rng.below(RAM_SIZE) } else { rng.next() };
        let addr_max = if rng.chance(70) { rng.below(RAM_SIZE + 0x1000) } else { rng.next() };
        if let Some(address) = place_initrd(&mem, size, kernel_end, addr_max) {
            let case = format!("round {round}: size {size:#x}, kernel end {kernel_end:#x}, limit {addr_max:#x}");
            assert!(address >= kernel_end && address % 0x1000 == 0, "{case}: at {address:#x}");
            let end = address.checked_add(size).unwrap_or_else(|| panic!("{case}: wraps"));
            assert!(end <= main_ram_end && end <= addr_max.saturating_add(1), "{case}: ends at {end:#x}");
        }
    }
    // Whole files, as sparse files of random sizes with a marker at each end.
    let path = std::env::temp_dir().join(format!("minivirt-loader-fuzz-{}", std::process::id()));
    for round in 0..40 {
        let size = rng.below(RAM_SIZE + 0x1000);
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(size).unwrap();
        if size > 0 {
            use std::os::unix::fs::FileExt;
            file.write_all_at(b"<", 0).unwrap();
            file.write_all_at(b">", size - 1).unwrap();
        }
        let kernel_end = KERNEL_START + rng.below(RAM_SIZE - KERNEL_START);
        let addr_max = if rng.chance(50) { 0x37ff_ffff } else { kernel_end + rng.below(RAM_SIZE) };
        let case = format!("file round {round}: size {size:#x}, kernel end {kernel_end:#x}, limit {addr_max:#x}");
        match load_initrd(&mem, &path, kernel_end, addr_max) {
            Ok((address, loaded)) => {
                assert_eq!(loaded, size, "{case}");
                assert!(address >= kernel_end && address + size <= main_ram_end.min(addr_max + 1), "{case}");
                assert_eq!(mem.read_obj::<u8>(GuestAddress(address)).unwrap(), b'<', "{case}");
                assert_eq!(mem.read_obj::<u8>(GuestAddress(address + size - 1)).unwrap(), b'>', "{case}");
            }
            Err(LoaderError::EmptyInitrd(_)) => assert_eq!(size, 0, "{case}"),
            Err(LoaderError::DoesNotFit { .. }) => {
                assert!(place_initrd(&mem, size, kernel_end, addr_max).is_none(), "{case}")
            }
            Err(e) => panic!("{case}: {e}"),
        }
    }
    let _ = std::fs::remove_file(&path);
}
