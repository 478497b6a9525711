//! `stage07`: the lab guest with PCI and QEMU's edu card (and stage 6's disks).

use clap::Parser;
use stage03::control::StopReason;
use stage04::legacy;
use stage04::machine::{BootArgs, Machine};
use stage05::console;
use stage06::disks::{self, DiskArgs};
use stage07::demo::{self, Demo};
use stage07::platform;
use std::error::Error;
use std::process::ExitCode;

/// Stage 7 of minivirt: PCI configuration space, BARs, and QEMU's edu device.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Run a demonstration without a guest instead (pci: BAR sizing and the edu card).
    #[arg(long, value_enum)]
    demo: Option<Demo>,
    #[command(flatten)]
    disks: DiskArgs,
    #[command(flatten)]
    boot: BootArgs,
}

fn main() -> ExitCode {
    let args: Args = stage01::parse_args();
    if let Some(which) = args.demo {
        return stage01::exit_status("stage07", demo::run(which));
    }
    stage05::terminal::install_panic_hook("stage07");
    stage03::control::exit_code("stage07", run(&args))
}

fn run(args: &Args) -> Result<StopReason, Box<dyn Error>> {
    // Memory and the interrupt controllers.
    let mut machine = Machine::new("stage07", &args.boot)?;
    // Devices: the legacy stubs, the console, the disks, and PCI with the edu card.
    legacy::attach_legacy_devices(&machine)?;
    let _console = console::attach_console(&machine)?;
    let _disks = disks::attach_disks(&mut machine, &args.disks)?;
    platform::attach_pci(&machine)?;
    // Kernel, vCPUs, run.
    Ok(machine.boot()?)
}
