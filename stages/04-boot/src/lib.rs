//! Stage 4: the Linux x86 boot protocol.
//!
//! Stage 3 started a vCPU in 64-bit mode on code the VMM wrote. Linux's 64-bit boot protocol
//! starts it the same way, at the kernel's entry point, with RSI pointing at the *zero page*:
//! - [`loader`] puts a bzImage or an ELF vmlinux, and the initrd, in guest memory;
//! - [`bootparams`] is the zero page, [`e820`] the memory map in it, [`cmdline`] the command line;
//! - [`mptable`] tells the kernel about CPUs and interrupt routing (there is no ACPI);
//! - [`bios_area`] puts read-only memory where a PC has its BIOS, which Linux scans at boot;
//! - [`devices`] are the legacy devices Linux expects, [`irq`] how they interrupt, [`legacy`]
//!   where they sit;
//! - [`boot`] holds the steps that put the machine together, [`machine`] the recipe the stage
//!   binaries follow, [`dry_run`] what they wrote, printed without booting;
//! - [`syscall_fixup`] is the host workaround only Linux needs.
#![deny(missing_docs)]

pub mod bios_area;
pub mod boot;
pub mod bootparams;
pub mod cmdline;
pub mod devices;
pub mod dry_run;
pub mod e820;
pub mod guest;
pub mod irq;
pub mod layout;
pub mod legacy;
pub mod loader;
pub mod machine;
pub mod mptable;
pub mod syscall_fixup;
