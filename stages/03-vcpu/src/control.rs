//! Stopping a running VM: a shared flag, and a signal that kicks each vCPU out of KVM_RUN.
//!
//! A vCPU thread spends most of its time inside the KVM_RUN ioctl. When one vCPU (or a device,
//! or the user) decides the VM is over, the others must leave KVM_RUN too. We send each vCPU
//! thread a real-time signal; its handler sets `immediate_exit` in that vCPU's `kvm_run`
//! area, so KVM_RUN returns EINTR whether the signal arrived inside the ioctl or just before it.
//!
//! # Resources
//! - `KVM_RUN` and `immediate_exit`: <https://docs.kernel.org/virt/kvm/api.html>.

use kvm_bindings::kvm_run;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Every vCPU executed `hlt` with nothing to wake it (demo guests).
    Halted,
    /// The guest asked to reset the machine (i8042 reset, KVM system event).
    Reset,
    /// The guest asked to power off.
    PowerOff,
    /// The guest triple-faulted: the CPU shut down.
    TripleFault,
    /// The guest kernel panicked and said so (stage 4's warm-reset flag, stage 7's pvpanic).
    GuestPanic,
    /// The user quit the VMM (Ctrl-A x on the console).
    Quit,
    /// The VMM received a termination signal (SIGINT, SIGTERM, SIGHUP).
    Signal(libc::c_int),
    /// Something the VMM cannot continue from; the message says what.
    Error(String),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Halted => write!(f, "every vCPU halted"),
            StopReason::Reset => write!(f, "the guest reset the machine"),
            StopReason::PowerOff => write!(f, "the guest powered off"),
            StopReason::TripleFault => write!(f, "the guest triple-faulted (CPU shutdown)"),
            StopReason::GuestPanic => write!(f, "guest kernel panicked"),
            StopReason::Quit => write!(f, "quit (Ctrl-A x)"),
            StopReason::Signal(signal) => write!(f, "stopped by {}", signal_name(*signal)),
            StopReason::Error(message) => write!(f, "{message}"),
        }
    }
}

fn signal_name(signal: libc::c_int) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

/// The process exit code for how a stage's run ended: 0 for a clean stop, 128 + N for signal N
/// (as a shell reports a process killed by it), 1 otherwise, with a one-line message on stderr
/// (prefixed by `program`) for anything that was not clean.
pub fn exit_code<E: std::fmt::Display>(program: &str, result: Result<StopReason, E>) -> std::process::ExitCode {
    match result {
        Ok(reason) if reason.is_clean() => std::process::ExitCode::SUCCESS,
        Ok(StopReason::Signal(signal)) => {
            eprintln!("{program}: {}", StopReason::Signal(signal));
            std::process::ExitCode::from(128u8.saturating_add(u8::try_from(signal).unwrap_or(0)))
        }
        Ok(reason) => {
            eprintln!("{program}: {reason}");
            std::process::ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("{program}: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

impl StopReason {
    /// Whether this is a clean end of the guest's life (exit code 0).
    pub fn is_clean(&self) -> bool {
        matches!(self, StopReason::Halted | StopReason::Reset | StopReason::PowerOff | StopReason::Quit)
    }
}

/// The VM-wide stop flag and the vCPU threads to kick when it is raised.
#[derive(Default)]
pub struct VmControl {
    stopping: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    vcpu_threads: Mutex<Vec<(u8, libc::pthread_t)>>,
}

thread_local! {
    /// This thread's vCPU `kvm_run` area, for the signal handler.
    static KVM_RUN_AREA: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let area = KVM_RUN_AREA.with(Cell::get);
    if !area.is_null() {
        // SAFETY: the pointer was registered by this thread for a vCPU it still owns (it is
        // cleared before the vCPU is dropped); a one-byte store is async-signal-safe.
        unsafe { (*area).immediate_exit = 1 };
    }
}

/// The signal used to kick vCPU threads.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

impl VmControl {
    /// Installs the kick signal handler (once per process).
    pub fn new() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            // If this fails, stopping still works for vCPUs that exit on their own.
            if let Err(e) = register_signal_handler(kick_signal(), kick_handler) {
                eprintln!("[minivirt] cannot install the vCPU kick handler: {e}");
            }
        });
        VmControl::default()
    }

    /// Called by the thread of vCPU `id` before its first KVM_RUN.
    pub fn register_vcpu_thread(&self, id: u8, run_area: *mut kvm_run) {
        KVM_RUN_AREA.with(|cell| cell.set(run_area));
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.vcpu_threads.lock().unwrap_or_else(|e| e.into_inner()).push((id, me));
    }

    /// Called by each vCPU thread when it stops running its vCPU.
    pub fn unregister_vcpu_thread(&self) {
        KVM_RUN_AREA.with(|cell| cell.set(std::ptr::null_mut()));
        // SAFETY: as above.
        let me = unsafe { libc::pthread_self() };
        self.vcpu_threads.lock().unwrap_or_else(|e| e.into_inner()).retain(|&(_, t)| t != me);
    }

    /// Stops the VM for `reason` (the first reason given wins) and kicks every vCPU.
    pub fn request_stop(&self, reason: StopReason) {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(reason);
        self.stopping.store(true, Ordering::SeqCst);
        for &(_, thread) in self.vcpu_threads.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // SAFETY: registered threads unregister themselves before they exit, under this lock.
            unsafe { libc::pthread_kill(thread, kick_signal()) };
        }
    }

    /// Kicks vCPU `id` out of KVM_RUN without stopping the VM: its exit hooks' `kicked` runs on
    /// its thread (to read its registers, sample it, pause it). False if it is not running.
    pub fn kick_vcpu(&self, id: u8) -> bool {
        let threads = self.vcpu_threads.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&(_, thread)) = threads.iter().find(|(vcpu, _)| *vcpu == id) else { return false };
        // SAFETY: as in `request_stop`: the thread is registered, so it has not exited.
        unsafe { libc::pthread_kill(thread, kick_signal()) == 0 }
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The reason given to the first `request_stop`, if any.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
