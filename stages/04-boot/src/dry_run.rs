//! `--show-boot-params`: the zero page and its E820 map as the kernel will read them, printed
//! after the loader has written them and before any vCPU runs.
//!
//! A boot takes a minute; a wrong field in the zero page can be seen in milliseconds. Each line
//! names a field of `struct boot_params` and, where the field points somewhere, says what is
//! there: the command line's text, whether the initrd's bytes and size are the file's.
//!
//! # Resources
//! - Linux `Documentation/arch/x86/boot.rst` ("Details of Header Fields") and
//!   `Documentation/arch/x86/zero-page.rst`.

use crate::bootparams::*;
use crate::layout::ZERO_PAGE_START;
use stage02::memory::{GuestAddress, GuestMemory};
use std::io::Read;
use std::path::Path;

/// How many bytes of the initrd are compared with the file.
const INITRD_HEAD: usize = 64;

/// The zero page at [`ZERO_PAGE_START`] of `mem`, one field a line; `initrd` is the file the
/// loader was given, to compare the ramdisk fields with.
pub fn describe_boot_params(mem: &GuestMemory, initrd: Option<&Path>) -> String {
    let mut bytes = vec![0u8; ZERO_PAGE_SIZE];
    if let Err(e) = mem.read(GuestAddress(ZERO_PAGE_START), &mut bytes) {
        return format!("no zero page at {ZERO_PAGE_START:#x}: {e}\n");
    }
    let page = ZeroPage::with_setup_header(&bytes[SETUP_SECTS..]);
    let u32_at = |offset: usize| u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap_or_default());
    let u64_at = |offset: usize| u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap_or_default());
    let flags = page.u8(LOADFLAGS);
    let mut out = format!("zero page at {ZERO_PAGE_START:#x}\n");
    out += &format!("  boot_flag        {:#06x}\n", page.u16(BOOT_FLAG));
    out += &format!("  version          {:#06x}\n", page.u16(VERSION));
    out += &format!("  type_of_loader   {:#04x}\n", page.u8(TYPE_OF_LOADER));
    out += &format!(
        "  loadflags        {flags:#04x}: LOADED_HIGH={} CAN_USE_HEAP={}\n",
        u8::from(flags & LOADED_HIGH != 0),
        u8::from(flags & CAN_USE_HEAP != 0)
    );
    out += &format!("  heap_end_ptr     {:#06x}\n", page.u16(HEAP_END_PTR));
    out += &format!("  sentinel         {:#04x}\n", bytes[SENTINEL]);

    let cmdline = u64::from(page.u32(CMD_LINE_PTR)) | u64::from(u32_at(EXT_CMD_LINE_PTR)) << 32;
    out += &format!("  cmd_line_ptr     {cmdline:#x}: {}\n", c_string(mem, cmdline, page.u32(CMDLINE_SIZE)));

    let image = u64::from(page.u32(RAMDISK_IMAGE)) | u64::from(u32_at(EXT_RAMDISK_IMAGE)) << 32;
    let size = u64::from(page.u32(RAMDISK_SIZE)) | u64::from(u32_at(EXT_RAMDISK_SIZE)) << 32;
    match initrd.map(initrd_file) {
        None => out += &format!("  ramdisk_image    {image:#x}\n  ramdisk_size     {size:#x}\n"),
        Some(Err(e)) => {
            out +=
                &format!("  ramdisk_image    {image:#x}\n  ramdisk_size     {size:#x}: cannot read the initrd: {e}\n")
        }
        Some(Ok((file_size, head))) => {
            let mut in_guest = vec![0u8; head.len()];
            let holds = mem.read(GuestAddress(image), &mut in_guest).is_ok() && in_guest == head;
            let holds = if holds { "holds the initrd file's first bytes" } else { "does not hold the initrd file" };
            out += &format!("  ramdisk_image    {image:#x}: {holds}\n");
            let sized = match size == file_size {
                true => "the initrd file's size".to_string(),
                false => format!("the initrd file has {file_size:#x} bytes"),
            };
            out += &format!("  ramdisk_size     {size:#x}: {sized}\n");
        }
    }

    let count = usize::from(bytes[E820_ENTRIES]);
    out += &format!("  e820_entries     {count}\n");
    for i in 0..count.min(E820_MAX_ENTRIES) {
        let at = E820_TABLE + i * 20;
        let (addr, size, kind) = (u64_at(at), u64_at(at + 8), u32_at(at + 16));
        let last = addr.wrapping_add(size).wrapping_sub(1);
        // The kernel's own format (arch/x86/kernel/e820.c), inclusive end.
        out += &format!("  e820: [mem {addr:#018x}-{last:#018x}] {}\n", e820_type_name(kind));
    }
    out
}

/// The NUL-terminated string at `addr`, quoted, read up to `max` bytes (the header's
/// `cmdline_size`, or 2048 for old kernels), or why there is none.
fn c_string(mem: &GuestMemory, addr: u64, max: u32) -> String {
    let max = if max == 0 { 2048 } else { max as usize + 1 };
    let mut text = Vec::new();
    for i in 0..max as u64 {
        match mem.read_obj::<u8>(GuestAddress(addr.wrapping_add(i))) {
            Ok(0) => return format!("{:?}", String::from_utf8_lossy(&text)),
            Ok(byte) => text.push(byte),
            Err(_) => return format!("not a string in guest RAM ({} bytes read)", text.len()),
        }
    }
    format!("no NUL within {max} bytes")
}

/// The initrd file's size and first bytes.
fn initrd_file(path: &Path) -> std::io::Result<(u64, Vec<u8>)> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut head = Vec::with_capacity(INITRD_HEAD);
    file.by_ref().take(INITRD_HEAD as u64).read_to_end(&mut head)?;
    Ok((size, head))
}

/// The name the kernel prints for an E820 type.
fn e820_type_name(kind: u32) -> String {
    match kind {
        E820_RAM => "usable".into(),
        E820_RESERVED => "reserved".into(),
        3 => "ACPI data".into(),
        4 => "ACPI NVS".into(),
        5 => "unusable".into(),
        other => format!("type {other}"),
    }
}
