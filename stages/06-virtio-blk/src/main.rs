//! `stage06`: the lab guest with virtio-blk disks, on the stage 5 console.

use clap::Parser;
use stage03::control::StopReason;
use stage04::legacy;
use stage04::machine::{BootArgs, Machine};
use stage05::console;
use stage06::demo::{self, Demo};
use stage06::disks::{self, DiskArgs};
use std::error::Error;
use std::process::ExitCode;

/// Stage 6 of minivirt: virtio-mmio and a virtio-blk disk backed by a raw image.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Run a demonstration without a guest instead (virtqueue: descriptor chains and disk requests).
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
        return stage01::exit_status("stage06", demo::run(which));
    }
    stage05::terminal::install_panic_hook("stage06");
    stage03::control::exit_code("stage06", run(&args))
}

fn run(args: &Args) -> Result<StopReason, Box<dyn Error>> {
    // Memory and the interrupt controllers.
    let mut machine = Machine::new("stage06", &args.boot)?;
    // Devices: the legacy stubs, the console, and a virtio-blk disk per --disk.
    legacy::attach_legacy_devices(&machine)?;
    let _console = console::attach_console(&machine)?;
    let _disks = disks::attach_disks(&mut machine, &args.disks)?;
    // Kernel, vCPUs, run.
    Ok(machine.boot()?)
}
