//! `stage07`: the lab guest with PCI and QEMU's edu card (and stage 6's disks).

use clap::Parser;
use stage04::machine::BootArgs;
use stage06::disks::{self, DiskArgs};
use std::process::ExitCode;

/// Stage 7 of minivirt: PCI configuration space, BARs, and QEMU's edu device.
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
    stage05::terminal::install_panic_hook("stage07");
    stage03::control::exit_code("stage07", run(&args))
}

fn run(args: &Args) -> Result<stage03::control::StopReason, String> {
    let (machine, _disks) = disks::machine_with_disks("stage07", &args.boot, &args.disks.disks)?;
    stage07::platform::attach_pci(&machine)?;
    stage05::console::run_with_console(machine)
}
