//! `stage08`: the machine of stage 7, with a monitor, exit statistics and a profiler.

use clap::Parser;
use stage03::control::StopReason;
use stage04::legacy;
use stage04::machine::{BootArgs, Machine};
use stage05::console;
use stage06::disks::{self, DiskArgs};
use stage07::platform;
use stage08::inspector::{InspectArgs, Inspector};
use std::error::Error;
use std::process::ExitCode;

/// Stage 8 of minivirt: look inside the running machine.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    inspect: InspectArgs,
    #[command(flatten)]
    disks: DiskArgs,
    #[command(flatten)]
    boot: BootArgs,
}

fn main() -> ExitCode {
    let args: Args = stage01::parse_args();
    stage05::terminal::install_panic_hook("stage08");
    stage03::control::exit_code("stage08", run(&args))
}

fn run(args: &Args) -> Result<StopReason, Box<dyn Error>> {
    // Memory and the interrupt controllers.
    let mut machine = Machine::new("stage08", &args.boot)?;
    // The inspection tools: exit hooks, the boot timer, the monitor.
    let inspector = Inspector::attach(&mut machine, &args.inspect)?;
    // Devices: the legacy stubs, the console (Ctrl-A c: the monitor), the disks, PCI.
    legacy::attach_legacy_devices(&machine)?;
    let _console = console::attach_console_with_monitor(&machine, Some(inspector.console_monitor()))?;
    let _disks = disks::attach_disks(&mut machine, &args.disks)?;
    platform::attach_pci(&machine)?;
    // Kernel, vCPUs, run; then the statistics.
    let reason = machine.boot()?;
    inspector.finish()?;
    Ok(reason)
}
