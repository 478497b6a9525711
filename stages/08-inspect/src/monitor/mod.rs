//! The monitor: QEMU's human monitor commands for a running minivirt machine.
//!
//! - [`command`] turns a line into a [`command::Command`] (QEMU's names and `/fmt` syntax);
//! - [`format`] turns what the VMM finds into the answer's text (QEMU's layouts);
//! - [`session`] runs a command against the machine (registers through [`crate::vcpus`]);
//! - [`server`] serves sessions on a Unix socket.
//!
//! `command` and `format` never touch a vCPU, so both are tested without KVM.
//!
//! # Resources
//! - QEMU monitor documentation: <https://www.qemu.org/docs/master/system/monitor.html>.

pub mod command;
pub mod format;
pub mod server;
pub mod session;
