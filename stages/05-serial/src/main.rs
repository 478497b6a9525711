//! `stage05`: boot the lab guest to an interactive shell on the terminal.

use clap::Parser;
use stage04::machine::{BootArgs, Machine};
use std::process::ExitCode;

/// Stage 5 of minivirt: a 16550A serial console with input, on an epoll event loop.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    boot: BootArgs,
}

fn main() -> ExitCode {
    let args: Args = stage01::parse_args();
    stage05::terminal::install_panic_hook("stage05");
    let result = Machine::new("stage05", &args.boot, &[]).and_then(stage05::console::run_with_console);
    stage03::control::exit_code("stage05", result)
}
