//! Stage 8: look inside the running machine.
//!
//! Stages 1–7 built a machine; this stage adds the tools to watch it run, as QEMU's monitor
//! and Firecracker's metrics do, and shows what neither shows: the whole GVA→GPA→HVA→HPA
//! chain, and which guest functions cause VM exits.
//! - [`walk`] walks the guest's page tables (GVA→GPA), one recorded level at a time;
//! - [`pagemap`] finds the host page frame behind a VMM address (HVA→HPA);
//! - [`symbols`] names the guest kernel function that holds an address;
//! - [`monitor`] parses QEMU's monitor commands and prints their answers;
//! - [`stats`] counts exits by reason, device, vCPU and guest function, keeps the boot
//!   timeline and the sampling profile, and reports them as tables and JSON;
//! - [`host`] measures the VMM's memory and reads KVM's own exit counters;
//! - [`boot_timer`] is the device the guest tells that its boot is complete;
//! - [`vcpus`] reaches into running vCPUs (registers, pause, samples), [`recorder`] is the exit
//!   hook behind the statistics;
//! - [`sandbox`] confines each VMM thread to the system calls it needs (seccomp), the other
//!   thing worth knowing about a running VMM from the host.
//! - [`demo`] runs the page walk and the exit recorder without Linux (`stage08 --demo`).
//!
//! # Resources
//! - QEMU's monitor: <https://www.qemu.org/docs/master/system/monitor.html>.
//! - Intel SDM vol. 3A, chapter 4 "Paging".
//! - seccomp(2).
#![deny(missing_docs)]

pub mod boot_timer;
pub mod demo;
pub mod host;
pub mod inspector;
pub mod monitor;
pub mod pagemap;
pub mod recorder;
pub mod sandbox;
pub mod stats;
pub mod symbols;
pub mod vcpus;
pub mod walk;
