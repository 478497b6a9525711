//! Wiring the PC's legacy devices into a machine: each at its fixed ports, the console's
//! interrupt through an irqfd on IRQ 4.
//!
//! | device  | ports       | interrupt | model                      |
//! |---------|-------------|-----------|----------------------------|
//! | COM1    | 0x3f8–0x3ff | IRQ 4     | [`Console`] (stage 5: a 16550A) |
//! | i8042   | 0x60–0x64   | —         | [`I8042`]: reset ends the run (a panic's warm one, failing) |
//! | CMOS    | 0x70–0x71   | —         | [`Cmos`]                   |

use crate::devices::{cmos::Cmos, console::Console, i8042::I8042};
use crate::irq::{register_irqfd, EventFdTrigger, IrqError};
use crate::layout::{CMOS_PORT, COM1_IRQ, COM1_PORT, I8042_PORT};
use crate::machine::Machine;
use stage02::bus::{BusError, SharedDevice};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A UART's eight registers.
pub const COM_PORT_COUNT: u64 = 8;
/// The i8042's ports: data at +0, command/status at +4.
pub const I8042_PORT_COUNT: u64 = 5;
/// The CMOS index and data ports.
pub const CMOS_PORT_COUNT: u64 = 2;

/// Why a legacy device could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// Its interrupt could not be wired.
    #[error(transparent)]
    Irq(#[from] IrqError),
    /// Its ports are taken.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Puts the i8042 (whose reset command stops the VM) and the CMOS stub on their ports.
pub fn attach_legacy_devices(machine: &Machine) -> Result<(), LegacyError> {
    let pio = &machine.vm.buses.pio;
    let i8042 = I8042::new(Arc::clone(&machine.control), Arc::clone(&machine.vm.memory));
    pio.insert("i8042", I8042_PORT, I8042_PORT_COUNT, Arc::new(Mutex::new(i8042)))?;
    pio.insert("cmos", CMOS_PORT, CMOS_PORT_COUNT, Arc::new(Mutex::new(Cmos::default())))?;
    Ok(())
}

/// The irqfd of COM1's interrupt, for whichever UART model sits there.
pub fn com1_interrupt(machine: &Machine) -> Result<EventFdTrigger, IrqError> {
    register_irqfd(&machine.vm.fd, COM1_IRQ)
}

/// Puts `uart` on COM1's ports.
pub fn attach_com1(machine: &Machine, uart: SharedDevice) -> Result<(), BusError> {
    machine.vm.buses.pio.insert("com1", COM1_PORT, COM_PORT_COUNT, uart)
}

/// Stage 4's console: the output-only UART on COM1, writing to `out`.
pub fn attach_console<W: Write + Send + 'static>(machine: &Machine, out: W) -> Result<(), LegacyError> {
    let console = Console::new(com1_interrupt(machine)?, out);
    Ok(attach_com1(machine, Arc::new(Mutex::new(console)))?)
}
