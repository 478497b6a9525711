//! The console of stages 5 to 7: the 16550A on COM1, stdin behind it through the input loop,
//! and the terminal in raw mode for as long as the VM runs.

use crate::devices::serial::{Serial, SerialError, SerialEvents};
use crate::event_loop::{InputConfig, InputLoop};
use crate::signals::TerminationSignals;
use crate::terminal::RawTerminal;
use stage03::control::StopReason;
use stage04::boot::{self, COM1_IRQ};
use stage04::irq::{self, EventFdTrigger};
use stage04::machine::Machine;
use std::io::Stdout;
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

/// The attached console; dropping it stops the input loop and restores the terminal.
pub struct SerialConsole {
    input: Option<InputLoop>,
    terminal: Option<RawTerminal>,
}

impl SerialConsole {
    /// Puts the UART on COM1 of `machine` (with stage 4's legacy stubs), its interrupt on
    /// IRQ 4, stdin behind it, and the terminal, if stdin is one, in raw mode. Call it before
    /// the vCPUs start: it blocks the termination signals for every thread started later.
    pub fn attach(machine: &Machine) -> Result<SerialConsole, String> {
        let signals = TerminationSignals::block().map_err(|e| format!("cannot block termination signals: {e}"))?;
        let trigger = irq::register_irqfd(&machine.vm.fd, COM1_IRQ)?;
        let wakeup = EventFd::new(EFD_NONBLOCK).map_err(|e| format!("cannot create an eventfd: {e}"))?;
        let events = ConsoleEvents { wakeup: wakeup.try_clone().map_err(|e| format!("cannot clone an eventfd: {e}"))? };
        let serial: Arc<Mutex<ConsoleSerial>> =
            Arc::new(Mutex::new(Serial::with_events(trigger, std::io::stdout(), events)));
        boot::register_legacy_devices(&machine.vm, &machine.control, serial.clone()).map_err(|e| e.to_string())?;

        let terminal = RawTerminal::enter().map_err(|e| format!("cannot put the terminal in raw mode: {e}"))?;
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
        };
        let input = InputLoop::start(config).map_err(|e| format!("cannot start the console input thread: {e}"))?;
        Ok(SerialConsole { input: Some(input), terminal })
    }
}

impl Drop for SerialConsole {
    fn drop(&mut self) {
        if let Some(input) = self.input.take() {
            input.stop();
        }
        self.terminal.take();
    }
}

/// Runs `machine` with the console attached, until the VM stops: the way stages 5 to 7 run.
pub fn run_with_console(machine: Machine) -> Result<StopReason, String> {
    let console = SerialConsole::attach(&machine)?;
    let result = machine.run();
    drop(console);
    result
}
