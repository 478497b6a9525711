//! `stage04`: boot a Linux kernel to its initramfs, with the console on the serial port.

use clap::Parser;
use stage03::control::StopReason;
use stage04::legacy;
use stage04::machine::{BootArgs, Machine};
use std::error::Error;
use std::process::ExitCode;

/// Stage 4 of minivirt: boot Linux with the 64-bit boot protocol.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    boot: BootArgs,
    /// Load the kernel, write the zero page and E820 map, print their fields, and exit without
    /// running the vCPUs.
    #[arg(long)]
    show_boot_params: bool,
}

fn main() -> ExitCode {
    stage01::default_sigpipe();
    let args: Args = stage01::parse_args();
    stage03::control::exit_code("stage04", run(&args))
}

fn run(args: &Args) -> Result<StopReason, Box<dyn Error>> {
    // Memory and the interrupt controllers.
    let machine = Machine::new("stage04", &args.boot)?;
    // Devices: the PC's legacy stubs, and an output-only console on COM1.
    legacy::attach_legacy_devices(&machine)?;
    legacy::attach_console(&machine, std::io::stdout())?;
    if args.show_boot_params {
        // A dry run: the zero page as the kernel would find it.
        print!("{}", machine.show_boot_params()?);
        return Ok(StopReason::Halted);
    }
    // Kernel, vCPUs, run.
    Ok(machine.boot()?)
}
