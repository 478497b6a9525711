//! Reaching into running vCPUs: read their registers, pause them, sample them.
//!
//! A vCPU's registers can only be read on its own thread, and only while it is out of
//! `KVM_RUN`. So the monitor (or the profiler) leaves a request in the vCPU's mailbox and kicks
//! the vCPU with stage 3's signal ([`VmControl::kick_vcpu`]); `KVM_RUN` returns, the exit loop
//! calls the hooks' [`ExitHook::kicked`], and [`VcpuAccess`] runs the request there and sends
//! the answer back. The guest runs on at once — unless the monitor said `stop`: then the vCPU
//! waits in `kicked` (still answering requests) until `cont`.

use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use stage03::control::VmControl;
use stage03::exit_hook::ExitHook;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a request waits for its vCPU before the monitor says it does not answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a paused vCPU looks at its mailbox and at the VM's stop flag.
const PAUSED_POLL: Duration = Duration::from_millis(20);

/// Something to run on a vCPU's thread while it is out of `KVM_RUN`.
type Request = Box<dyn FnOnce(&VcpuFd) + Send>;

/// Why a vCPU could not be reached.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VcpuAccessError {
    /// No such vCPU, or its thread is not running (not started yet, halted, or the VM stopped).
    #[error("vCPU {0} is not running")]
    NotRunning(u8),
    /// It did not get to the request in time.
    #[error("vCPU {0} did not answer within {1:?}")]
    NoAnswer(u8, Duration),
    /// KVM would not give its registers.
    #[error("cannot read vCPU {0}'s registers: {1}")]
    Registers(u8, String),
}

/// The registers the monitor shows, read in one visit.
#[derive(Debug, Clone, Copy)]
pub struct VcpuState {
    /// General registers.
    pub regs: kvm_regs,
    /// Special registers (segments, control registers, EFER).
    pub sregs: kvm_sregs,
}

/// Mailboxes and the pause switch, shared by the vCPU threads (as an exit hook) and the
/// monitor and profiler threads.
pub struct VcpuAccess {
    control: Arc<VmControl>,
    mailboxes: Vec<Mutex<Vec<Request>>>,
    paused: Mutex<bool>,
    resumed: Condvar,
}

impl VcpuAccess {
    /// Access to `count` vCPUs of the VM that `control` stops.
    pub fn new(control: Arc<VmControl>, count: u8) -> Self {
        let mailboxes = (0..count).map(|_| Mutex::new(Vec::new())).collect();
        VcpuAccess { control, mailboxes, paused: Mutex::new(false), resumed: Condvar::new() }
    }

    /// How many vCPUs the VM has.
    pub fn count(&self) -> u8 {
        self.mailboxes.len() as u8
    }

    // qa:begin stage8-with-vcpu
    /// Runs `f` on vCPU `id`'s thread and returns what it returned.
    ///
    /// # Errors
    /// When the vCPU is not running or does not answer in [`ANSWER_TIMEOUT`].
    pub fn with_vcpu<T: Send + 'static>(
        &self,
        id: u8,
        f: impl FnOnce(&VcpuFd) -> T + Send + 'static,
    ) -> Result<T, VcpuAccessError> {
        let mailbox = self.mailboxes.get(usize::from(id)).ok_or(VcpuAccessError::NotRunning(id))?;
        let (answer, answered) = mpsc::channel();
        mailbox.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(move |fd| {
            let _ = answer.send(f(fd));
        }));
        // A paused vCPU looks at its mailbox by itself; a running one must be kicked.
        // A request left behind runs at the vCPU's next kick; its answer then goes nowhere.
        if !self.is_paused() && !self.control.kick_vcpu(id) {
            return Err(VcpuAccessError::NotRunning(id));
        }
        answered.recv_timeout(ANSWER_TIMEOUT).map_err(|_| VcpuAccessError::NoAnswer(id, ANSWER_TIMEOUT))
    }
    // qa:end stage8-with-vcpu

    /// Reads vCPU `id`'s registers.
    ///
    /// # Errors
    /// As [`VcpuAccess::with_vcpu`], or [`VcpuAccessError::Registers`] when KVM refuses them.
    pub fn state(&self, id: u8) -> Result<VcpuState, VcpuAccessError> {
        self.with_vcpu(id, |fd| match (fd.get_regs(), fd.get_sregs()) {
            (Ok(regs), Ok(sregs)) => Ok(VcpuState { regs, sregs }),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        })?
        .map_err(|why| VcpuAccessError::Registers(id, why))
    }

    /// `stop`: every vCPU waits outside the guest until [`VcpuAccess::resume`].
    pub fn pause(&self) {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = true;
        for id in 0..self.count() {
            self.control.kick_vcpu(id);
        }
    }

    /// `cont`: the vCPUs run the guest again.
    pub fn resume(&self) {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.resumed.notify_all();
    }

    /// Whether the monitor said `stop`.
    pub fn is_paused(&self) -> bool {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serve(&self, id: u8, fd: &VcpuFd) {
        let Some(mailbox) = self.mailboxes.get(usize::from(id)) else { return };
        let requests = std::mem::take(&mut *mailbox.lock().unwrap_or_else(|e| e.into_inner()));
        for request in requests {
            request(fd);
        }
    }
}

impl ExitHook for VcpuAccess {
    fn kicked(&self, vcpu: u8, fd: &VcpuFd) {
        self.serve(vcpu, fd);
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        while *paused && !self.control.is_stopping() {
            drop(paused);
            self.serve(vcpu, fd);
            paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
            paused = self.resumed.wait_timeout(paused, PAUSED_POLL).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vcpu_that_is_not_running_is_reported_at_once() {
        let access = VcpuAccess::new(Arc::new(VmControl::new()), 2);
        assert_eq!(access.with_vcpu(1, |_| ()).unwrap_err(), VcpuAccessError::NotRunning(1));
        assert_eq!(access.with_vcpu(7, |_| ()).unwrap_err(), VcpuAccessError::NotRunning(7));
        assert_eq!(access.count(), 2);
    }

    #[test]
    fn requests_run_on_the_vcpu_thread_when_it_is_kicked() {
        let Ok(kvm) = kvm_ioctls::Kvm::new() else {
            panic!("this test needs /dev/kvm (a vCPU fd to hand to the requests), and it is not accessible");
        };
        let vm = kvm.create_vm().expect("KVM_CREATE_VM");
        let fd = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
        let access = Arc::new(VcpuAccess::new(Arc::new(VmControl::new()), 1));
        // Pretend to be the paused vCPU thread: it serves its mailbox without being kicked.
        access.pause();
        let vcpu_thread = {
            let access = Arc::clone(&access);
            std::thread::spawn(move || access.kicked(0, &fd))
        };
        let state = access.state(0).expect("answered while paused");
        assert_eq!(state.regs.rflags & 0x2, 0x2, "RFLAGS bit 1 is always set");
        access.resume();
        vcpu_thread.join().expect("the vCPU thread resumes after cont");
    }
}
