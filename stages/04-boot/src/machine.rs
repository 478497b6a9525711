//! A Linux machine as the stage binaries build it from here on: the [`boot`](crate::boot)
//! recipe, in the order lumper and Firecracker teach — memory, devices, kernel, vCPUs, run.
//!
//! ```text
//! let mut machine = Machine::new("stage05", &args.boot)?; // memory, interrupt controllers
//! legacy::attach_legacy_devices(&machine)?;                 // devices, each stage adding its own
//! machine.boot()                                            // kernel, vCPUs, run
//! ```
//!
//! Devices that Linux cannot find by probing (virtio-mmio disks) declare themselves on the
//! kernel command line through [`Machine::add_cmdline`]; the command line and the zero page
//! are written by [`Machine::boot`], once every device is in.

use crate::bios_area::{BiosArea, BiosAreaError};
use crate::boot::{self, BootError};
use crate::cmdline::{BASE_CMDLINE, FAST_BOOT_CMDLINE};
use crate::dry_run;
use crate::guest;
use crate::syscall_fixup::SyscallFixup;
use stage02::vm::{Vm, VmError};
use stage03::cli::MachineArgs;
use stage03::control::{StopReason, VmControl};
use stage03::exit_hook::{ExitHook, ExitHooks};
use stage03::host_workarounds::{HostWorkarounds, KERNEL_CMDLINE_SMP_WORKAROUND, KERNEL_CMDLINE_WORKAROUNDS};
use stage03::vcpu::{ExitCounts, VcpuContext};
use std::path::{Path, PathBuf};
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

/// Why the machine could not be built or booted.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The kernel or initrd named (or defaulted to) is not there.
    #[error("{} is not a file{hint}", path.display())]
    MissingFile {
        /// The path.
        path: PathBuf,
        /// How to get the default guest, when a default was used.
        hint: String,
    },
    /// The VM could not be created.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The BIOS area could not be mapped.
    #[error(transparent)]
    BiosArea(#[from] BiosAreaError),
    /// A step of the boot recipe failed.
    #[error(transparent)]
    Boot(#[from] BootError),
}

/// Buffers from 128 KiB up get their own mapping, returned to the system when freed.
pub const MMAP_THRESHOLD: i32 = 128 << 10;
/// One malloc arena for all threads.
pub const ARENA_MAX: i32 = 1;

/// Keeps glibc's allocator from holding memory the VMM no longer uses: its own memory is
/// what the boot-complete overhead measures (Firecracker's budget is 5 MiB).
///
/// - glibc raises its mmap threshold to the size of the largest mapped buffer freed, so after
///   the 15 MB vmlinux buffer is freed, the initrd's buffer would come from the heap and stay
///   resident there once freed. A fixed threshold turns that adjustment off.
/// - glibc gives threads their own arenas (up to 8 per core), each with its own resident
///   pages; the VMM's threads allocate little and never in a hot loop, so one arena will do.
fn limit_allocator_footprint() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters, and the values are in their ranges; no
    // other thread exists yet to allocate concurrently.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

/// A VM with its memory and interrupt controllers, waiting for its devices.
pub struct Machine {
    /// The VM: memory and buses, for the stage's devices.
    pub vm: Vm,
    /// The stop flag; devices that end the VM (i8042 reset, Ctrl-A x) hold it.
    pub control: Arc<VmControl>,
    /// The read-only BIOS area (none when the host's KVM has no read-only memory).
    bios_area: Option<BiosArea>,
    program: &'static str,
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    vcpu_count: u8,
    /// The VMM's own command-line options, in order; the user's `--append` goes last.
    cmdline: Vec<String>,
    append: String,
    hooks: ExitHooks,
    counts: Arc<ExitCounts>,
    workarounds: Arc<HostWorkarounds>,
    syscall_fixup: Option<Arc<SyscallFixup>>,
}

impl Machine {
    /// Step 1 of the recipe: checks the kernel and initrd exist, creates the VM with its RAM
    /// and the read-only BIOS area, and the in-kernel interrupt controllers (they must exist
    /// before any vCPU).
    ///
    /// # Errors
    /// One line for the user (the caller prefixes `program`): a missing file, no KVM, no memory.
    pub fn new(program: &'static str, args: &BootArgs) -> Result<Machine, MachineError> {
        let kernel = args.kernel.clone().unwrap_or_else(guest::default_kernel);
        let initrd = match &args.initrd {
            Some(path) if path.as_os_str() == "none" => None,
            Some(path) => Some(path.clone()),
            None => Some(guest::default_initrd()),
        };
        let defaulted = [(Some(&kernel), args.kernel.is_none()), (initrd.as_ref(), args.initrd.is_none())];
        for (path, default) in defaulted.into_iter().filter_map(|(path, default)| Some((path?, default))) {
            if !path.is_file() {
                // The build hint only for a default path: a file the user named is theirs to fix.
                let hint = if default { format!("; {}", guest::build_hint()) } else { String::new() };
                return Err(MachineError::MissingFile { path: path.clone(), hint });
            }
        }
        limit_allocator_footprint();
        let vm = Vm::new(args.machine.mem)?;
        // Guest RAM has slots 0..n (stage 2); the BIOS area takes the next one.
        let bios_area = BiosArea::register(&vm.kvm, &vm.fd, vm.memory.regions().len() as u32)?;
        boot::configure_irqchip(&vm)?;

        let workarounds = Arc::new(HostWorkarounds::new(args.machine.host_workarounds));
        let counts = Arc::new(ExitCounts::default());
        let mut hooks = ExitHooks::default();
        hooks.push(counts.clone());
        let mut cmdline = vec![BASE_CMDLINE.to_string(), FAST_BOOT_CMDLINE.to_string()];
        let mut syscall_fixup = None;
        if workarounds.enabled() {
            // The Linux-only fix-up goes first: it must see its own `int3` before stage 3's layer.
            let fixup = Arc::new(SyscallFixup::new(Arc::clone(&vm.memory)));
            hooks.push(fixup.clone());
            hooks.push(workarounds.clone());
            syscall_fixup = Some(fixup);
            cmdline.push(KERNEL_CMDLINE_WORKAROUNDS.to_string());
            if args.smp > 1 {
                eprintln!("{program}: this host's KVM never completes the paravirtual IPI hypercall; the kernel is told to use plain APIC IPIs ({KERNEL_CMDLINE_SMP_WORKAROUND})");
                cmdline.push(KERNEL_CMDLINE_SMP_WORKAROUND.to_string());
            }
        }
        Ok(Machine {
            vm,
            control: Arc::new(VmControl::new()),
            bios_area,
            program,
            kernel,
            initrd,
            vcpu_count: args.smp,
            cmdline,
            append: args.append.clone(),
            hooks,
            counts,
            workarounds,
            syscall_fixup,
        })
    }

    /// The stage binary's name, for messages.
    pub fn program(&self) -> &'static str {
        self.program
    }

    /// How many vCPUs the machine will have.
    pub fn vcpu_count(&self) -> u8 {
        self.vcpu_count
    }

    /// The read-only BIOS area, when the host's KVM offers read-only memory.
    pub fn bios_area(&self) -> Option<&BiosArea> {
        self.bios_area.as_ref()
    }

    /// The kernel this machine will boot.
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    /// Adds a kernel command-line option: how a device Linux cannot probe declares itself.
    pub fn add_cmdline(&mut self, option: impl Into<String>) {
        self.cmdline.push(option.into());
    }

    /// Adds something that watches every exit (stage 8's statistics, for one).
    pub fn add_exit_hook(&mut self, hook: Arc<dyn ExitHook>) {
        self.hooks.push(hook);
    }

    /// Step 3: loads the kernel, initrd and the command line every device has contributed, and
    /// writes the zero page; returns the kernel's entry point.
    fn load(&self) -> Result<u64, MachineError> {
        let mut cmdline: Vec<&str> = self.cmdline.iter().map(String::as_str).collect();
        cmdline.push(&self.append); // last, so the user's options win
        Ok(boot::load_guest(&self.vm.memory, &self.kernel, self.initrd.as_deref(), &cmdline, self.vcpu_count)?)
    }

    /// Step 3 alone, for `--show-boot-params`: loads the guest as [`Machine::boot`] would and
    /// describes the zero page it wrote ([`dry_run::describe_boot_params`]). No vCPU is created.
    ///
    /// # Errors
    /// When the kernel or initrd cannot be loaded.
    pub fn show_boot_params(&self) -> Result<String, MachineError> {
        let entry = self.load()?;
        let params = dry_run::describe_boot_params(&self.vm.memory, self.initrd.as_deref());
        Ok(format!("kernel entry point {entry:#x}\n{params}"))
    }

    /// Steps 3 to 5: loads the kernel with the command line every device has contributed,
    /// creates the vCPUs, runs them until the VM stops, and prints the exit statistics (and a
    /// clean stop's reason) on stderr.
    ///
    /// # Errors
    /// When the kernel or initrd cannot be loaded, or a vCPU cannot be created.
    pub fn boot(self) -> Result<StopReason, MachineError> {
        let entry = self.load()?;
        let vcpus = boot::create_vcpus(&self.vm, self.vcpu_count, entry)?;
        let context = VcpuContext {
            memory: Arc::clone(&self.vm.memory),
            buses: Arc::clone(&self.vm.buses),
            control: self.control,
            hooks: self.hooks,
        };
        let started = Instant::now();
        let reason = boot::run(vcpus, &context)?;
        let counts = &self.counts;
        eprintln!(
            "{}: ran {:.1} s: {} exits ({} port I/O, {} MMIO)",
            self.program,
            started.elapsed().as_secs_f64(),
            counts.total.load(Ordering::Relaxed),
            counts.io.load(Ordering::Relaxed),
            counts.mmio.load(Ordering::Relaxed),
        );
        // The devices printed only the first few; how many each reported in all.
        if let Some(errors) = stage02::guest_error::summary() {
            eprintln!("{}: {errors}", self.program);
        }
        if let Some(fixup) = &self.syscall_fixup {
            eprintln!(
                "{}: host workarounds: {}, {} syscalls completed",
                self.program,
                self.workarounds.summary(),
                fixup.completed.load(Ordering::Relaxed)
            );
        }
        if reason.is_clean() {
            // Unclean stops are reported by `exit_code`; a clean one is worth a line too.
            eprintln!("{}: {reason}", self.program);
        }
        Ok(reason)
    }
}
