//! Stage 3's address map, plus where the boot protocol puts things.

pub use stage03::layout::*;

/// The kernel command line (the boot protocol allows it anywhere below the setup heap end;
/// 0x20000 is where many boot loaders put it).
pub const CMDLINE_START: u64 = 0x20000;
/// The command line's maximum length when the kernel does not say (`cmdline_size`).
pub const CMDLINE_MAX_SIZE: u64 = 2048;
/// The protected-mode kernel is loaded at 1 MiB (the boot protocol's "high" load address).
pub const KERNEL_START: u64 = MAIN_RAM_START;
/// The Extended BIOS Data Area, the last KiB of conventional memory: the MP table goes here.
pub const EBDA_START: u64 = 0x9fc00;
/// The IO-APIC's MMIO registers.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// The local APICs' MMIO registers.
pub const APIC_START: u64 = 0xfee0_0000;
/// KVM on Intel needs three pages for the real-mode TSS, below 4 GiB and outside RAM.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// And one page for the EPT identity map (just below the TSS).
pub const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;
