//! The console of stages 5 to 8: the 16550A on COM1, stdin behind it through the input loop,
//! and the terminal in raw mode for as long as the VM runs.
//!
//! ```text
//! let mut machine = Machine::new("stage05", &args.boot)?;
//! legacy::attach_legacy_devices(&machine)?;
//! let _console = console::attach_console(&machine)?; // keep it until the VM has stopped
//! machine.boot()
//! ```

use crate::devices::serial::{Serial, SerialError, SerialEvents};
use crate::event_loop::{ConsoleMonitor, InputConfig, InputLoop};
use crate::signals::TerminationSignals;
use crate::terminal::RawTerminal;
use stage02::bus::BusError;
use stage04::irq::{EventFdTrigger, IrqError};
use stage04::legacy;
use stage04::machine::Machine;
use std::io::{self, Stdout};
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The UART as the VMM wires it: interrupts through an irqfd, output to stdout.
pub type ConsoleSerial = Serial<EventFdTrigger, Stdout, ConsoleEvents>;

/// What the VMM does with the UART's side events.
pub struct ConsoleEvents {
    /// Wakes the input loop: the UART can take input again.
    wakeup: EventFd,
}

impl SerialEvents for ConsoleEvents {
    fn in_buffer_empty(&self) {
        // A failed write means the counter is saturated: the loop is already due to wake.
        let _ = self.wakeup.write(1);
    }

    fn ready_to_receive(&self) {
        let _ = self.wakeup.write(1);
    }

    fn error(&self, error: SerialError) {
        stage02::guest_error!("serial", "{error}");
    }
}

/// Why the console could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// SIGINT, SIGTERM and SIGHUP could not be turned into events.
    #[error("cannot block termination signals: {0}")]
    Signals(#[source] io::Error),
    /// The UART's interrupt could not be wired.
    #[error(transparent)]
    Irq(#[from] IrqError),
    /// The input loop's wake-up eventfd could not be made.
    #[error("cannot create an eventfd: {0}")]
    EventFd(#[source] io::Error),
    /// COM1's ports are taken.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The terminal refused raw mode.
    #[error("cannot put the terminal in raw mode: {0}")]
    Terminal(#[source] io::Error),
    /// The input thread could not start.
    #[error("cannot start the console input thread: {0}")]
    InputThread(#[source] io::Error),
}

/// The attached console; dropping it stops the input loop and restores the terminal.
pub struct SerialConsole {
    input: Option<InputLoop>,
    terminal: Option<RawTerminal>,
}

/// Puts the UART on COM1 of `machine`, its interrupt on IRQ 4, stdin behind it, and the
/// terminal, if stdin is one, in raw mode. Call it before the vCPUs start: it blocks the
/// termination signals for every thread started later. Keep the console until the VM stops.
pub fn attach_console(machine: &Machine) -> Result<SerialConsole, ConsoleError> {
    attach_console_with_monitor(machine, None)
}

/// [`attach_console`], with a monitor that Ctrl-A c switches to (stage 8).
pub fn attach_console_with_monitor(
    machine: &Machine,
    monitor: Option<Box<dyn ConsoleMonitor>>,
) -> Result<SerialConsole, ConsoleError> {
    let signals = TerminationSignals::block().map_err(ConsoleError::Signals)?;
    let trigger = legacy::com1_interrupt(machine)?;
    let wakeup = EventFd::new(EFD_NONBLOCK).map_err(ConsoleError::EventFd)?;
    let events = ConsoleEvents { wakeup: wakeup.try_clone().map_err(ConsoleError::EventFd)? };
    let serial: Arc<Mutex<ConsoleSerial>> = Arc::new(Mutex::new(Serial::with_events(trigger, io::stdout(), events)));
    legacy::attach_com1(machine, serial.clone())?;

    let terminal = RawTerminal::enter().map_err(ConsoleError::Terminal)?;
    if terminal.is_some() {
        eprint!("{}: the guest's console is this terminal; Ctrl-A x quits, Ctrl-A h helps\r\n", machine.program());
    }
    let config = InputConfig {
        serial,
        wakeup,
        input: libc::STDIN_FILENO,
        escapes: terminal.is_some(),
        signals: Some(signals),
        control: Arc::clone(&machine.control),
        monitor,
    };
    let input = InputLoop::start(config).map_err(ConsoleError::InputThread)?;
    Ok(SerialConsole { input: Some(input), terminal })
}

impl Drop for SerialConsole {
    fn drop(&mut self) {
        if let Some(input) = self.input.take() {
            input.stop();
        }
        self.terminal.take();
    }
}
