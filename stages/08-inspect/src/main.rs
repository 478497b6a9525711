//! `stage08`: the machine of stage 7, with a monitor, exit statistics, a profiler, and each
//! thread confined by a seccomp filter.

use clap::Parser;
use stage03::control::StopReason;
use stage04::legacy;
use stage04::machine::{BootArgs, Machine};
use stage05::console;
use stage06::disks::{self, DiskArgs};
use stage07::platform;
use stage08::demo::{self, Demo};
use stage08::inspector::{InspectArgs, Inspector};
use stage08::sandbox::{Sandbox, SandboxArgs};
use std::error::Error;
use std::process::ExitCode;

/// Stage 8 of minivirt: look inside the running machine.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Run a demonstration without Linux instead (paging: page walks; exits: exit recording).
    #[arg(long, value_enum)]
    demo: Option<Demo>,
    #[command(flatten)]
    inspect: InspectArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    disks: DiskArgs,
    #[command(flatten)]
    boot: BootArgs,
}

fn main() -> ExitCode {
    let args: Args = stage01::parse_args();
    if let Some(which) = args.demo {
        return stage01::exit_status("stage08", demo::run(which));
    }
    stage05::terminal::install_panic_hook("stage08");
    stage03::control::exit_code("stage08", run(&args))
}

fn run(args: &Args) -> Result<StopReason, Box<dyn Error>> {
    // Memory and the interrupt controllers.
    let mut machine = Machine::new("stage08", &args.boot)?;
    // Confinement: each thread started from here on allows itself only the calls it needs.
    let sandbox = Sandbox::confine_threads(machine.program(), &args.sandbox)?;
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
    eprintln!("{}", sandbox.summary());
    Ok(reason)
}
