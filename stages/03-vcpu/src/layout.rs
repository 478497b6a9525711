//! Stage 2's address map, plus where stage 3 puts the structures a 64-bit vCPU needs.
//!
//! All of these sit in low RAM (region 0), below the 640 KiB mark, away from the kernel at 1 MiB.

pub use stage02::layout::*;

/// The Global Descriptor Table (four 8-byte entries).
pub const GDT_START: u64 = 0x500;
/// The Interrupt Descriptor Table the VMM installs for its own demo guests (256 16-byte gates).
pub const IDT_START: u64 = 0x1000;
/// Where stage-3 demo guest code is loaded.
pub const DEMO_CODE_START: u64 = 0x2000;
/// A 32-bit counter the demo vCPUs use to take turns at the serial port.
pub const DEMO_TURN_ADDRESS: u64 = 0x3000;
/// The zero page (Linux `struct boot_params`), filled in by stage 4.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer of the boot vCPU; stacks grow down, below the zero page.
pub const BOOT_STACK_POINTER: u64 = 0x6ff0;
/// Demo vCPU N's stack is the 4 KiB page at `DEMO_STACKS_START + N * 0x1000`.
pub const DEMO_STACKS_START: u64 = 0x20000;
/// Page-map level 4: the root of the identity page tables (CR3).
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table: one entry per GiB.
pub const PDPTE_START: u64 = 0xa000;
/// Page directories: four of them, 512 × 2 MiB pages each, identity-mapping the first 4 GiB.
pub const PDE_START: u64 = 0xb000;
/// How much of the address space the boot page tables identity-map.
pub const IDENTITY_MAPPED_SIZE: u64 = 4 << 30;
