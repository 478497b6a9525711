//! A vCPU and its thread: configure the registers, then run the exit loop until the VM stops.
//!
//! Each vCPU runs on its own host thread, because KVM_RUN blocks for as long as the guest
//! runs. The loop does no device work itself: it hands I/O exits to the buses (stage 2's
//! [`handle_exit`]), turns the exits that end a guest's life into a [`StopReason`], and shows
//! every exit to the VM's [`ExitHooks`] (counters, the host workarounds, stage 8's statistics).

use crate::control::{StopReason, VmControl};
use crate::cpuid::{configure_cpuid, CpuidError};
use crate::exit_hook::{Emulated, ExitHook, ExitHooks, ExitInfo, ExitKind};
use crate::msrs::{configure_msrs, MsrError};
use crate::regs::{configure_long_mode, EntryPoint, RegsError};
use kvm_bindings::{KVM_INTERNAL_ERROR_EMULATION, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use stage02::exit::{handle_exit, ExitOutcome};
use stage02::memory::GuestMemory;
use stage02::vm::Buses;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Errors from creating or configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU failed.
    #[error("KVM_CREATE_VCPU failed: {0}")]
    Create(#[source] kvm_ioctls::Error),
    /// CPUID could not be set.
    #[error(transparent)]
    Cpuid(#[from] CpuidError),
    /// MSRs could not be set.
    #[error(transparent)]
    Msrs(#[from] MsrError),
    /// Registers could not be set.
    #[error(transparent)]
    Regs(#[from] RegsError),
    /// The host refused to start a thread.
    #[error("cannot start a vCPU thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// How many exits of each kind all vCPUs took: the VMM's view of what the guest did, and the
/// simplest [`ExitHook`].
#[derive(Debug, Default)]
pub struct ExitCounts {
    /// Port I/O exits.
    pub io: AtomicU64,
    /// MMIO exits.
    pub mmio: AtomicU64,
    /// All exits.
    pub total: AtomicU64,
}

impl ExitHook for ExitCounts {
    fn exit_handled(&self, exit: &ExitInfo, _fd: &VcpuFd, _in_vmm: Duration) {
        self.total.fetch_add(1, Ordering::Relaxed);
        match exit.kind {
            ExitKind::IoIn | ExitKind::IoOut => self.io.fetch_add(1, Ordering::Relaxed),
            ExitKind::MmioRead | ExitKind::MmioWrite => self.mmio.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

/// Everything a vCPU thread shares with the rest of the VM.
#[derive(Clone)]
pub struct VcpuContext {
    /// Guest RAM.
    pub memory: Arc<GuestMemory>,
    /// The device buses.
    pub buses: Arc<Buses>,
    /// The stop flag.
    pub control: Arc<VmControl>,
    /// What watches the exits.
    pub hooks: ExitHooks,
}

/// One virtual CPU.
pub struct Vcpu {
    /// Its index, which is also its APIC ID.
    pub id: u8,
    /// The KVM vCPU file descriptor.
    pub fd: VcpuFd,
}

impl Vcpu {
    /// Creates vCPU `id` and gives it CPUID and boot MSRs (`count` is the number of vCPUs).
    pub fn new(kvm: &Kvm, vm: &VmFd, id: u8, count: u8) -> Result<Vcpu, VcpuError> {
        let fd = vm.create_vcpu(u64::from(id)).map_err(VcpuError::Create)?;
        configure_cpuid(kvm, &fd, id, count)?;
        configure_msrs(&fd)?;
        Ok(Vcpu { id, fd })
    }

    /// Puts the vCPU in 64-bit mode at `entry`.
    pub fn configure_long_mode(&self, mem: &GuestMemory, entry: EntryPoint) -> Result<(), VcpuError> {
        Ok(configure_long_mode(&self.fd, mem, entry)?)
    }

    /// Runs the vCPU on a new thread named `vcpu N`; the thread returns why it stopped.
    pub fn start(self, context: VcpuContext) -> Result<JoinHandle<StopReason>, VcpuError> {
        crate::threads::spawn(format!("vcpu {}", self.id), move || self.run(&context)).map_err(VcpuError::Thread)
    }

    /// The exit loop: runs until this vCPU or the VM stops. A stop that only concerns this
    /// vCPU (it halted) does not stop the others.
    pub fn run(mut self, context: &VcpuContext) -> StopReason {
        let control = &context.control;
        control.register_vcpu_thread(self.id, self.fd.get_kvm_run());
        // A panic below (a device model's bug, an unfinished lab exercise) must stop the whole
        // VM: otherwise the other vCPUs run on and `join_vcpus` waits for ever.
        let _stop_on_panic = StopOnPanic { control, id: self.id };
        context.hooks.vcpu_started(self.id, &self.fd);
        let reason = loop {
            if control.is_stopping() {
                break control.reason().unwrap_or(StopReason::Halted);
            }
            match self.run_once(context) {
                None => continue,
                Some(StopReason::Halted) => break StopReason::Halted,
                Some(other) => {
                    control.request_stop(other.clone());
                    break other;
                }
            }
        };
        control.unregister_vcpu_thread();
        reason
    }

    // qa:begin stage3-exit-loop
    /// One KVM_RUN and the handling of its exit; `Some` when the vCPU must stop.
    fn run_once(&mut self, context: &VcpuContext) -> Option<StopReason> {
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                // Kicked (see `control`): clear the request, let the hooks that asked for the
                // kick look at the vCPU, then look at the stop flag again.
                self.fd.set_kvm_immediate_exit(0);
                context.hooks.kicked(self.id, &self.fd);
                return None;
            }
            Err(e) => return Some(StopReason::Error(format!("vCPU {}: KVM_RUN failed: {e}", self.id))),
        };
        let started = Instant::now();
        let info = ExitInfo::of(self.id, &exit);
        let stop = match exit {
            VcpuExit::InternalError => self.handle_internal_error(context),
            VcpuExit::Shutdown => Some(StopReason::TripleFault),
            VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_RESET, _) => Some(StopReason::Reset),
            VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_SHUTDOWN, _) => Some(StopReason::PowerOff),
            VcpuExit::FailEntry(reason, _) => {
                Some(StopReason::Error(format!("vCPU {}: VM entry failed (reason {reason:#x})", self.id)))
            }
            other => match handle_exit(other, &context.buses) {
                ExitOutcome::Io(_) | ExitOutcome::Mmio(_) => None,
                ExitOutcome::Halted => Some(StopReason::Halted),
                ExitOutcome::Other(exit) => {
                    stage02::guest_error!("vcpu", "vCPU {}: unexpected exit {exit}, resuming", self.id);
                    None
                }
            },
        };
        context.hooks.exit_handled(&info, &self.fd, started.elapsed());
        stop
    }
    // qa:end stage3-exit-loop

    fn handle_internal_error(&mut self, context: &VcpuContext) -> Option<StopReason> {
        // SAFETY: after a KVM_EXIT_INTERNAL_ERROR exit, KVM filled the `internal` member.
        let suberror = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
        if suberror != KVM_INTERNAL_ERROR_EMULATION {
            return Some(self.fatal(&format!("KVM internal error (suberror {suberror})")));
        }
        match context.hooks.emulation_failure(self.id, &self.fd, &context.memory) {
            Emulated::Done => None,
            Emulated::Failed(why) => Some(self.fatal(&format!("emulation failure: {why}"))),
            Emulated::NotMine => Some(self.fatal("emulation failure: KVM cannot emulate the instruction at RIP")),
        }
    }

    /// A stop reason with the register state, for errors the guest cannot survive.
    fn fatal(&self, what: &str) -> StopReason {
        let regs = self.fd.get_regs().map(|r| format!("RIP={:#x} RSP={:#x} RFLAGS={:#x}", r.rip, r.rsp, r.rflags));
        let sregs = self
            .fd
            .get_sregs()
            .map(|s| format!("CR0={:#x} CR3={:#x} CR4={:#x} EFER={:#x}", s.cr0, s.cr3, s.cr4, s.efer));
        StopReason::Error(format!(
            "vCPU {}: {what} ({}; {})",
            self.id,
            regs.unwrap_or_else(|e| e.to_string()),
            sregs.unwrap_or_else(|e| e.to_string())
        ))
    }
}

/// Stops the VM when the vCPU thread that owns it unwinds from a panic.
struct StopOnPanic<'a> {
    control: &'a VmControl,
    id: u8,
}

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Unregister first: this thread's `kvm_run` area is about to go away.
            self.control.unregister_vcpu_thread();
            self.control.request_stop(StopReason::Error(format!("vCPU {} panicked", self.id)));
        }
    }
}

/// Waits for every vCPU thread; returns the VM's stop reason (the first non-halt reason).
pub fn join_vcpus(threads: Vec<JoinHandle<StopReason>>, control: &VmControl) -> StopReason {
    let reasons: Vec<StopReason> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| StopReason::Error("a vCPU thread panicked".into())))
        .collect();
    control.reason().or_else(|| reasons.into_iter().find(|r| *r != StopReason::Halted)).unwrap_or(StopReason::Halted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_vcpu_thread_stops_the_vm() {
        let control = Arc::new(VmControl::new());
        let vcpu_thread = {
            let control = Arc::clone(&control);
            std::thread::spawn(move || -> StopReason {
                let _guard = StopOnPanic { control: &control, id: 3 };
                panic!("an unfinished exercise");
            })
        };
        assert_eq!(join_vcpus(vec![vcpu_thread], &control), StopReason::Error("vCPU 3 panicked".into()));
        assert!(control.is_stopping());
    }
}
