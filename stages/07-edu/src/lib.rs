//! Stage 7: PCI and QEMU's edu device.
//!
//! - [`pci`]: configuration mechanism #1, configuration spaces, BARs;
//! - [`devices`]: the edu card, and QEMU's pvpanic card through which a panicking guest
//!   kernel ends the run;
//! - [`platform`]: both put into a machine (host bridge ports, BAR placement, INTx routing);
//! - [`layout`]: where BARs may go;
//! - [`demo`]: `stage07 --demo pci`, BAR sizing and the edu card without a guest.
#![deny(missing_docs)]

pub mod demo;
pub mod devices;
pub mod layout;
pub mod pci;
pub mod platform;
