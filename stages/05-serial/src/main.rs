//! `stage05`: boot the lab guest to an interactive shell on the terminal.

use clap::Parser;
use stage03::control::StopReason;
use stage04::legacy;
use stage04::machine::{BootArgs, Machine};
use stage05::console;
use stage05::demo::{self, Demo};
use std::error::Error;
use std::process::ExitCode;

/// Stage 5 of minivirt: a 16550A serial console with input, on an epoll event loop.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Run a demonstration without a guest instead (uart: the 16550A register by register).
    #[arg(long, value_enum)]
    demo: Option<Demo>,
    #[command(flatten)]
    boot: BootArgs,
}

fn main() -> ExitCode {
    stage01::default_sigpipe();
    let args: Args = stage01::parse_args();
    if let Some(which) = args.demo {
        demo::run(which);
        return ExitCode::SUCCESS;
    }
    stage05::terminal::install_panic_hook("stage05");
    stage03::control::exit_code("stage05", run(&args))
}

fn run(args: &Args) -> Result<StopReason, Box<dyn Error>> {
    // Memory and the interrupt controllers.
    let machine = Machine::new("stage05", &args.boot)?;
    // Devices: the PC's legacy stubs, and a 16550A on COM1 with the terminal behind it.
    legacy::attach_legacy_devices(&machine)?;
    let _console = console::attach_console(&machine)?;
    // Kernel, vCPUs, run. The console restores the terminal when it is dropped.
    Ok(machine.boot()?)
}
