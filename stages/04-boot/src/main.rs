//! `stage04`: boot a Linux kernel to its initramfs, with the console on the serial port.

use clap::Parser;
use stage02::vm::Vm;
use stage03::cli::MachineArgs;
use stage03::control::{StopReason, VmControl};
use stage03::host_workarounds::{HostWorkarounds, KERNEL_CMDLINE_SMP_WORKAROUND, KERNEL_CMDLINE_WORKAROUNDS};
use stage03::vcpu::{ExitCounts, VcpuContext};
use stage04::boot::{self, COM1_IRQ};
use stage04::cmdline::BASE_CMDLINE;
use stage04::devices::console::Console;
use stage04::{guest, irq};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Stage 4 of minivirt: boot Linux with the 64-bit boot protocol.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Kernel: an ELF vmlinux or a bzImage (default: the lab guest's vmlinux).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Initial ramdisk (default: the lab guest's initramfs; "none" for no initrd).
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Extra kernel command-line options, after the ones the VMM needs.
    #[arg(long, default_value = "")]
    append: String,
    /// Number of vCPUs (1 to 32).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
    smp: u8,
    #[command(flatten)]
    machine: MachineArgs,
}

fn main() -> ExitCode {
    stage01::default_sigpipe();
    let args: Args = stage01::parse_args();
    stage03::control::exit_code("stage04", run(&args))
}

fn run(args: &Args) -> Result<StopReason, String> {
    let kernel = args.kernel.clone().unwrap_or_else(guest::default_kernel);
    let initrd = match &args.initrd {
        Some(path) if path.as_os_str() == "none" => None,
        Some(path) => Some(path.clone()),
        None => Some(guest::default_initrd()),
    };
    for path in std::iter::once(&kernel).chain(initrd.as_ref()) {
        if !path.is_file() {
            let hint = if args.kernel.is_none() { format!("; {}", guest::build_hint()) } else { String::new() };
            return Err(format!("{} is not a file{hint}", path.display()));
        }
    }
    let workarounds = Arc::new(HostWorkarounds::new(args.machine.host_workarounds));
    let host_options = if workarounds.enabled() { KERNEL_CMDLINE_WORKAROUNDS } else { "" };
    let smp_option = if workarounds.enabled() && args.smp > 1 {
        eprintln!("stage04: this host's KVM cannot start secondary vCPUs in real mode; the kernel will use one ({KERNEL_CMDLINE_SMP_WORKAROUND})");
        KERNEL_CMDLINE_SMP_WORKAROUND
    } else {
        ""
    };

    // Configure memory and interrupt controllers.
    let vm = Vm::new(args.machine.mem).map_err(|e| e.to_string())?;
    boot::configure_irqchip(&vm).map_err(|e| e.to_string())?;
    // Load the kernel.
    let cmdline = [BASE_CMDLINE, host_options, smp_option, &args.append];
    let entry =
        boot::load_guest(&vm.memory, &kernel, initrd.as_deref(), &cmdline, args.smp).map_err(|e| e.to_string())?;
    // Configure I/O.
    let control = Arc::new(VmControl::new());
    let trigger = irq::register_irqfd(&vm.fd, COM1_IRQ)?;
    let console = Arc::new(Mutex::new(Console::new(trigger, std::io::stdout())));
    boot::register_legacy_devices(&vm, &control, console).map_err(|e| e.to_string())?;
    // Configure vCPUs.
    let vcpus = boot::create_vcpus(&vm, args.smp, entry).map_err(|e| e.to_string())?;
    let context = VcpuContext {
        memory: Arc::clone(&vm.memory),
        buses: Arc::clone(&vm.buses),
        workarounds: Arc::clone(&workarounds),
        control,
        counts: Arc::new(ExitCounts::default()),
    };
    // Run.
    let started = Instant::now();
    let reason = boot::run(vcpus, &context).map_err(|e| e.to_string())?;
    let counts = &context.counts;
    let fixes = &workarounds.counts;
    eprintln!(
        "stage04: ran {:.1} s: {} exits ({} port I/O, {} MMIO); host workarounds: {} exceptions injected, {} instructions emulated, {} syscalls completed",
        started.elapsed().as_secs_f64(),
        counts.total.load(Ordering::Relaxed),
        counts.io.load(Ordering::Relaxed),
        counts.mmio.load(Ordering::Relaxed),
        fixes.injected_interrupts.load(Ordering::Relaxed),
        fixes.emulated_instructions.load(Ordering::Relaxed),
        fixes.syscall_fixups.load(Ordering::Relaxed),
    );
    if reason.is_clean() {
        // Unclean stops are reported by `exit_code`; a clean one is worth a line too.
        eprintln!("stage04: {reason}");
    }
    Ok(reason)
}
