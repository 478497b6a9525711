//! PCI: how the guest finds devices, learns what they need, and tells them where to live.
//!
//! On a PC the guest does not know which devices exist. It asks: for every bus, device and
//! function number it reads the vendor id from that function's *configuration space*, a
//! 256-byte register file reached through two I/O ports (configuration mechanism #1, ports
//! 0xCF8 and 0xCFC). An empty slot reads all ones. A present function describes itself (ids,
//! class code, interrupt pin) and asks for address space through its *base address registers*
//! (BARs); firmware or the OS picks addresses, writes them into the BARs and turns on memory
//! decoding in the command register. From then on the device's registers appear at those
//! guest-physical addresses, and every access to them is an MMIO exit for us.
//!
//! - [`config`] models one configuration space: read-only and writable bits, BAR sizing, the
//!   capability list;
//! - [`root`] is the host bridge side: the 0xCF8/0xCFC ports, the devices on bus 0, and the
//!   (un)mapping of BARs when the guest moves them;
//! - [`bar`] places BARs like firmware does and maps them on the MMIO bus.
//!
//! A device model implements [`PciDevice`]: its configuration space plus reads and writes to
//! its BARs. Its interrupt pin drives an [`IrqLevel`].
//!
//! # Resources
//! - PCI Local Bus Specification 3.0: §3.2.2.3.2 (configuration mechanism #1), chapter 6
//!   (configuration space).
//! - Linux `arch/x86/pci/direct.c` (how the kernel probes mechanism #1) and
//!   `drivers/pci/probe.c` (how it sizes BARs).
//! - QEMU `hw/pci/pci.c` and `hw/pci/pci_host.c`, which this follows in miniature.
//! - <https://wiki.osdev.org/PCI> for a friendlier tour.

pub mod bar;
pub mod config;
pub mod root;

use config::{BarInfo, ConfigSpace};
use std::sync::{Arc, Mutex};

/// A PCI function as the host bridge and the MMIO bus see it.
///
/// The configuration space accessors have defaults that go straight to [`ConfigSpace`];
/// override [`config_write`](Self::config_write) to react to the guest (the defaults are what
/// most devices need). BAR accesses arrive as an offset within the BAR, like
/// [`BusDevice`](stage02::bus::BusDevice) accesses: the device never knows where it was placed.
pub trait PciDevice: Send {
    /// The configuration space.
    fn config(&self) -> &ConfigSpace;
    /// The configuration space, for the device model and for firmware-like setup.
    fn config_mut(&mut self) -> &mut ConfigSpace;

    /// The guest reads `data.len()` bytes of configuration space at `offset`.
    fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        self.config().read(offset, data);
    }

    /// The guest writes `data` to configuration space at `offset`.
    fn config_write(&mut self, offset: usize, data: &[u8]) {
        self.config_mut().write(offset, data);
    }

    /// The BARs and where the guest put them.
    fn bars(&self) -> Vec<BarInfo> {
        self.config().bars()
    }

    /// The guest reads `data.len()` bytes at `offset` within BAR `bar`.
    fn mmio_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset` within BAR `bar`.
    fn mmio_write(&mut self, bar: usize, offset: u64, data: &[u8]);
}

/// A PCI function shared between the host bridge, its BAR windows on the MMIO bus and the VMM.
pub type SharedPciDevice = Arc<Mutex<dyn PciDevice>>;

/// A level-triggered interrupt line: a PCI INTx# pin as wired to the interrupt controller.
///
/// The device calls `set_level(true)` while it wants attention and `set_level(false)` when the
/// driver has acknowledged everything. The VMM implements it with `KVM_IRQ_LINE` on the GSI the
/// pin is routed to (and writes that number into the interrupt line register, as firmware
/// would); tests implement it with a recorder.
pub trait IrqLevel: Send + Sync {
    /// Drives the line high (asserted) or low.
    fn set_level(&self, high: bool);
}
