//! `stage03`: N vCPUs, each on its own thread, print a line from 64-bit long mode.

use clap::Parser;
use stage02::devices::console::PortConsole;
use stage02::vm::Vm;
use stage03::cli::MachineArgs;
use stage03::control::{StopReason, VmControl};
use stage03::demo;
use stage03::exit_hook::ExitHooks;
use stage03::host_workarounds::HostWorkarounds;
use stage03::vcpu::{join_vcpus, ExitCounts, Vcpu, VcpuContext};
use std::error::Error;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Stage 3 of minivirt: vCPUs in 64-bit long mode, one thread each.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Number of vCPUs (1 to 64).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=64))]
    smp: u8,
    #[command(flatten)]
    machine: MachineArgs,
    /// Set up the vCPUs, print vCPU 0's long-mode registers and page-table translations as KVM
    /// holds them, and exit without running the guest.
    #[arg(long)]
    show_long_mode: bool,
}

fn main() -> ExitCode {
    stage01::default_sigpipe();
    let args: Args = stage01::parse_args();
    stage03::control::exit_code("stage03", run(&args))
}

fn run(args: &Args) -> Result<StopReason, Box<dyn Error>> {
    // Configure memory.
    let vm = Vm::new(args.machine.mem)?;
    demo::load(&vm.memory)?;
    // Configure I/O.
    let console = Arc::new(Mutex::new(PortConsole::new(std::io::stdout())));
    vm.buses.pio.insert("console", u64::from(stage01::SERIAL_PORT), 1, console)?;
    // Configure vCPUs.
    let workarounds = Arc::new(HostWorkarounds::new(args.machine.host_workarounds));
    let counts = Arc::new(ExitCounts::default());
    let mut hooks = ExitHooks::default();
    hooks.push(counts.clone());
    hooks.push(workarounds.clone());
    let context = VcpuContext {
        memory: Arc::clone(&vm.memory),
        buses: Arc::clone(&vm.buses),
        control: Arc::new(VmControl::new()),
        hooks,
    };
    eprintln!(
        "stage03: {} vCPUs, {} MiB, host workarounds {}",
        args.smp,
        vm.memory.total_size() >> 20,
        if workarounds.enabled() { "on" } else { "off" }
    );
    let mut vcpus = Vec::new();
    for id in 0..args.smp {
        let vcpu = Vcpu::new(&vm.kvm, &vm.fd, id, args.smp)?;
        vcpu.configure_long_mode(&vm.memory, demo::entry_point(id))?;
        demo::use_demo_idt(&vcpu.fd).map_err(|e| format!("KVM_SET_SREGS failed: {e}"))?;
        vcpus.push(vcpu);
    }
    if args.show_long_mode {
        // A dry run: what vCPU 0 would start with.
        print!("vCPU 0:\n{}", stage03::regs::describe_long_mode(&vcpus[0].fd, &vm.memory)?);
        return Ok(StopReason::Halted);
    }
    // Run.
    let threads = vcpus.into_iter().map(|vcpu| vcpu.start(context.clone())).collect::<Result<Vec<_>, _>>()?;
    let reason = join_vcpus(threads, &context.control);
    eprintln!(
        "stage03: {reason} after {} exits ({} port I/O)",
        counts.total.load(Ordering::Relaxed),
        counts.io.load(Ordering::Relaxed),
    );
    if workarounds.enabled() {
        eprintln!("stage03: host workarounds: {}", workarounds.summary());
    }
    Ok(reason)
}
