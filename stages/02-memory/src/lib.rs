//! Stage 2: guest memory and device buses.
//!
//! Stage 1 had one page and matched the port number in the exit loop. A real machine has
//! megabytes of RAM in several pieces around holes where devices live, and many devices:
//! - [`layout`] says where RAM and devices are;
//! - [`memory`] maps RAM from the host, registers it with KVM and translates GPAs to HVAs;
//! - [`bus`] maps port and MMIO ranges to [`bus::BusDevice`]s;
//! - [`exit`] turns an I/O exit into a bus access;
//! - [`vm`] puts the VM together.
#![deny(missing_docs)]

pub mod bus;
pub mod cli;
pub mod devices;
pub mod exit;
pub mod guest_error;
pub mod layout;
pub mod memory;
pub mod vm;
