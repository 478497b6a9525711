//! Just enough of the i8042 keyboard controller to reset the machine — and to tell a panic
//! from a reboot.
//!
//! With `reboot=k`, Linux reboots by writing the "pulse reset line" command 0xFE to the
//! controller's command port 0x64. This device turns that into a VM stop — which is how the
//! lab guest ends a run (its `poweroff` does `reboot -f`; there is no ACPI power button).
//!
//! # Panics end the run too
//! A panicking kernel would otherwise spin forever (at 100 % of a host CPU). `panic=-1` on the
//! command line makes it reboot at once instead — through this same port, so the reset alone
//! cannot say "panic". `reboot=panic_warm` makes the difference: a panic reboots in *warm* mode,
//! a `reboot` in the default cold mode, and just before the reset Linux writes the mode into
//! the BIOS data area's reset flag at 0x472 (0x1234 warm, 0 cold; `arch/x86/kernel/reboot.c`
//! `native_machine_emergency_restart`), where a PC BIOS looks after the reset. The VMM reads it
//! at the reset instead. Only a panic, or root choosing `/sys/kernel/reboot/mode`, sets it.
//!
//! # Resources
//! - Linux `arch/x86/kernel/reboot.c` (`BOOT_KBD`, the 0x472 write), `kernel/reboot.c`
//!   (`reboot=` and `panic_reboot_mode`), `kernel/panic.c` (`panic=`, the reboot after a panic);
//!   Firecracker `devices/legacy/i8042.rs`.
//! - The kernel's parameter list: <https://docs.kernel.org/admin-guide/kernel-parameters.html>
//!   (`panic=`, `reboot=`).

use crate::layout::BIOS_RESET_FLAG_ADDRESS;
use stage02::bus::BusDevice;
use stage02::memory::{GuestAddress, GuestMemory};
use stage03::control::{StopReason, VmControl};
use std::sync::Arc;

/// The controller's data port.
pub const DATA_PORT: u16 = 0x60;
/// The controller's command/status port (offset 4 from the data port).
pub const COMMAND_OFFSET: u64 = 4;
/// Command: pulse the CPU reset line.
pub const CMD_RESET_CPU: u8 = 0xfe;
/// The reset flag's value for a warm reboot (`reboot_mode == REBOOT_WARM`), which the lab's
/// command line asks for after a panic only.
pub const WARM_RESET_MAGIC: u16 = 0x1234;

/// The i8042, registered at ports 0x60..=0x64.
pub struct I8042 {
    control: Arc<VmControl>,
    memory: Arc<GuestMemory>,
}

impl I8042 {
    /// A controller that stops the VM through `control` on reset, reading the reset flag in
    /// `memory` to tell a panic ([`StopReason::GuestPanic`]) from a reboot.
    pub fn new(control: Arc<VmControl>, memory: Arc<GuestMemory>) -> Self {
        I8042 { control, memory }
    }

    /// Why the guest reset the machine: a warm reset flag means the kernel panicked.
    fn reset_reason(&self) -> StopReason {
        // A machine without RAM at 0x472 (a test's) reads as a cold reset.
        match self.memory.read_obj::<u16>(GuestAddress(BIOS_RESET_FLAG_ADDRESS)) {
            Ok(WARM_RESET_MAGIC) => StopReason::GuestPanic,
            _ => StopReason::Reset,
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Status 0: output buffer empty, input buffer empty — nothing to read, ready for commands.
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == COMMAND_OFFSET && data.first() == Some(&CMD_RESET_CPU) {
            self.control.request_stop(self.reset_reason());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn low_memory() -> Arc<GuestMemory> {
        Arc::new(GuestMemory::new(&[(0, 0x1000)]).unwrap())
    }

    #[test]
    fn the_reset_command_stops_the_vm_and_nothing_else_does() {
        let control = Arc::new(VmControl::new());
        let mut i8042 = I8042::new(Arc::clone(&control), low_memory());
        i8042.write(0, &[CMD_RESET_CPU]);
        i8042.write(COMMAND_OFFSET, &[0xad]);
        assert!(!control.is_stopping());
        i8042.write(COMMAND_OFFSET, &[CMD_RESET_CPU]);
        assert_eq!(control.reason(), Some(StopReason::Reset));
        assert!(control.reason().unwrap().is_clean());
    }

    #[test]
    fn a_reset_with_the_warm_flag_is_a_panic() {
        let memory = low_memory();
        memory.write_obj(GuestAddress(BIOS_RESET_FLAG_ADDRESS), WARM_RESET_MAGIC).unwrap();
        let control = Arc::new(VmControl::new());
        I8042::new(Arc::clone(&control), memory).write(COMMAND_OFFSET, &[CMD_RESET_CPU]);
        let reason = control.reason().unwrap();
        assert_eq!(reason, StopReason::GuestPanic);
        assert!(!reason.is_clean());
        assert_eq!(reason.to_string(), "guest kernel panicked");
    }

    #[test]
    fn a_cold_flag_or_no_ram_there_is_a_reset() {
        let memory = low_memory();
        memory.write_obj(GuestAddress(BIOS_RESET_FLAG_ADDRESS), 0u16).unwrap();
        let control = Arc::new(VmControl::new());
        I8042::new(Arc::clone(&control), memory).write(COMMAND_OFFSET, &[CMD_RESET_CPU]);
        assert_eq!(control.reason(), Some(StopReason::Reset));

        let control = Arc::new(VmControl::new());
        let no_low_ram = Arc::new(GuestMemory::new(&[(0x10_0000, 0x1000)]).unwrap());
        I8042::new(Arc::clone(&control), no_low_ram).write(COMMAND_OFFSET, &[CMD_RESET_CPU]);
        assert_eq!(control.reason(), Some(StopReason::Reset));
    }
}
