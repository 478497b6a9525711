//! Stage 7: PCI and an edu device (the device models; the wiring into a booting VM, the guest
//! program and the stage binary are still to come).
#![deny(missing_docs)]

pub mod devices;
pub mod pci;
