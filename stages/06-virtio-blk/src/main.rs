//! `stage06`: the lab guest with virtio-blk disks, on the stage 5 console.

use clap::Parser;
use stage04::machine::BootArgs;
use stage06::disks::{self, DiskArgs};
use std::process::ExitCode;

/// Stage 6 of minivirt: virtio-mmio and a virtio-blk disk backed by a raw image.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    disks: DiskArgs,
    #[command(flatten)]
    boot: BootArgs,
}

fn main() -> ExitCode {
    let args: Args = stage01::parse_args();
    stage05::terminal::install_panic_hook("stage06");
    stage03::control::exit_code("stage06", run(&args))
}

fn run(args: &Args) -> Result<stage03::control::StopReason, String> {
    let (machine, _disks) = disks::machine_with_disks("stage06", &args.boot, &args.disks.disks)?;
    stage05::console::run_with_console(machine)
}
