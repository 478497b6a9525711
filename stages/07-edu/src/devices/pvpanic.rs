//! QEMU's `pvpanic-pci`: the guest kernel tells the VMM that it panicked.
//!
//! Without it a panicking guest just stops making progress: with `panic=0` the kernel spins
//! forever (a host CPU at 100 %), with `panic=-1` it reboots — and a reboot looks like any
//! other. pvpanic is a one-register device made for the message. Linux's driver
//! (`CONFIG_PVPANIC_PCI`) reads the register once at probe time to learn which events the
//! device knows, and from its panic notifier — before the kernel halts or reboots — writes the
//! event. This model stops the VM with [`StopReason::GuestPanic`] on "panicked", so the run
//! ends with "guest kernel panicked" and a non-zero exit whatever `panic=` says.
//!
//! The card is PCI `1b36:0011` (Red Hat, pvpanic), revision 1, class 0x0880 ("other system
//! peripheral"), no interrupt pin, and one memory BAR of 16 bytes (the smallest a memory BAR
//! can be; the register is its first byte):
//!
//! | offset | access | meaning                                                          |
//! |--------|--------|------------------------------------------------------------------|
//! | 0x00   | read   | the events the device supports: [`SUPPORTED_EVENTS`]             |
//! | 0x00   | write  | an event happened: [`PVPANIC_PANICKED`], [`PVPANIC_CRASH_LOADED`], [`PVPANIC_SHUTDOWN`] |
//!
//! Other offsets read 0 and ignore writes. Bits the device does not know are a guest error,
//! as in QEMU ("pvpanic: unknown event").
//!
//! | event            | what the guest means                         | what this VMM does           |
//! |------------------|----------------------------------------------|------------------------------|
//! | `PANICKED`       | panicked; the host should deal with it       | stop: [`StopReason::GuestPanic`] |
//! | `CRASH_LOADED`   | panicked, but a kdump kernel takes over      | one line on stderr, run on   |
//! | `SHUTDOWN`       | a regular power-off (Linux 6.9 and later)    | stop: [`StopReason::PowerOff`] |
//!
//! # Resources
//! - QEMU `docs/specs/pvpanic.rst`: the register and the event bits;
//!   <https://www.qemu.org/docs/master/specs/pvpanic.html>.
//! - QEMU `hw/misc/pvpanic-pci.c` (the PCI identity) and `hw/misc/pvpanic.c` (the events).
//! - Linux `drivers/misc/pvpanic/pvpanic-pci.c` and `pvpanic.c` (`pvpanic_panic_notify`),
//!   `include/uapi/misc/pvpanic.h`.

use crate::pci::config::{BarKind, ConfigError, ConfigSpace};
use crate::pci::root::{QEMU_SUBSYSTEM_ID, QEMU_SUBSYSTEM_VENDOR_ID};
use crate::pci::PciDevice;
use stage02::guest_error::GuestErrorLog;
use stage03::control::{StopReason, VmControl};
use std::sync::Arc;

/// PCI vendor id: Red Hat (`PCI_VENDOR_ID_REDHAT`), QEMU's range for its own devices.
pub const PVPANIC_VENDOR_ID: u16 = 0x1b36;
/// PCI device id of pvpanic (`PCI_DEVICE_ID_REDHAT_PVPANIC`).
pub const PVPANIC_DEVICE_ID: u16 = 0x0011;
/// PCI revision id of pvpanic.
pub const PVPANIC_REVISION: u8 = 1;
/// PCI class code: base class 0x08 (system peripheral), subclass 0x80 (other):
/// `PCI_CLASS_SYSTEM_OTHER`, with programming interface 0.
pub const PVPANIC_CLASS_CODE: u32 = 0x08_80_00;
/// The BAR holding the register.
pub const PVPANIC_BAR: usize = 0;
/// Size of BAR 0: 16 bytes, the minimum for a memory BAR (QEMU's region is 2 bytes, rounded up).
pub const PVPANIC_BAR_SIZE: u64 = 16;
/// The event register: read the supported events, write an event.
pub const EVENTS_OFFSET: u64 = 0;

/// Event bit 0: a guest panic happened and should be processed by the host.
pub const PVPANIC_PANICKED: u8 = 1 << 0;
/// Event bit 1: a guest panic happened and will be handled by the guest (a crash kernel is
/// loaded); the host should only record it.
pub const PVPANIC_CRASH_LOADED: u8 = 1 << 1;
/// Event bit 2: a regular guest shutdown happened (written by Linux 6.9 and later at power-off).
pub const PVPANIC_SHUTDOWN: u8 = 1 << 2;
/// What byte 0 reads: every event this model handles (QEMU's default, `PVPANIC_EVENTS`).
pub const SUPPORTED_EVENTS: u8 = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED | PVPANIC_SHUTDOWN;

/// The pvpanic card: a configuration space and one register that ends the run.
pub struct PvPanicDevice {
    config: ConfigSpace,
    control: Arc<VmControl>,
    guest_errors: GuestErrorLog,
}

impl PvPanicDevice {
    /// A card that stops the VM through `control` when the guest reports a panic.
    ///
    /// # Errors
    /// Never in practice: [`ConfigError`] if the BAR did not fit the configuration space.
    pub fn new(control: Arc<VmControl>) -> Result<Self, ConfigError> {
        let config = ConfigSpace::new(PVPANIC_VENDOR_ID, PVPANIC_DEVICE_ID, PVPANIC_CLASS_CODE, PVPANIC_REVISION)
            .with_subsystem(QEMU_SUBSYSTEM_VENDOR_ID, QEMU_SUBSYSTEM_ID)
            .with_bar(PVPANIC_BAR, BarKind::Memory32 { prefetchable: false }, PVPANIC_BAR_SIZE)?;
        Ok(PvPanicDevice { config, control, guest_errors: GuestErrorLog::default() })
    }

    /// Guest errors seen so far.
    pub fn guest_errors(&self) -> &GuestErrorLog {
        &self.guest_errors
    }

    // qa:begin stage7-pvpanic-event
    /// The guest wrote `events` to the register.
    fn handle_events(&mut self, events: u8) {
        let unknown = events & !SUPPORTED_EVENTS;
        if unknown != 0 {
            self.guest_errors.report("pvpanic", &format_args!("unknown event {unknown:#x}"));
        }
        if events & PVPANIC_PANICKED != 0 {
            self.control.request_stop(StopReason::GuestPanic);
        } else if events & PVPANIC_CRASH_LOADED != 0 {
            // The guest's crash kernel takes over: record it, let the guest run.
            eprintln!("[minivirt] pvpanic: the guest kernel panicked; its crash kernel takes over");
        } else if events & PVPANIC_SHUTDOWN != 0 {
            self.control.request_stop(StopReason::PowerOff);
        }
    }
    // qa:end stage7-pvpanic-event
}

impl PciDevice for PvPanicDevice {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn mmio_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if bar == PVPANIC_BAR && offset == EVENTS_OFFSET {
            if let Some(first) = data.first_mut() {
                *first = SUPPORTED_EVENTS;
            }
        }
    }

    fn mmio_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        // The register is byte 0; a wider write that covers it carries the event in its low byte.
        if bar == PVPANIC_BAR && offset == EVENTS_OFFSET {
            if let Some(&events) = data.first() {
                self.handle_events(events);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::config::{
        BAR0_OFFSET, CLASS_CODE_OFFSET, DEVICE_ID_OFFSET, INTERRUPT_PIN_OFFSET, REVISION_ID_OFFSET, VENDOR_ID_OFFSET,
    };

    fn card() -> (PvPanicDevice, Arc<VmControl>) {
        let control = Arc::new(VmControl::new());
        (PvPanicDevice::new(Arc::clone(&control)).unwrap(), control)
    }

    #[test]
    fn config_space_is_qemus_pvpanic_pci() {
        let (card, _) = card();
        let config = card.config();
        assert_eq!(config.read_u16(VENDOR_ID_OFFSET), 0x1b36);
        assert_eq!(config.read_u16(DEVICE_ID_OFFSET), 0x0011);
        assert_eq!(config.read_u8(REVISION_ID_OFFSET), 1);
        assert_eq!(config.read_u32(REVISION_ID_OFFSET) >> 8, 0x08_80_00, "class 0880, prog-if 0");
        assert_eq!(config.read_u8(CLASS_CODE_OFFSET + 2), 0x08);
        assert_eq!(config.read_u8(INTERRUPT_PIN_OFFSET), 0, "no interrupt pin");
        let bars = card.bars();
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].size, PVPANIC_BAR_SIZE);
        assert_eq!(config.read_u32(BAR0_OFFSET) & 0xf, 0, "32-bit, non-prefetchable memory BAR");
    }

    #[test]
    fn byte_0_reads_the_supported_events_and_the_rest_reads_0() {
        let (mut card, _) = card();
        let mut byte = [0xaa];
        card.mmio_read(PVPANIC_BAR, EVENTS_OFFSET, &mut byte);
        assert_eq!(byte, [PVPANIC_PANICKED | PVPANIC_CRASH_LOADED | PVPANIC_SHUTDOWN]);
        let mut dword = [0xaa; 4];
        card.mmio_read(PVPANIC_BAR, EVENTS_OFFSET, &mut dword);
        assert_eq!(dword, [0b111, 0, 0, 0]);
        card.mmio_read(PVPANIC_BAR, 8, &mut dword);
        assert_eq!(dword, [0; 4]);
    }

    #[test]
    fn a_panicked_event_stops_the_vm_as_a_guest_panic() {
        let (mut card, control) = card();
        card.mmio_write(PVPANIC_BAR, 1, &[PVPANIC_PANICKED]);
        assert!(!control.is_stopping(), "only byte 0 is the register");
        card.mmio_write(PVPANIC_BAR, EVENTS_OFFSET, &[PVPANIC_PANICKED]);
        let reason = control.reason().unwrap();
        assert_eq!(reason, StopReason::GuestPanic);
        assert_eq!(reason.to_string(), "guest kernel panicked");
        assert!(!reason.is_clean(), "a panic is not a clean exit");
    }

    #[test]
    fn crash_loaded_lets_the_guest_run_and_shutdown_is_a_power_off() {
        let (mut card, control) = card();
        card.mmio_write(PVPANIC_BAR, EVENTS_OFFSET, &[PVPANIC_CRASH_LOADED]);
        card.mmio_write(PVPANIC_BAR, EVENTS_OFFSET, &[0]);
        assert!(!control.is_stopping());
        card.mmio_write(PVPANIC_BAR, EVENTS_OFFSET, &[PVPANIC_SHUTDOWN]);
        assert_eq!(control.reason(), Some(StopReason::PowerOff));
    }

    #[test]
    fn unknown_event_bits_are_a_guest_error_and_nothing_else() {
        let (mut card, control) = card();
        card.mmio_write(PVPANIC_BAR, EVENTS_OFFSET, &[0x80]);
        assert!(!control.is_stopping());
        assert_eq!(card.guest_errors().count(), 1);
        assert!(card.guest_errors().last().unwrap().contains("unknown event 0x80"));
        // Another BAR index is not this card's: nothing happens.
        card.mmio_write(1, EVENTS_OFFSET, &[PVPANIC_PANICKED]);
        assert!(!control.is_stopping());
    }
}
