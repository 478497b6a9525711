//! Stage 4's kernel loaders (bzImage and ELF `vmlinux`) on an arbitrary file, then what the VMM
//! does with what they return: the zero page from the setup header, the command line within its
//! `cmdline_size`, and the initrd placed below `initrd_addr_max`.
//!
//! The input is the kernel file itself, so real kernels and the minimal images of
//! `stages/04-boot/tests/loader_fuzz.rs` are seeds as they are. The initrd sizes tried are fixed
//! ones and one taken from the file's last eight bytes.
//!
//! Invariants:
//! - the loader writes guest memory only from 1 MiB up (never the boot structures below), and on
//!   success only inside `[1 MiB, end)`; what it claims lies inside RAM: the entry point inside
//!   the loaded kernel, `end` after it;
//! - a bzImage's entry byte is the image's byte at `0x200` of its protected-mode part, and its
//!   setup header is the image's own, complete for the protocol it states;
//! - an initrd is placed page-aligned, above the kernel, ending inside RAM and at or below
//!   `initrd_addr_max + 1`, or refused.

use stage02::layout::ram_regions;
use stage02::memory::GuestAddress;
use stage04::bootparams::{ZeroPage, CMDLINE_SIZE, INITRD_ADDR_MAX, SETUP_SECTS};
use stage04::cmdline::{build_cmdline, BASE_CMDLINE};
use stage04::layout::{CMDLINE_MAX_SIZE, KERNEL_START};
use stage04::loader::{load_kernel_image, place_initrd, ELF_MAGIC};

use crate::guest_ram::{assert_writes_within, RangeSet, TestRam};

/// Guest RAM of the loader target: 640 KiB low, then 1 MiB to 2 MiB.
pub const LOADER_RAM_SIZE: u64 = 2 << 20;

thread_local! {
    static RAM: TestRam = TestRam::new(&ram_regions(LOADER_RAM_SIZE));
}

/// Loads `data` as a kernel file and checks the loader's claims and writes.
pub fn kernel_loader(data: &[u8]) {
    RAM.with(|ram| run(data, ram));
}

fn run(image: &[u8], ram: &TestRam) {
    ram.reset();
    let mem = ram.memory();
    let result = load_kernel_image(mem, image, "fuzz");
    let changed = ram.changed_since_reset();
    let mut allowed = RangeSet::default();
    let kernel = match result {
        Ok(kernel) => kernel,
        Err(_) => {
            // A failed ELF load may have loaded some segments first; still never below 1 MiB.
            allowed.add(KERNEL_START, u64::MAX);
            assert_writes_within(&changed, &allowed, &|| "a refused kernel".into());
            return;
        }
    };
    let in_ram = |address: u64, size: u64| ram.contains(address, size);
    assert!(kernel.end > KERNEL_START && in_ram(kernel.end - 1, 1), "end {:#x} outside RAM", kernel.end);
    assert!(kernel.entry >= KERNEL_START && kernel.entry < kernel.end, "entry {:#x}", kernel.entry);
    allowed.add(KERNEL_START, kernel.end - KERNEL_START);
    assert_writes_within(&changed, &allowed, &|| format!("a kernel loaded up to {:#x}", kernel.end));
    if !image.starts_with(&ELF_MAGIC) {
        let setup_sects = match image[SETUP_SECTS] {
            0 => 4,
            n => usize::from(n),
        };
        let entry_in_file = (setup_sects + 1) * 512 + 0x200;
        let entry_byte: u8 = mem.read_obj(GuestAddress(kernel.entry)).expect("the entry is in RAM");
        assert_eq!(Some(&entry_byte), image.get(entry_in_file), "the entry byte");
        let header = &kernel.setup_header;
        assert!(header.len() >= 0x268 - SETUP_SECTS, "a setup header of {:#x} bytes", header.len());
        assert_eq!(Some(header.as_slice()), image.get(SETUP_SECTS..SETUP_SECTS + header.len()), "the setup header");
    }

    // What the VMM does next with the header (stage 4's `load_guest`).
    let mut zero_page = ZeroPage::with_setup_header(&kernel.setup_header);
    zero_page.set_loader();
    let max_len = match zero_page.u32(CMDLINE_SIZE) {
        0 => CMDLINE_MAX_SIZE as usize - 1,
        n => n as usize,
    };
    if let Ok(line) = build_cmdline(&[BASE_CMDLINE, "root=/dev/vda"], max_len) {
        assert!(line.len() <= max_len, "a command line of {} bytes for at most {max_len}", line.len());
    }
    let initrd_addr_max = match zero_page.u32(INITRD_ADDR_MAX) {
        0 => 0x37ff_ffff,
        n => u64::from(n),
    };
    let tail = image.len().checked_sub(8).and_then(|at| image.get(at..)).and_then(|b| b.try_into().ok());
    let sizes = [1, 0x1000, 0x10_0000, LOADER_RAM_SIZE, u64::MAX, tail.map_or(0, u64::from_le_bytes)];
    // An empty initrd is refused before it is placed (`load_initrd`): sizes start at 1.
    for size in sizes.into_iter().filter(|&size| size > 0) {
        let Some(address) = place_initrd(mem, size, kernel.end, initrd_addr_max) else { continue };
        let what = format!("an initrd of {size:#x} bytes at {address:#x} (kernel end {:#x})", kernel.end);
        assert!(address >= kernel.end && address % 0x1000 == 0, "{what}");
        let end = address.checked_add(size).unwrap_or_else(|| panic!("{what} wraps"));
        assert!(in_ram(address, size) && end <= initrd_addr_max.saturating_add(1), "{what} ends at {end:#x}");
    }
}
