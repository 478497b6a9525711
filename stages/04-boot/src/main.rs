//! `stage04`: boot a Linux kernel to its initramfs, with the console on the serial port.

use clap::Parser;
use stage03::control::StopReason;
use stage04::boot::{self, COM1_IRQ};
use stage04::devices::console::Console;
use stage04::irq;
use stage04::machine::{BootArgs, Machine};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// Stage 4 of minivirt: boot Linux with the 64-bit boot protocol.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    boot: BootArgs,
}

fn main() -> ExitCode {
    stage01::default_sigpipe();
    let args: Args = stage01::parse_args();
    stage03::control::exit_code("stage04", run(&args))
}

fn run(args: &Args) -> Result<StopReason, String> {
    let machine = Machine::new("stage04", &args.boot, &[])?;
    // Configure I/O: an output-only console on COM1 and the legacy stubs.
    let trigger = irq::register_irqfd(&machine.vm.fd, COM1_IRQ)?;
    let console = Arc::new(Mutex::new(Console::new(trigger, std::io::stdout())));
    boot::register_legacy_devices(&machine.vm, &machine.control, console).map_err(|e| e.to_string())?;
    machine.run()
}
