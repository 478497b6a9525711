//! A seam in the exit loop: code that wants to see every exit without changing the loop.
//!
//! The loop in [`crate::vcpu`] stays the textbook one (run, dispatch, repeat). Anything else
//! that cares about exits — the host-KVM workarounds, exit counters, stage 8's statistics and
//! profiler — implements [`ExitHook`] and is handed to the vCPUs in an [`ExitHooks`] list.
//! Every method has a no-op default, the `NoEvents` pattern of the device models, so a hook
//! implements only what it needs.

use kvm_ioctls::{VcpuExit, VcpuFd};
use stage02::memory::GuestMemory;
use std::sync::Arc;
use std::time::Duration;

/// The kind of a vCPU exit, as a hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExitKind {
    /// `in` from an I/O port.
    IoIn,
    /// `out` to an I/O port.
    IoOut,
    /// A load from an address with no RAM behind it.
    MmioRead,
    /// A store to an address with no RAM behind it.
    MmioWrite,
    /// `hlt` (only without the in-kernel irqchip, which handles it in KVM).
    Hlt,
    /// The CPU shut down (triple fault).
    Shutdown,
    /// A reset or power-off request.
    SystemEvent,
    /// KVM could not handle something (on some hosts: an instruction it cannot emulate).
    InternalError,
    /// KVM refused to enter the guest.
    FailEntry,
    /// Anything else.
    Other,
}

impl ExitKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [ExitKind; 10] = [
        ExitKind::IoIn,
        ExitKind::IoOut,
        ExitKind::MmioRead,
        ExitKind::MmioWrite,
        ExitKind::Hlt,
        ExitKind::Shutdown,
        ExitKind::SystemEvent,
        ExitKind::InternalError,
        ExitKind::FailEntry,
        ExitKind::Other,
    ];

    /// A short name for reports ("io_in", "mmio_write", …).
    pub fn name(self) -> &'static str {
        match self {
            ExitKind::IoIn => "io_in",
            ExitKind::IoOut => "io_out",
            ExitKind::MmioRead => "mmio_read",
            ExitKind::MmioWrite => "mmio_write",
            ExitKind::Hlt => "hlt",
            ExitKind::Shutdown => "shutdown",
            ExitKind::SystemEvent => "system_event",
            ExitKind::InternalError => "internal_error",
            ExitKind::FailEntry => "fail_entry",
            ExitKind::Other => "other",
        }
    }

    /// Whether the guest read from a device (`in`, MMIO load).
    pub fn is_read(self) -> bool {
        matches!(self, ExitKind::IoIn | ExitKind::MmioRead)
    }

    /// Whether the guest wrote to a device (`out`, MMIO store).
    pub fn is_write(self) -> bool {
        matches!(self, ExitKind::IoOut | ExitKind::MmioWrite)
    }
}

/// One exit: which vCPU took it, what kind it was, and the port or address it touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// The vCPU's index.
    pub vcpu: u8,
    /// What kind of exit.
    pub kind: ExitKind,
    /// The I/O port or guest-physical address, for I/O exits; 0 otherwise.
    pub address: u64,
    /// The access width in bytes, for I/O exits; 0 otherwise.
    pub size: u8,
}

impl ExitInfo {
    /// Describes `exit`, taken by vCPU `vcpu`, before the loop handles it.
    pub fn of(vcpu: u8, exit: &VcpuExit<'_>) -> ExitInfo {
        let (kind, address, size) = match exit {
            VcpuExit::IoIn(port, data) => (ExitKind::IoIn, u64::from(*port), data.len()),
            VcpuExit::IoOut(port, data) => (ExitKind::IoOut, u64::from(*port), data.len()),
            VcpuExit::MmioRead(address, data) => (ExitKind::MmioRead, *address, data.len()),
            VcpuExit::MmioWrite(address, data) => (ExitKind::MmioWrite, *address, data.len()),
            VcpuExit::Hlt => (ExitKind::Hlt, 0, 0),
            VcpuExit::Shutdown => (ExitKind::Shutdown, 0, 0),
            VcpuExit::SystemEvent(..) => (ExitKind::SystemEvent, 0, 0),
            VcpuExit::InternalError => (ExitKind::InternalError, 0, 0),
            VcpuExit::FailEntry(..) => (ExitKind::FailEntry, 0, 0),
            _ => (ExitKind::Other, 0, 0),
        };
        ExitInfo { vcpu, kind, address, size: u8::try_from(size).unwrap_or(u8::MAX) }
    }
}

/// What a hook did about an emulation failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Emulated {
    /// Not this hook's business: ask the next one.
    NotMine,
    /// Handled; the vCPU can run on.
    Done,
    /// This hook recognised the exit but could not handle it; the message says why.
    Failed(String),
}

/// Something that watches (and may help with) every exit of every vCPU.
///
/// Hooks are shared by all vCPU threads, so they take `&self` and must be `Send + Sync`.
/// `vcpu` is the vCPU that exited: a hook may read its registers, which costs an ioctl.
pub trait ExitHook: Send + Sync {
    /// A vCPU thread is about to enter the guest for the first time.
    fn vcpu_started(&self, _vcpu: u8, _fd: &VcpuFd) {}

    /// The loop handled an exit; `in_vmm` is the time it spent doing so.
    fn exit_handled(&self, _exit: &ExitInfo, _fd: &VcpuFd, _in_vmm: Duration) {}

    /// KVM could not emulate the instruction at the vCPU's RIP (`KVM_EXIT_INTERNAL_ERROR`,
    /// suberror "emulation failure"). A hook that emulates it returns [`Emulated::Done`].
    fn emulation_failure(&self, _vcpu: u8, _fd: &VcpuFd, _memory: &GuestMemory) -> Emulated {
        Emulated::NotMine
    }

    /// The vCPU's run was interrupted by a kick (a signal): a hook that asked for the kick
    /// (to sample or pause the vCPU) does its work here.
    fn kicked(&self, _vcpu: u8, _fd: &VcpuFd) {}
}

/// The hooks of a VM, called in order. The empty list does nothing.
#[derive(Clone, Default)]
pub struct ExitHooks(Vec<Arc<dyn ExitHook>>);

impl ExitHooks {
    /// Adds a hook after the ones already there.
    pub fn push(&mut self, hook: Arc<dyn ExitHook>) {
        self.0.push(hook);
    }
}

impl ExitHook for ExitHooks {
    fn vcpu_started(&self, vcpu: u8, fd: &VcpuFd) {
        self.0.iter().for_each(|hook| hook.vcpu_started(vcpu, fd));
    }

    fn exit_handled(&self, exit: &ExitInfo, fd: &VcpuFd, in_vmm: Duration) {
        self.0.iter().for_each(|hook| hook.exit_handled(exit, fd, in_vmm));
    }

    /// The first hook that claims the failure decides.
    fn emulation_failure(&self, vcpu: u8, fd: &VcpuFd, memory: &GuestMemory) -> Emulated {
        for hook in &self.0 {
            match hook.emulation_failure(vcpu, fd, memory) {
                Emulated::NotMine => continue,
                decided => return decided,
            }
        }
        Emulated::NotMine
    }

    fn kicked(&self, vcpu: u8, fd: &VcpuFd) {
        self.0.iter().for_each(|hook| hook.kicked(vcpu, fd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn io_and_mmio_exits_are_described_by_port_or_address() {
        let mut data = [0u8; 2];
        let info = ExitInfo::of(1, &VcpuExit::IoIn(0x3fd, &mut data));
        assert_eq!(info, ExitInfo { vcpu: 1, kind: ExitKind::IoIn, address: 0x3fd, size: 2 });
        let info = ExitInfo::of(0, &VcpuExit::MmioWrite(0xd000_0050, &[0; 4]));
        assert_eq!(info, ExitInfo { vcpu: 0, kind: ExitKind::MmioWrite, address: 0xd000_0050, size: 4 });
        assert_eq!(ExitInfo::of(0, &VcpuExit::Hlt).kind, ExitKind::Hlt);
    }

    #[test]
    fn every_kind_has_a_distinct_name() {
        let mut names: Vec<_> = ExitKind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ExitKind::ALL.len());
    }

    /// A hook that claims emulation failures only when told to.
    struct Claims(Emulated, AtomicU64);

    impl ExitHook for Claims {
        fn emulation_failure(&self, _: u8, _: &VcpuFd, _: &GuestMemory) -> Emulated {
            self.1.fetch_add(1, Ordering::Relaxed);
            match &self.0 {
                Emulated::NotMine => Emulated::NotMine,
                Emulated::Done => Emulated::Done,
                Emulated::Failed(why) => Emulated::Failed(why.clone()),
            }
        }
    }

    #[test]
    fn the_first_hook_that_claims_an_emulation_failure_decides() {
        let Ok(kvm) = kvm_ioctls::Kvm::new() else {
            panic!("this test needs /dev/kvm (a vCPU fd to pass to the hooks), and it is not accessible");
        };
        let vm = kvm.create_vm().expect("KVM_CREATE_VM");
        let fd = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
        let memory = GuestMemory::new(&[(0, 0x1000)]).expect("guest memory");
        let first = Arc::new(Claims(Emulated::NotMine, AtomicU64::new(0)));
        let second = Arc::new(Claims(Emulated::Failed("no".into()), AtomicU64::new(0)));
        let third = Arc::new(Claims(Emulated::Done, AtomicU64::new(0)));
        let mut hooks = ExitHooks::default();
        assert_eq!(hooks.emulation_failure(0, &fd, &memory), Emulated::NotMine);
        for hook in [&first, &second, &third] {
            hooks.push(hook.clone());
        }
        assert_eq!(hooks.emulation_failure(0, &fd, &memory), Emulated::Failed("no".into()));
        assert_eq!(third.1.load(Ordering::Relaxed), 0, "asked after a hook decided");
        assert_eq!(first.1.load(Ordering::Relaxed), 1);
    }
}
