//! Just enough of the i8042 keyboard controller to reset the machine.
//!
//! With `reboot=k`, Linux reboots by writing the "pulse reset line" command 0xFE to the
//! controller's command port 0x64. This device turns that into a VM stop — which is how the
//! lab's guest ends a run (its `poweroff` does `reboot -f`; there is no ACPI power button).
//!
//! # Resources
//! - Linux `arch/x86/kernel/reboot.c` (`BOOT_KBD`); Firecracker `devices/legacy/i8042.rs`.

use stage02::bus::BusDevice;
use stage03::control::{StopReason, VmControl};
use std::sync::Arc;

/// The controller's data port.
pub const DATA_PORT: u16 = 0x60;
/// The controller's command/status port (offset 4 from the data port).
pub const COMMAND_OFFSET: u64 = 4;
/// Command: pulse the CPU reset line.
pub const CMD_RESET_CPU: u8 = 0xfe;

/// The i8042, registered at ports 0x60..=0x64.
pub struct I8042 {
    control: Arc<VmControl>,
}

impl I8042 {
    /// A controller that stops the VM through `control` on reset.
    pub fn new(control: Arc<VmControl>) -> Self {
        I8042 { control }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Status 0: output buffer empty, input buffer empty — nothing to read, ready for commands.
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == COMMAND_OFFSET && data.first() == Some(&CMD_RESET_CPU) {
            self.control.request_stop(StopReason::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_command_stops_the_vm_and_nothing_else_does() {
        let control = Arc::new(VmControl::new());
        let mut i8042 = I8042::new(Arc::clone(&control));
        i8042.write(0, &[CMD_RESET_CPU]);
        i8042.write(COMMAND_OFFSET, &[0xad]);
        assert!(!control.is_stopping());
        i8042.write(COMMAND_OFFSET, &[CMD_RESET_CPU]);
        assert_eq!(control.reason(), Some(StopReason::Reset));
    }
}
