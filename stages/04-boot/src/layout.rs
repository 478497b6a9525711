//! Stage 3's address map, plus where the boot protocol puts things and where a PC's legacy
//! devices and interrupt controllers are.

pub use stage03::layout::*;

/// The kernel command line (the boot protocol allows it anywhere below the setup heap end;
/// 0x20000 is where many boot loaders put it).
pub const CMDLINE_START: u64 = 0x20000;
/// The command line's maximum length when the kernel does not say (`cmdline_size`).
pub const CMDLINE_MAX_SIZE: u64 = 2048;
/// The BIOS data area's reset flag (a 16-bit word): Linux writes 0x1234 there for a warm
/// reboot, 0 for a cold one, just before it resets the machine; a PC BIOS reads it after the
/// reset. Stage 4's i8042 reads it to tell a panic from a reboot (see `devices::i8042`).
pub const BIOS_RESET_FLAG_ADDRESS: u64 = 0x472;
/// The protected-mode kernel is loaded at 1 MiB (the boot protocol's "high" load address).
pub const KERNEL_START: u64 = MAIN_RAM_START;
/// The Extended BIOS Data Area, the last KiB of conventional memory, which Linux scans for
/// the MP table.
pub const EBDA_START: u64 = 0x9fc00;
/// The MP table's floating pointer, then its configuration table.
pub const MPTABLE_START: u64 = EBDA_START;
/// The BIOS area, the top 128 KiB of the legacy window below 1 MiB: read-only memory, as a
/// PC's BIOS ROM, so that Linux's scans of it for firmware tables do not exit
/// ([`crate::bios_area`]).
pub const BIOS_AREA_START: u64 = 0xe_0000;
/// Its size: up to [`MAIN_RAM_START`].
pub const BIOS_AREA_SIZE: u64 = MAIN_RAM_START - BIOS_AREA_START;
/// The IO-APIC's MMIO registers (Linux `IO_APIC_DEFAULT_PHYS_BASE`), emulated inside KVM.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// Every local APIC's MMIO registers (Linux `APIC_DEFAULT_PHYS_BASE`), emulated inside KVM.
pub const APIC_START: u64 = 0xfee0_0000;

/// The first serial port (COM1): eight registers from here. Stage 1 already used it.
pub const COM1_PORT: u64 = stage01::SERIAL_PORT as u64;
/// COM1's ISA interrupt line.
pub const COM1_IRQ: u32 = 4;
/// The i8042 keyboard controller: data at 0x60, command/status at 0x64.
pub const I8042_PORT: u64 = 0x60;
/// The CMOS/RTC: index register at 0x70, data at 0x71.
pub const CMOS_PORT: u64 = 0x70;
/// KVM on Intel needs three pages for the real-mode TSS, below 4 GiB and outside RAM.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// And one page for the EPT identity map (just below the TSS).
pub const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;
