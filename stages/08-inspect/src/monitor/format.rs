//! The monitor's answers as text: memory dumps laid out as QEMU lays them out, the address
//! commands' lines, `translate`'s chain, the memory tree and the registers.
//!
//! Each function is pure: it gets what it shows (guest memory, a recorded [`Walk`], a way to
//! look up host frames) and returns lines ending in `\n`, so tests can feed it anything.
//!
//! # Resources
//! - QEMU `monitor/hmp-cmds-target.c` (`memory_dump`, `hmp_gpa2hva`, `hmp_gpa2hpa`,
//!   `hmp_gva2gpa`), `monitor/hmp.c` (`monitor_printc`), `target/i386/cpu-dump.c`
//!   (`x86_cpu_dump_state`), `system/memory.c` (`mtree_info`).

use super::command::{DumpFormat, Format, COMMANDS, INFO_TOPICS};
use crate::pagemap::{HostFrame, PagemapError};
use crate::symbols::SymbolTable;
use crate::walk::{Next, Outcome, StopReason, Walk};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};
use stage02::memory::{GuestAddress, GuestMemory, MemoryRegion};
use std::fmt::{Display, Write};

/// Bytes per dump line for 1-byte units (QEMU's `line_size`).
pub const BYTE_LINE_SIZE: usize = 8;
/// Bytes per dump line for wider units.
pub const LINE_SIZE: usize = 16;
/// How many bytes `translate` reads at the end of the chain, to prove it.
pub const TRANSLATE_VALUE_SIZE: usize = 8;

/// RFLAGS bits `info registers` shows, in QEMU's order: DF, OF, SF, ZF, AF, PF, CF.
pub const RFLAGS_SHOWN: [(u64, char); 7] =
    [(1 << 10, 'D'), (1 << 11, 'O'), (1 << 7, 'S'), (1 << 6, 'Z'), (1 << 4, 'A'), (1 << 2, 'P'), (1 << 0, 'C')];

/// `help`, `help CMD` or `help info`.
///
/// `topic` is a command name as [`Command::Help`](super::command::Command::Help) carries it
/// (already checked by the parser); an unknown one lists everything.
pub fn help(topic: Option<&str>) -> String {
    let mut out = String::new();
    if topic == Some("info") {
        for (name, _, help) in INFO_TOPICS {
            let _ = writeln!(out, "info {name} -- {help}");
        }
        return out;
    }
    for command in COMMANDS.iter().filter(|c| topic.is_none_or(|name| c.name() == name)) {
        let _ = writeln!(out, "{command}");
    }
    if out.is_empty() {
        return help(None);
    }
    out
}

/// `x`/`xp`: dumps `format.len()` bytes from `start`, one line per 16 bytes (8 for byte
/// units), each line `ADDRESS: value value …` as QEMU prints it. `read(address, buf)` fills a
/// line's bytes; when it fails, the line says `Cannot access memory` with the reason, and the
/// dump stops there.
///
/// Formats: `x` zero-padded hex (`0x` + 2 digits per byte), `d`/`u` decimal and `o` octal
/// right-aligned to the unit's widest value, `c` each byte of the units as a quoted character.
/// Unlike QEMU 8, `d` is signed at every unit, not only at `g`.
///
/// # Example
/// ```
/// use stage08::monitor::command::{DumpFormat, Format, Unit};
/// use stage08::monitor::format::memory_dump;
///
/// let ram = b"minivirt";
/// let read = |addr: u64, buf: &mut [u8]| -> Result<(), String> {
///     buf.copy_from_slice(&ram[addr as usize..][..buf.len()]);
///     Ok(())
/// };
/// let hex = memory_dump(0, DumpFormat { count: 2, format: Format::Hex, unit: Unit::Word }, read);
/// assert_eq!(hex, "0000000000000000: 0x696e696d 0x74726976\n");
/// let chars = memory_dump(0, DumpFormat { count: 4, format: Format::Char, unit: Unit::Byte }, read);
/// assert_eq!(chars, "0000000000000000: 'm' 'i' 'n' 'i'\n");
/// ```
pub fn memory_dump<E: Display>(
    start: u64,
    format: DumpFormat,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
) -> String {
    let unit = format.unit.bytes();
    let line_size = if unit == 1 { BYTE_LINE_SIZE } else { LINE_SIZE };
    let value_size = if format.format == Format::Char { 1 } else { unit };
    let mut out = String::new();
    let mut address = start;
    let mut left = format.len() as usize;
    while left > 0 {
        let _ = write!(out, "{address:016x}:");
        let len = left.min(line_size);
        let mut buf = [0u8; LINE_SIZE];
        if let Err(e) = read(address, &mut buf[..len]) {
            let _ = writeln!(out, " Cannot access memory ({e})");
            break;
        }
        for value in buf[..len].chunks(value_size) {
            out.push(' ');
            out.push_str(&format_value(value, format.format));
        }
        out.push('\n');
        address = address.wrapping_add(len as u64);
        left -= len;
    }
    out
}

/// One unit: `bytes` little-endian, in `format`.
fn format_value(bytes: &[u8], format: Format) -> String {
    let bits = bytes.len() as u32 * 8;
    let value = bytes.iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b));
    match format {
        Format::Hex => format!("0x{value:0width$x}", width = bytes.len() * 2),
        Format::Octal => {
            // C's "%#*o": a leading 0 (none for 0 itself), right-aligned.
            let text = if value == 0 { "0".to_string() } else { format!("0{value:o}") };
            format!("{text:>width$}", width = bits.div_ceil(3) as usize)
        }
        Format::Unsigned => format!("{value:>width$}", width = (bits * 10).div_ceil(33) as usize),
        Format::Signed => {
            let signed = ((value << (64 - bits)) as i64) >> (64 - bits);
            format!("{signed:>width$}", width = (bits * 10).div_ceil(33) as usize)
        }
        Format::Char => quoted_char(bytes[0]),
    }
}

/// A byte as QEMU's `monitor_printc` shows it: `'a'`, `'\n'`, `'\x00'`.
fn quoted_char(byte: u8) -> String {
    match byte {
        b'\'' => "'\\''".to_string(),
        b'\\' => "'\\\\'".to_string(),
        b'\n' => "'\\n'".to_string(),
        b'\r' => "'\\r'".to_string(),
        32..=126 => format!("'{}'", byte as char),
        _ => format!("'\\x{byte:02x}'"),
    }
}

// qa:begin stage8-ram-slot
/// The RAM region holding `gpa` and its index, which is its KVM memory slot (stage 2).
pub fn ram_slot(mem: &GuestMemory, gpa: u64) -> Option<(usize, &MemoryRegion)> {
    mem.regions().iter().enumerate().find(|(_, r)| r.start().0 <= gpa && gpa < r.end().0)
}

/// `gva2gpa`: `gpa: 0x…`, or the one-line reason the walk stopped.
pub fn gva2gpa(walk: &Walk) -> String {
    match walk.gpa() {
        Some(gpa) => format!("gpa: {gpa:#x}\n"),
        None => format!("{}\n", walk_failure(walk)),
    }
}

/// `gpa2hva`: QEMU's line, with the KVM slot where QEMU names its memory region.
pub fn gpa2hva(mem: &GuestMemory, gpa: u64) -> String {
    match ram_slot(mem, gpa) {
        Some((slot, region)) => {
            let hva = region.host_address() + (gpa - region.start().0);
            format!("Host virtual address for {gpa:#x} (slot {slot}) is {hva:#x}\n")
        }
        None => format!("No memory is mapped at address {gpa:#x}\n"),
    }
}
// qa:end stage8-ram-slot

/// `gpa2hpa`: QEMU's line, or a sentence when the host hides its frames.
///
/// `frame_of(hva)` asks the host; [`crate::pagemap::Pagemap::frame`] in the VMM.
pub fn gpa2hpa(mem: &GuestMemory, gpa: u64, frame_of: impl Fn(u64) -> Result<HostFrame, PagemapError>) -> String {
    let Some((slot, region)) = ram_slot(mem, gpa) else {
        return format!("No memory is mapped at address {gpa:#x}\n");
    };
    let hva = region.host_address() + (gpa - region.start().0);
    match frame_of(hva) {
        Ok(HostFrame::Frame { hpa, .. }) => format!("Host physical address for {gpa:#x} (slot {slot}) is {hpa:#x}\n"),
        Ok(other) => format!("Host physical address for {gpa:#x} (slot {slot}): {other}\n"),
        Err(e) => format!("Host physical address for {gpa:#x} (slot {slot}): {e}\n"),
    }
}

/// `translate`: the chain GVA → every table level → GPA → slot and HVA → HPA, and the 8 bytes
/// at the GPA (read through guest memory, so the chain is proven). A walk that stops, or a GPA
/// outside RAM, gives one line instead.
///
/// ```text
/// gva: 0x7f1234567123  cr3: 0x10000 (4-level paging)
///   PML4[254] @ 0x10ff0: 0x0000000000011067  P RW US A -> table 0x11000
///   …
///   PT  [359] @ 0x13b38: 0x8000000000055067  P RW US A D NX -> 4 KiB page 0x55000
/// gpa: 0x55123 (4 KiB page; writable, user, no-execute)
/// slot 1: GPA 0x100000-0xfffffff at HVA 0x7f5a00000000
/// hva: 0x7f5a00055123
/// hpa: 0x3b4d5123 (host frame 0x3b4d5)
/// value: 0x74726976696e696d "minivirt"
/// ```
pub fn translate(walk: &Walk, mem: &GuestMemory, frame_of: impl Fn(u64) -> Result<HostFrame, PagemapError>) -> String {
    let Outcome::Mapped(mapping) = walk.outcome else {
        return format!("{}\n", walk_failure(walk));
    };
    let Some((slot, region)) = ram_slot(mem, mapping.gpa) else {
        return format!("GVA {:#x} maps to GPA {:#x}, which is not guest RAM\n", walk.gva, mapping.gpa);
    };
    let mut out = String::new();
    let levels = walk.paging.levels().len();
    let _ = writeln!(out, "gva: {:#x}  cr3: {:#x} ({levels}-level paging)", walk.gva, walk.paging.cr3);
    for step in &walk.steps {
        let next = match step.next {
            Next::Table(table) => format!("table {table:#x}"),
            Next::Page { base, size } => format!("{size} page {base:#x}"),
            Next::Stop => "stop".to_string(),
        };
        let level = format!("{:<4}[{:3}]", step.level.name(), step.index);
        let _ = writeln!(out, "  {level} @ {:#x}: {:#018x}  {} -> {next}", step.entry_gpa, step.entry, step.flags());
    }
    let rights = [
        if mapping.writable { "writable" } else { "read-only" },
        if mapping.user { "user" } else { "kernel only" },
        if mapping.executable { "executable" } else { "no-execute" },
    ];
    let _ = writeln!(out, "gpa: {:#x} ({} page; {})", mapping.gpa, mapping.page, rights.join(", "));
    let (start, end) = (region.start().0, region.end().0 - 1);
    let _ = writeln!(out, "slot {slot}: GPA {start:#x}-{end:#x} at HVA {:#x}", region.host_address());
    let hva = region.host_address() + (mapping.gpa - start);
    let _ = writeln!(out, "hva: {hva:#x}");
    // Read before asking for the frame: the read makes sure the page has one.
    let mut value = [0u8; TRANSLATE_VALUE_SIZE];
    let read = mem.read(GuestAddress(mapping.gpa), &mut value);
    match frame_of(hva) {
        Ok(HostFrame::Frame { pfn, hpa }) => {
            let _ = writeln!(out, "hpa: {hpa:#x} (host frame {pfn:#x})");
        }
        Ok(other) => {
            let _ = writeln!(out, "hpa: unknown: {other}");
        }
        Err(e) => {
            let _ = writeln!(out, "hpa: unknown: {e}");
        }
    }
    match read {
        Ok(()) => {
            let text: String = value.iter().map(|&b| if (32..=126).contains(&b) { b as char } else { '.' }).collect();
            let _ = writeln!(out, "value: {:#018x} \"{text}\"", u64::from_le_bytes(value));
        }
        Err(_) => {
            let _ = writeln!(out, "value: the {TRANSLATE_VALUE_SIZE} bytes at the GPA run past the end of slot {slot}");
        }
    }
    out
}

/// The one line for a walk that reached no page: where it stopped, and the entry that stopped it.
fn walk_failure(walk: &Walk) -> String {
    let last = walk.steps.last().filter(|_| !matches!(walk.outcome, Outcome::Mapped(_)));
    match (walk.outcome, last) {
        (Outcome::Stopped { reason: StopReason::NotPresent | StopReason::ReservedBits(_), .. }, Some(step)) => {
            format!("GVA {:#x}: {} (entry {:#x} at GPA {:#x})", walk.gva, walk.outcome, step.entry, step.entry_gpa)
        }
        _ => format!("GVA {:#x}: {}", walk.gva, walk.outcome),
    }
}

/// A device's address range, for `info mtree`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRange {
    /// The device's name, as registered on its bus.
    pub name: String,
    /// First address (GPA or port).
    pub base: u64,
    /// Length in bytes (or ports).
    pub len: u64,
}

/// `info mtree`: guest-physical memory (RAM slots with their host addresses, MMIO windows)
/// and the port space, each sorted by address, with inclusive ends as QEMU prints them.
pub fn mtree(mem: &GuestMemory, mmio: &[DeviceRange], pio: &[DeviceRange]) -> String {
    let mut memory: Vec<(u64, u64, String)> = mem
        .regions()
        .iter()
        .enumerate()
        .map(|(slot, r)| {
            (
                r.start().0,
                r.size(),
                format!("(ram): slot {slot}, {} KiB at HVA {:#x}", r.size() >> 10, r.host_address()),
            )
        })
        .collect();
    memory.extend(mmio.iter().map(|d| (d.base, d.len, format!("(i/o): {}", d.name))));
    memory.sort_by_key(|&(base, _, _)| base);
    let mut ports: Vec<(u64, u64, String)> =
        pio.iter().map(|d| (d.base, d.len, format!("(i/o): {}", d.name))).collect();
    ports.sort_by_key(|&(base, _, _)| base);

    let mut out = String::new();
    for (space, ranges) in [("memory", memory), ("I/O", ports)] {
        let _ = writeln!(out, "address-space: {space}");
        for (base, len, what) in ranges {
            let last = base.saturating_add(len.saturating_sub(1));
            let _ = writeln!(out, "  {base:016x}-{last:016x} {what}");
        }
    }
    out
}

/// `info registers` for one vCPU, laid out as QEMU's 64-bit dump; RIP is also shown as a
/// guest function when `symbols` are given.
pub fn registers(regs: &kvm_regs, sregs: &kvm_sregs, symbols: Option<&SymbolTable>) -> String {
    let mut out = String::new();
    let rows = [
        [("RAX", regs.rax), ("RBX", regs.rbx), ("RCX", regs.rcx), ("RDX", regs.rdx)],
        [("RSI", regs.rsi), ("RDI", regs.rdi), ("RBP", regs.rbp), ("RSP", regs.rsp)],
        [("R8 ", regs.r8), ("R9 ", regs.r9), ("R10", regs.r10), ("R11", regs.r11)],
        [("R12", regs.r12), ("R13", regs.r13), ("R14", regs.r14), ("R15", regs.r15)],
    ];
    for row in rows {
        let cells: Vec<String> = row.iter().map(|(name, value)| format!("{name}={value:016x}")).collect();
        let _ = writeln!(out, "{}", cells.join(" "));
    }
    let flags: String =
        RFLAGS_SHOWN.iter().map(|&(bit, letter)| if regs.rflags & bit != 0 { letter } else { '-' }).collect();
    let function = symbols.and_then(|s| s.lookup(regs.rip)).map(|l| format!(" ({l})")).unwrap_or_default();
    let _ = writeln!(out, "RIP={:016x} RFL={:08x} [{flags}] CPL={}{function}", regs.rip, regs.rflags, sregs.cs.dpl);
    for (name, segment) in [
        ("ES ", &sregs.es),
        ("CS ", &sregs.cs),
        ("SS ", &sregs.ss),
        ("DS ", &sregs.ds),
        ("FS ", &sregs.fs),
        ("GS ", &sregs.gs),
        ("LDT", &sregs.ldt),
        ("TR ", &sregs.tr),
    ] {
        let _ = writeln!(out, "{name}={}", segment_text(segment));
    }
    let _ = writeln!(out, "GDT=     {:016x} {:08x}", sregs.gdt.base, sregs.gdt.limit);
    let _ = writeln!(out, "IDT=     {:016x} {:08x}", sregs.idt.base, sregs.idt.limit);
    let _ = writeln!(out, "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x}", sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4);
    let _ = writeln!(out, "EFER={:016x}", sregs.efer);
    out
}

fn segment_text(s: &kvm_segment) -> String {
    format!(
        "{:04x} {:016x} {:08x} type={:x} DPL={} P={} L={} DB={} G={}",
        s.selector, s.base, s.limit, s.type_, s.dpl, s.present, s.l, s.db, s.g
    )
}

/// One vCPU for `info cpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSummary {
    /// Its index.
    pub index: u32,
    /// The host thread that runs it (Linux thread id).
    pub thread_id: i64,
    /// Its RIP when last stopped, if known.
    pub rip: Option<u64>,
}

/// `info cpus`, as QEMU prints it: `* CPU #0: thread_id=1234`, the star on the current vCPU;
/// with the RIP (and its function, given `symbols`) when known.
pub fn cpus(cpus: &[CpuSummary], current: u32, symbols: Option<&SymbolTable>) -> String {
    let mut out = String::new();
    for cpu in cpus {
        let mark = if cpu.index == current { '*' } else { ' ' };
        let _ = write!(out, "{mark} CPU #{}: thread_id={}", cpu.index, cpu.thread_id);
        if let Some(rip) = cpu.rip {
            let _ = write!(out, " rip={rip:#x}");
            if let Some(location) = symbols.and_then(|s| s.lookup(rip)) {
                let _ = write!(out, " ({location})");
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::command::{CommandParser, Unit};
    use crate::walk::{walk, Paging, PTE_NO_EXECUTE, PTE_PRESENT, PTE_USER, PTE_WRITABLE};

    fn dump(bytes: &[u8], count: u32, format: Format, unit: Unit) -> String {
        memory_dump(0x1000, DumpFormat { count, format, unit }, |addr, buf: &mut [u8]| {
            let start = (addr - 0x1000) as usize;
            match bytes.get(start..start + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    Ok(())
                }
                None => Err(format!("GPA {addr:#x} is not RAM")),
            }
        })
    }

    #[test]
    fn hex_dumps_put_16_bytes_on_a_line_and_8_for_bytes() {
        let bytes: Vec<u8> = (0..32).collect();
        assert_eq!(
            dump(&bytes, 5, Format::Hex, Unit::Word),
            "0000000000001000: 0x03020100 0x07060504 0x0b0a0908 0x0f0e0d0c\n\
             0000000000001010: 0x13121110\n"
        );
        assert_eq!(
            dump(&bytes, 3, Format::Hex, Unit::Giant),
            "0000000000001000: 0x0706050403020100 0x0f0e0d0c0b0a0908\n0000000000001010: 0x1716151413121110\n"
        );
        assert_eq!(
            dump(&bytes, 10, Format::Hex, Unit::Byte),
            "0000000000001000: 0x00 0x01 0x02 0x03 0x04 0x05 0x06 0x07\n0000000000001008: 0x08 0x09\n"
        );
        assert_eq!(dump(&bytes, 2, Format::Hex, Unit::Half), "0000000000001000: 0x0100 0x0302\n");
        assert_eq!(dump(&bytes, 0, Format::Hex, Unit::Word), "", "x/0 prints nothing");
    }

    #[test]
    fn decimal_and_octal_are_right_aligned_to_the_widest_value() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 8, 0, 0, 0];
        assert_eq!(dump(&bytes, 2, Format::Unsigned, Unit::Word), "0000000000001000: 4294967295          8\n");
        assert_eq!(dump(&bytes, 2, Format::Signed, Unit::Word), "0000000000001000:         -1          8\n");
        assert_eq!(dump(&bytes, 1, Format::Signed, Unit::Giant), "0000000000001000:          38654705663\n");
        assert_eq!(dump(&bytes[4..], 2, Format::Octal, Unit::Half), "0000000000001000:    010      0\n");
        assert_eq!(dump(&bytes, 1, Format::Signed, Unit::Byte), "0000000000001000:  -1\n");
    }

    #[test]
    fn characters_are_quoted_and_escaped_like_qemus_printc() {
        assert_eq!(
            dump(b"mi'\\\n\r\x00\x7f", 8, Format::Char, Unit::Byte),
            "0000000000001000: 'm' 'i' '\\'' '\\\\' '\\n' '\\r' '\\x00' '\\x7f'\n"
        );
        // As in QEMU, `c` with a wider unit dumps every byte of count × unit, 16 per line.
        let text = b"minivirt minivirt minivirt";
        let wide = dump(text, 5, Format::Char, Unit::Word);
        assert_eq!(wide.lines().count(), 2);
        assert!(wide.starts_with("0000000000001000: 'm' 'i' 'n' 'i' 'v' 'i' 'r' 't' ' ' 'm'"), "{wide}");
        assert!(wide.ends_with("0000000000001010: 't' ' ' 'm' 'i'\n"), "{wide}");
    }

    #[test]
    fn a_failed_read_ends_the_dump_with_the_reason() {
        let out = dump(&[0u8; 20], 8, Format::Hex, Unit::Word);
        assert_eq!(
            out,
            "0000000000001000: 0x00000000 0x00000000 0x00000000 0x00000000\n\
             0000000000001010: Cannot access memory (GPA 0x1010 is not RAM)\n"
        );
    }

    #[test]
    fn a_parsed_command_dumps_as_qemu_would() {
        let mut parser = CommandParser::new();
        let Some(crate::monitor::command::Command::Dump { format, .. }) = parser.parse("xp/2xg 0").unwrap() else {
            panic!()
        };
        assert_eq!(dump(b"minivirtGVA-DEMO", format.count, format.format, format.unit).matches("0x").count(), 2);
    }

    const PML4: u64 = 0x10000;
    const USER_GVA: u64 = 0x7f12_3456_7123;
    const RW: u64 = PTE_PRESENT | PTE_WRITABLE | PTE_USER;

    /// RAM in two slots; a user page at USER_GVA whose frame is 0x10_5000 in slot 1, holding "minivirt".
    fn machine() -> GuestMemory {
        let mem = GuestMemory::new(&[(0, 0xa_0000), (0x10_0000, 0x10_0000)]).unwrap();
        for (table, index, entry) in [
            (PML4, 254, 0x11000 | RW),
            (0x11000, 72, 0x12000 | RW),
            (0x12000, 418, 0x13000 | RW),
            (0x13000, 359, 0x10_5000 | RW | PTE_NO_EXECUTE),
        ] {
            mem.write_obj(GuestAddress(table + index * 8), entry).unwrap();
        }
        mem.write(GuestAddress(0x10_5123), b"minivirt").unwrap();
        mem
    }

    fn no_frames(_: u64) -> Result<HostFrame, PagemapError> {
        Ok(HostFrame::Hidden)
    }

    #[test]
    fn translate_shows_every_level_the_slot_the_hva_the_hpa_and_the_value() {
        let mem = machine();
        let hva_base = mem.regions()[1].host_address();
        let walk = walk(&mem, &Paging::four_level(PML4), USER_GVA);
        let out = translate(&walk, &mem, |hva| Ok(HostFrame::Frame { pfn: 0x3b4d5, hpa: 0x3b4d_5000 | (hva & 0xfff) }));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "gva: 0x7f1234567123  cr3: 0x10000 (4-level paging)");
        assert_eq!(lines[1], "  PML4[254] @ 0x107f0: 0x0000000000011007  P RW US -> table 0x11000");
        assert_eq!(lines[3], "  PD  [418] @ 0x12d10: 0x0000000000013007  P RW US -> table 0x13000");
        assert_eq!(lines[4], "  PT  [359] @ 0x13b38: 0x8000000000105007  P RW US NX -> 4 KiB page 0x105000");
        assert_eq!(lines[5], "gpa: 0x105123 (4 KiB page; writable, user, no-execute)");
        assert_eq!(lines[6], format!("slot 1: GPA 0x100000-0x1fffff at HVA {hva_base:#x}"));
        assert_eq!(lines[7], format!("hva: {:#x}", hva_base + 0x5123));
        assert_eq!(lines[8], "hpa: 0x3b4d5123 (host frame 0x3b4d5)");
        assert_eq!(lines[9], "value: 0x74726976696e696d \"minivirt\"");
        assert_eq!(lines.len(), 10);

        let hidden = translate(&walk, &mem, no_frames);
        assert!(hidden.contains("hpa: unknown: the host hides page frame numbers"), "{hidden}");
    }

    #[test]
    fn translate_of_an_unmapped_address_is_one_line_naming_the_level() {
        let mem = machine();
        let paging = Paging::four_level(PML4);
        let out = translate(&walk(&mem, &paging, USER_GVA + 0x1000), &mem, no_frames);
        assert_eq!(out, "GVA 0x7f1234568123: stopped at PT (level 1): entry not present (entry 0x0 at GPA 0x13b40)\n");
        let out = translate(&walk(&mem, &paging, 0x8000_0000_0000), &mem, no_frames);
        assert_eq!(out.lines().count(), 1);
        assert!(out.starts_with("GVA 0x800000000000: not canonical"), "{out}");
        mem.write_obj(GuestAddress(0x13b40), 0xd000_0000u64 | RW).unwrap();
        let out = translate(&walk(&mem, &paging, USER_GVA + 0x1000), &mem, no_frames);
        assert_eq!(out, "GVA 0x7f1234568123 maps to GPA 0xd0000123, which is not guest RAM\n");
    }

    #[test]
    fn address_commands_answer_in_qemus_words() {
        let mem = machine();
        let walk = walk(&mem, &Paging::four_level(PML4), USER_GVA);
        assert_eq!(gva2gpa(&walk), "gpa: 0x105123\n");
        let hva = mem.regions()[1].host_address() + 0x5123;
        assert_eq!(gpa2hva(&mem, 0x10_5123), format!("Host virtual address for 0x105123 (slot 1) is {hva:#x}\n"));
        assert_eq!(gpa2hva(&mem, 0xa_0000), "No memory is mapped at address 0xa0000\n");
        let frame = |hva: u64| Ok(HostFrame::Frame { pfn: 7, hpa: 0x7000 | (hva & 0xfff) });
        assert_eq!(gpa2hpa(&mem, 0x10_5123, frame), "Host physical address for 0x105123 (slot 1) is 0x7123\n");
        assert!(gpa2hpa(&mem, 0x10, no_frames).starts_with("Host physical address for 0x10 (slot 0): the host hides"));
    }

    #[test]
    fn help_lists_commands_and_info_topics() {
        let all = help(None);
        assert_eq!(all.lines().count(), COMMANDS.len());
        assert!(all.contains("gpa2hpa addr -- print the host physical address"));
        assert_eq!(help(Some("xp")), "xp /fmt addr -- physical memory dump starting at 'addr'\n");
        assert!(help(Some("info")).starts_with("info mtree -- show memory tree"));
    }

    #[test]
    fn mtree_interleaves_ram_and_mmio_by_address() {
        let mem = GuestMemory::new(&[(0, 0xa_0000), (0x10_0000, 0x10_0000)]).unwrap();
        let mmio = [DeviceRange { name: "virtio-mmio".into(), base: 0xd000_0000, len: 0x1000 }];
        let pio = [
            DeviceRange { name: "serial".into(), base: 0x3f8, len: 8 },
            DeviceRange { name: "i8042".into(), base: 0x60, len: 5 },
        ];
        let out = mtree(&mem, &mmio, &pio);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "address-space: memory");
        assert!(lines[1].starts_with("  0000000000000000-000000000009ffff (ram): slot 0, 640 KiB at HVA 0x"));
        assert!(lines[2].starts_with("  0000000000100000-00000000001fffff (ram): slot 1, 1024 KiB at HVA 0x"));
        assert_eq!(lines[3], "  00000000d0000000-00000000d0000fff (i/o): virtio-mmio");
        assert_eq!(lines[4], "address-space: I/O");
        assert_eq!(lines[5], "  0000000000000060-0000000000000064 (i/o): i8042");
        assert_eq!(lines[6], "  00000000000003f8-00000000000003ff (i/o): serial");
    }

    #[test]
    fn registers_and_cpus_read_like_qemus() {
        let regs = kvm_regs { rax: 1, rip: 0xffff_ffff_811a_68f4, rflags: 0x246, ..Default::default() };
        let mut sregs = kvm_sregs { cr3: 0x10000, efer: 0x500, ..Default::default() };
        sregs.cs.selector = 0x10;
        let symbols = SymbolTable::parse("ffffffff811a68ca T serial8250_tx_chars\n", "map").unwrap();
        let out = registers(&regs, &sregs, Some(&symbols));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("RAX=0000000000000001 RBX=0000000000000000"));
        assert_eq!(lines[4], "RIP=ffffffff811a68f4 RFL=00000246 [---Z-P-] CPL=0 (serial8250_tx_chars+0x2a)");
        assert!(lines[6].starts_with("CS =0010 "));
        assert!(out.contains("CR3=0000000000010000") && out.ends_with("EFER=0000000000000500\n"));

        let list = [
            CpuSummary { index: 0, thread_id: 41, rip: None },
            CpuSummary { index: 1, thread_id: 42, rip: Some(0xffff_ffff_811a_68ca) },
        ];
        assert_eq!(
            cpus(&list, 1, Some(&symbols)),
            "  CPU #0: thread_id=41\n* CPU #1: thread_id=42 rip=0xffffffff811a68ca (serial8250_tx_chars)\n"
        );
    }
}
