//! A Linux machine as the stage binaries build it from here on: the [`boot`](crate::boot)
//! recipe behind two calls, so that each later stage only adds its devices in between.
//!
//! ```text
//! let machine = Machine::new("stage05", &args.boot, &extra_cmdline)?; // memory, irqchip, kernel
//! /* register this stage's devices on machine.vm's buses */
//! let reason = machine.run()?;                                       // vCPUs, run, statistics
//! ```

use crate::boot;
use crate::cmdline::BASE_CMDLINE;
use crate::guest;
use stage02::vm::Vm;
use stage03::cli::MachineArgs;
use stage03::control::{StopReason, VmControl};
use stage03::host_workarounds::{HostWorkarounds, KERNEL_CMDLINE_SMP_WORKAROUND, KERNEL_CMDLINE_WORKAROUNDS};
use stage03::vcpu::{ExitCounts, VcpuContext};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The flags that choose the guest: kernel, initrd, command line, vCPUs, memory.
#[derive(Debug, clap::Args)]
pub struct BootArgs {
    /// Kernel: an ELF vmlinux or a bzImage (default: the lab guest's vmlinux).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk (default: the lab guest's initramfs; "none" for no initrd).
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// Extra kernel command-line options, after the ones the VMM needs.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Number of vCPUs (1 to 32).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub smp: u8,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub machine: MachineArgs,
}

/// A VM with its guest loaded and no vCPU yet.
pub struct Machine {
    /// The VM: memory and buses, for the stage's devices.
    pub vm: Vm,
    /// The stop flag; devices that end the VM (i8042 reset, Ctrl-A x) hold it.
    pub control: Arc<VmControl>,
    program: &'static str,
    workarounds: Arc<HostWorkarounds>,
    vcpu_count: u8,
    entry: u64,
}

impl Machine {
    /// Steps 1 and 2 of the recipe: memory, interrupt controllers, kernel, initrd, zero page
    /// and MP table. `devices_cmdline` holds the options that declare the stage's devices.
    /// Errors are one line for the user, prefixed with nothing (the caller adds `program`).
    pub fn new(program: &'static str, args: &BootArgs, devices_cmdline: &[&str]) -> Result<Machine, String> {
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
            eprintln!("{program}: this host's KVM cannot start secondary vCPUs in real mode; the kernel will use one ({KERNEL_CMDLINE_SMP_WORKAROUND})");
            KERNEL_CMDLINE_SMP_WORKAROUND
        } else {
            ""
        };

        // Configure memory and interrupt controllers.
        let vm = Vm::new(args.machine.mem).map_err(|e| e.to_string())?;
        boot::configure_irqchip(&vm).map_err(|e| e.to_string())?;
        // Load the kernel; the user's options come last, so they can override ours.
        let mut cmdline = vec![BASE_CMDLINE, host_options, smp_option];
        cmdline.extend_from_slice(devices_cmdline);
        cmdline.push(&args.append);
        let entry =
            boot::load_guest(&vm.memory, &kernel, initrd.as_deref(), &cmdline, args.smp).map_err(|e| e.to_string())?;
        Ok(Machine { vm, control: Arc::new(VmControl::new()), program, workarounds, vcpu_count: args.smp, entry })
    }

    /// The stage binary's name, for messages.
    pub fn program(&self) -> &'static str {
        self.program
    }

    /// Steps 4 and 5: creates the vCPUs, runs them until the VM stops, and prints the exit
    /// statistics (and a clean stop's reason) on stderr.
    pub fn run(self) -> Result<StopReason, String> {
        let vcpus = boot::create_vcpus(&self.vm, self.vcpu_count, self.entry).map_err(|e| e.to_string())?;
        let context = VcpuContext {
            memory: Arc::clone(&self.vm.memory),
            buses: Arc::clone(&self.vm.buses),
            workarounds: Arc::clone(&self.workarounds),
            control: self.control,
            counts: Arc::new(ExitCounts::default()),
        };
        let started = Instant::now();
        let reason = boot::run(vcpus, &context).map_err(|e| e.to_string())?;
        let counts = &context.counts;
        let fixes = &self.workarounds.counts;
        eprintln!(
            "{}: ran {:.1} s: {} exits ({} port I/O, {} MMIO); host workarounds: {} exceptions injected, {} instructions emulated, {} syscalls completed",
            self.program,
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
            eprintln!("{}: {reason}", self.program);
        }
        Ok(reason)
    }
}
