//! PCI in a machine: the host bridge behind ports 0xCF8/0xCFC, the edu card at 00:01.0 with
//! its BAR placed as firmware would, and its INTA# wired to the IO-APIC; QEMU's pvpanic card at
//! 00:02.0 (no interrupt), through which a panicking guest kernel ends the run.
//!
//! The interrupt route is the one stage 4's MP table announces for device 1, pin INTA#
//! ([`pci_irq_pin`]): Linux, which has no ACPI here, reads it from the table. Firmware also
//! writes the GSI into the card's Interrupt Line register; we do the same.

use crate::devices::edu::{EduDevice, EduError};
use crate::devices::pvpanic::PvPanicDevice;
use crate::layout::{HIGH_RESERVED_SIZE, IOAPIC_START, PCI_MMIO_WINDOW_END, PCI_MMIO_WINDOW_START};
use crate::pci::bar::{BarError, BusBarMapper};
use crate::pci::config::ConfigError;
use crate::pci::root::{PciRoot, PciRootError, PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_PORT_COUNT};
use crate::pci::{IrqLevel, PciDevice, SharedPciDevice};
use kvm_ioctls::VmFd;
use stage02::bus::BusError;
use stage04::machine::Machine;
use stage04::mptable::pci_irq_pin;
use std::sync::{Arc, Mutex};

/// The edu card's device number on bus 0 (the host bridge is 0).
pub const EDU_DEVICE_NUMBER: u8 = 1;
/// The pvpanic card's device number on bus 0.
pub const PVPANIC_DEVICE_NUMBER: u8 = 2;

/// A level-triggered line into the in-kernel IO-APIC: `KVM_IRQ_LINE` on one GSI.
pub struct KvmIrqLine {
    vm: Arc<VmFd>,
    gsi: u32,
}

impl IrqLevel for KvmIrqLine {
    fn set_level(&self, high: bool) {
        if let Err(e) = self.vm.set_irq_line(self.gsi, high) {
            eprintln!("[minivirt] KVM_IRQ_LINE for GSI {} failed: {e}", self.gsi);
        }
    }
}

/// Why PCI could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The MP table has no route for the card's INTA#.
    #[error("the MP table routes no interrupt for device {0}")]
    NoInterruptRoute(u8),
    /// The edu card could not be made.
    #[error(transparent)]
    Edu(#[from] EduError),
    /// The pvpanic card could not be made.
    #[error("the pvpanic card: {0}")]
    PvPanic(#[source] ConfigError),
    /// The bus refused the card, or put it elsewhere.
    #[error(transparent)]
    Root(#[from] PciRootError),
    /// A card landed at another device number than the one planned (the MP table's route is
    /// for the edu card's).
    #[error("the {name} card landed at device {number}, not {planned}")]
    WrongSlot {
        /// Which card.
        name: &'static str,
        /// Where it landed.
        number: u8,
        /// Where it should be.
        planned: u8,
    },
    /// A BAR could not be placed.
    #[error(transparent)]
    Bar(#[from] BarError),
    /// The host bridge's ports are taken.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Builds bus 0 with the edu and pvpanic cards, places their BARs, and puts the host bridge's
/// ports on the machine's port-I/O bus. Returns the GSI of the edu card's interrupt.
pub fn attach_pci(machine: &Machine) -> Result<u32, PlatformError> {
    let vm = &machine.vm;
    // BARs must not shadow RAM or the APICs: those are not on the MMIO bus but take precedence.
    let mapper = vm
        .memory
        .regions()
        .iter()
        .fold(BusBarMapper::new(Arc::clone(&vm.buses)), |mapper, region| {
            mapper.reserve("RAM", region.start().0, region.size())
        })
        .reserve("IO-APIC/LAPIC", IOAPIC_START, HIGH_RESERVED_SIZE);
    let mut root = PciRoot::new(Arc::new(mapper));

    let pin = pci_irq_pin(EDU_DEVICE_NUMBER, 0).ok_or(PlatformError::NoInterruptRoute(EDU_DEVICE_NUMBER))?;
    let line = Arc::new(KvmIrqLine { vm: Arc::clone(&vm.fd), gsi: u32::from(pin) });
    let mut edu = EduDevice::new(Arc::clone(&vm.memory), line)?;
    edu.config_mut().set_interrupt_line(pin);
    let edu: SharedPciDevice = Arc::new(Mutex::new(edu));
    let number = root.add_device("edu", edu)?;
    if number != EDU_DEVICE_NUMBER {
        return Err(PlatformError::WrongSlot { name: "edu", number, planned: EDU_DEVICE_NUMBER });
    }
    let pvpanic = PvPanicDevice::new(Arc::clone(&machine.control)).map_err(PlatformError::PvPanic)?;
    let number = root.add_device("pvpanic", Arc::new(Mutex::new(pvpanic)))?;
    if number != PVPANIC_DEVICE_NUMBER {
        return Err(PlatformError::WrongSlot { name: "pvpanic", number, planned: PVPANIC_DEVICE_NUMBER });
    }
    root.allocate_bars(PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END)?;
    let root = Arc::new(Mutex::new(root));
    vm.buses.pio.insert("pci", u64::from(PCI_CONFIG_ADDRESS_PORT), PCI_CONFIG_PORT_COUNT, root)?;
    Ok(u32::from(pin))
}
