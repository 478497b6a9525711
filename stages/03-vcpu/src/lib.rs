//! Stage 3: the vCPU.
//!
//! Stage 2 ran real-mode code on one vCPU set up by hand. A kernel needs a 64-bit CPU: a GDT,
//! page tables, the control registers that enable long mode, CPUID and MSRs with known values,
//! and one host thread per vCPU:
//! - [`gdt`], [`paging`], [`regs`] build the long-mode state;
//! - [`cpuid`] and [`msrs`] give the guest a consistent CPU;
//! - [`vcpu`] runs the exit loop on a thread, [`control`] stops all vCPUs, and [`exit_hook`]
//!   lets other code watch every exit without changing the loop; [`threads`] starts every
//!   VMM thread under its name, through one hook a later stage can use;
//! - [`host_workarounds`] handles what this course's nested KVM cannot emulate;
//! - [`demo`] is the guest this stage runs.
#![deny(missing_docs)]

pub mod cli;
pub mod control;
pub mod cpuid;
pub mod demo;
pub mod exit_hook;
pub mod gdt;
pub mod host_workarounds;
pub mod layout;
pub mod msrs;
pub mod paging;
pub mod regs;
pub mod threads;
pub mod vcpu;
