//! The allow-lists: which system calls each kind of VMM thread may make, and on what
//! condition. Everything else traps (SIGSYS, see [`super::sigsys`]).
//!
//! The lists were found by running stage 8 through whole Linux boots under `strace -f -ff`
//! (one file per thread), with the monitor (socket and console), `--stats`, `--profile`, a
//! read-write and a read-only disk and the monitor's `quit`, then cut to what each thread's
//! job needs; the checkpoint's boot (with a guest power-off) runs with them on.
//! `ioctl` is allowed per request number, as Firecracker does: a vCPU thread may `KVM_RUN`
//! its vCPU, but not create another VM. `mmap` and `mprotect` may not make memory
//! executable, and `openat` (the monitor reads `/proc/self/pagemap` and `smaps`) may only open
//! for reading: no thread can load new code or create a file.
//!
//! # Resources
//! - seccompiler's `SeccompFilter`, `SeccompRule`, `SeccompCondition`.
//! - Firecracker `resources/seccomp/x86_64-unknown-linux-musl.json` (its vmm, api and vcpu lists).
//! - Linux `include/uapi/linux/kvm.h` (the ioctl numbers).

use kvm_bindings::{kvm_fpu, kvm_irq_level, kvm_msrs, kvm_regs, kvm_sregs, kvm_translation, kvm_vcpu_events, KVMIO};
use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr, ioctl_iowr_nr};

/// The KVM ioctls the VMM's threads make once the VM is running (`include/uapi/linux/kvm.h`).
mod kvm {
    use super::*;
    ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
    ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
    ioctl_iow_nr!(KVM_SET_REGS, KVMIO, 0x82, kvm_regs);
    ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_sregs);
    ioctl_iow_nr!(KVM_SET_SREGS, KVMIO, 0x84, kvm_sregs);
    ioctl_iowr_nr!(KVM_TRANSLATE, KVMIO, 0x85, kvm_translation);
    ioctl_iowr_nr!(KVM_GET_MSRS, KVMIO, 0x88, kvm_msrs);
    ioctl_ior_nr!(KVM_GET_FPU, KVMIO, 0x8c, kvm_fpu);
    ioctl_iow_nr!(KVM_SET_FPU, KVMIO, 0x8d, kvm_fpu);
    ioctl_ior_nr!(KVM_GET_VCPU_EVENTS, KVMIO, 0x9f, kvm_vcpu_events);
    ioctl_iow_nr!(KVM_SET_VCPU_EVENTS, KVMIO, 0xa0, kvm_vcpu_events);
    ioctl_io_nr!(KVM_GET_STATS_FD, KVMIO, 0xce);
    ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_irq_level);
}

/// What a thread does, known by the name it was started under (stage 3's `threads::spawn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThreadKind {
    /// `vcpu N`: runs a vCPU and the device models its exits reach.
    Vcpu,
    /// `console input`: moves stdin into the UART; the Ctrl-A c monitor; signals.
    ConsoleInput,
    /// `virtio i/o`: serves the disks' queues on their ioeventfds.
    VirtioIo,
    /// `edu-factorial`: the edu card's worker, which computes and raises an interrupt.
    DeviceWorker,
    /// `monitor` and `monitor session`: the monitor on its Unix socket.
    Monitor,
    /// `profiler`: samples the vCPUs.
    Profiler,
    /// A thread this table does not know: the calls every thread needs, nothing more.
    Other,
}

impl ThreadKind {
    /// Every kind, each with its own filter.
    pub const ALL: [ThreadKind; 7] = [
        ThreadKind::Vcpu,
        ThreadKind::ConsoleInput,
        ThreadKind::VirtioIo,
        ThreadKind::DeviceWorker,
        ThreadKind::Monitor,
        ThreadKind::Profiler,
        ThreadKind::Other,
    ];

    /// The kind of the thread called `name`.
    pub fn of(name: &str) -> ThreadKind {
        match name {
            _ if name.starts_with("vcpu ") => ThreadKind::Vcpu,
            "console input" => ThreadKind::ConsoleInput,
            "virtio i/o" => ThreadKind::VirtioIo,
            "edu-factorial" => ThreadKind::DeviceWorker,
            "monitor" | "monitor session" => ThreadKind::Monitor,
            "profiler" => ThreadKind::Profiler,
            _ => ThreadKind::Other,
        }
    }
}

/// Why a filter did not compile.
#[derive(Debug, thiserror::Error)]
pub enum FiltersError {
    /// seccompiler refused a rule or the filter.
    #[error("cannot compile the seccomp filter of the {kind:?} threads: {source}")]
    Compile {
        /// Whose filter.
        kind: ThreadKind,
        /// What seccompiler said.
        #[source]
        source: BackendError,
    },
}

/// One entry of an allow-list: a system call, allowed always (no rules) or when one of the
/// rules matches its arguments.
type Allowed = (i64, Vec<SeccompRule>);

/// `syscall`, whatever its arguments.
fn always(syscall: i64) -> Result<Allowed, BackendError> {
    Ok((syscall, Vec::new()))
}

/// `ioctl` with one of `requests` (argument 1).
fn ioctl(requests: &[u64]) -> Result<Allowed, BackendError> {
    let rules = requests
        .iter()
        .map(|&request| {
            SeccompRule::new(vec![SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request)?])
        })
        .collect::<Result<_, _>>()?;
    Ok((libc::SYS_ioctl, rules))
}

/// `syscall` when argument `arg` has none of the bits of `mask`.
fn without_bits(syscall: i64, arg: u8, mask: u64) -> Result<Allowed, BackendError> {
    let condition = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(mask), 0)?;
    Ok((syscall, vec![SeccompRule::new(vec![condition])?]))
}

/// `fcntl` with command `command` only.
fn fcntl(command: libc::c_int) -> Result<SeccompRule, BackendError> {
    SeccompRule::new(vec![SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, command as u64)?])
}

/// What every thread needs: memory for the allocator (never executable), locks, the clock,
/// writing (stderr, stdout, eventfds), closing its descriptors (std checks each with
/// `fcntl(F_GETFD)` first), signals returning, hash seeds, and ending — the thread or, from the
/// SIGSYS handler, the process after giving the terminal back (`ioctl(0, TCSETS)`).
fn every_thread() -> Result<Vec<Allowed>, BackendError> {
    // glibc's tcsetattr reads the settings back (TCGETS) to check them.
    let on_stdin = |request| {
        SeccompRule::new(vec![
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, libc::STDIN_FILENO as u64)?,
            SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request)?,
        ])
    };
    Ok(vec![
        without_bits(libc::SYS_mmap, 2, libc::PROT_EXEC as u64)?,
        without_bits(libc::SYS_mprotect, 2, libc::PROT_EXEC as u64)?,
        always(libc::SYS_munmap)?,
        always(libc::SYS_madvise)?,
        always(libc::SYS_brk)?,
        always(libc::SYS_mremap)?,
        always(libc::SYS_futex)?,
        always(libc::SYS_sched_yield)?,
        always(libc::SYS_clock_gettime)?,
        always(libc::SYS_clock_nanosleep)?,
        always(libc::SYS_nanosleep)?,
        always(libc::SYS_write)?,
        always(libc::SYS_close)?,
        (libc::SYS_fcntl, vec![fcntl(libc::F_GETFD)?]),
        always(libc::SYS_getrandom)?,
        always(libc::SYS_rt_sigreturn)?,
        always(libc::SYS_rt_sigprocmask)?,
        always(libc::SYS_sigaltstack)?,
        always(libc::SYS_exit)?,
        always(libc::SYS_exit_group)?,
        (libc::SYS_ioctl, vec![on_stdin(libc::TCSETS)?, on_stdin(libc::TCGETS)?]),
    ])
}

/// Stopping the VM kicks the vCPU threads out of KVM_RUN with a signal (`pthread_kill`;
/// a vCPU that stops the VM kicks itself too, and glibc then asks for its own id, `gettid`).
fn kicking() -> Result<Vec<Allowed>, BackendError> {
    Ok(vec![always(libc::SYS_getpid)?, always(libc::SYS_gettid)?, always(libc::SYS_tgkill)?])
}

/// The monitor's commands: reading `/proc/self/pagemap` and `smaps` (opened read-only), KVM's
/// statistics file descriptors, and asking vCPUs for their registers.
fn monitor_commands() -> Result<Vec<Allowed>, BackendError> {
    let write_or_create = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64;
    let mut allowed = vec![
        without_bits(libc::SYS_openat, 2, write_or_create)?,
        always(libc::SYS_read)?,
        always(libc::SYS_pread64)?,
        always(libc::SYS_lseek)?,
        always(libc::SYS_fstat)?,
        always(libc::SYS_statx)?,
    ];
    allowed.extend(kicking()?);
    Ok(allowed)
}

/// The allow-list of `kind`, beyond [`every_thread`].
fn thread_specific(kind: ThreadKind) -> Result<Vec<Allowed>, BackendError> {
    Ok(match kind {
        ThreadKind::Vcpu => {
            let mut allowed = vec![
                // The vCPU's own state; GET_STATS_FD as stage 8's statistics start; the host
                // workarounds read and set registers, events and the FPU.
                ioctl(&[
                    kvm::KVM_RUN(),
                    kvm::KVM_GET_REGS(),
                    kvm::KVM_SET_REGS(),
                    kvm::KVM_GET_SREGS(),
                    kvm::KVM_SET_SREGS(),
                    kvm::KVM_TRANSLATE(),
                    kvm::KVM_GET_MSRS(),
                    kvm::KVM_GET_FPU(),
                    kvm::KVM_SET_FPU(),
                    kvm::KVM_GET_VCPU_EVENTS(),
                    kvm::KVM_SET_VCPU_EVENTS(),
                    kvm::KVM_GET_STATS_FD(),
                    // Device models raise level-triggered interrupts (the edu card).
                    kvm::KVM_IRQ_LINE(),
                ])?,
                // A disk without an ioeventfd is served on the vCPU thread.
                always(libc::SYS_pread64)?,
                always(libc::SYS_pwrite64)?,
                always(libc::SYS_fsync)?,
                always(libc::SYS_fdatasync)?,
            ];
            // An i8042 reset or a triple fault stops the VM: the other vCPUs get kicked.
            allowed.extend(kicking()?);
            allowed
        }
        ThreadKind::ConsoleInput => {
            let mut allowed = vec![
                always(libc::SYS_epoll_wait)?,
                always(libc::SYS_epoll_pwait)?,
                always(libc::SYS_epoll_ctl)?,
                // stdin, the wake-up eventfd, the signalfd.
                always(libc::SYS_read)?,
            ];
            // Ctrl-A c gives this thread the monitor.
            allowed.extend(monitor_commands()?);
            allowed
        }
        // qa:begin stage8-seccomp-io
        ThreadKind::VirtioIo => vec![
            always(libc::SYS_epoll_wait)?,
            always(libc::SYS_epoll_pwait)?,
            always(libc::SYS_read)?,
            always(libc::SYS_pread64)?,
            always(libc::SYS_pwrite64)?,
            always(libc::SYS_fsync)?,
            always(libc::SYS_fdatasync)?,
        ],
        // qa:end stage8-seccomp-io
        ThreadKind::DeviceWorker => vec![ioctl(&[kvm::KVM_IRQ_LINE()])?],
        ThreadKind::Monitor => {
            let mut allowed = vec![
                // Connections, each answered on its own thread: the session threads start
                // under this filter (theirs comes on top), so it allows what a new thread does
                // before its start hook runs. `clone3` takes its flags in memory, where a
                // filter cannot look: this thread could fork, though never exec.
                always(libc::SYS_accept4)?,
                always(libc::SYS_recvfrom)?,
                always(libc::SYS_sendto)?,
                (libc::SYS_fcntl, vec![fcntl(libc::F_DUPFD_CLOEXEC)?]),
                always(libc::SYS_clone3)?,
                always(libc::SYS_rseq)?,
                always(libc::SYS_set_robust_list)?,
                always(libc::SYS_prctl)?,
                always(libc::SYS_sched_getaffinity)?,
                always(libc::SYS_gettid)?,
                // A session thread installs its own filter on top (it can only narrow).
                always(libc::SYS_seccomp)?,
            ];
            allowed.extend(monitor_commands()?);
            allowed
        }
        ThreadKind::Profiler => kicking()?,
        ThreadKind::Other => Vec::new(),
    })
}

/// The allow-list of `kind`: every thread's calls and its own, merged per system call (a
/// call allowed always stays allowed always).
pub fn allowed_syscalls(kind: ThreadKind) -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut always_allowed = Vec::new();
    for (syscall, rules) in every_thread()?.into_iter().chain(thread_specific(kind)?) {
        if rules.is_empty() {
            always_allowed.push(syscall);
        }
        map.entry(syscall).or_default().extend(rules);
    }
    for syscall in always_allowed {
        map.insert(syscall, Vec::new());
    }
    Ok(map)
}

/// Compiles the filter of `kind`: its allow-list, and a trap for everything else.
///
/// # Errors
/// [`FiltersError::Compile`] if seccompiler refuses it.
pub fn compile(kind: ThreadKind) -> Result<BpfProgram, FiltersError> {
    let build = || -> Result<BpfProgram, BackendError> {
        let filter =
            SeccompFilter::new(allowed_syscalls(kind)?, SeccompAction::Trap, SeccompAction::Allow, TargetArch::x86_64)?;
        BpfProgram::try_from(filter)
    };
    build().map_err(|source| FiltersError::Compile { kind, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::syscall_names::syscall_name;

    #[test]
    fn threads_are_known_by_the_names_they_start_under() {
        assert_eq!(ThreadKind::of("vcpu 0"), ThreadKind::Vcpu);
        assert_eq!(ThreadKind::of("vcpu 31"), ThreadKind::Vcpu);
        assert_eq!(ThreadKind::of("console input"), ThreadKind::ConsoleInput);
        assert_eq!(ThreadKind::of("virtio i/o"), ThreadKind::VirtioIo);
        assert_eq!(ThreadKind::of("edu-factorial"), ThreadKind::DeviceWorker);
        assert_eq!(ThreadKind::of("monitor session"), ThreadKind::Monitor);
        assert_eq!(ThreadKind::of("profiler"), ThreadKind::Profiler);
        assert_eq!(ThreadKind::of("vcpu"), ThreadKind::Other);
        assert_eq!(ThreadKind::of("something new"), ThreadKind::Other);
    }

    #[test]
    fn every_filter_compiles() {
        for kind in ThreadKind::ALL {
            let program = compile(kind).unwrap();
            assert!(!program.is_empty() && program.len() < 4096, "{kind:?}: {} instructions", program.len());
        }
    }

    #[test]
    fn no_thread_may_start_programs_make_sockets_or_processes_or_trace() {
        let never = [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_clone,
            libc::SYS_ptrace,
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_open,
            libc::SYS_creat,
            libc::SYS_unlink,
            libc::SYS_kill,
            libc::SYS_mount,
            libc::SYS_setuid,
        ];
        for kind in ThreadKind::ALL {
            let allowed = allowed_syscalls(kind).unwrap();
            for syscall in never {
                assert!(!allowed.contains_key(&syscall), "{kind:?} may {}", syscall_name(syscall).unwrap());
            }
        }
    }

    #[test]
    fn openat_is_only_ever_allowed_read_only_and_ioctl_only_by_request() {
        for kind in ThreadKind::ALL {
            let allowed = allowed_syscalls(kind).unwrap();
            for syscall in [libc::SYS_openat, libc::SYS_ioctl, libc::SYS_mmap, libc::SYS_mprotect] {
                if let Some(rules) = allowed.get(&syscall) {
                    assert!(!rules.is_empty(), "{kind:?} may {} with any arguments", syscall_name(syscall).unwrap());
                }
            }
        }
        let threads_that_open =
            ThreadKind::ALL.iter().filter(|&&k| allowed_syscalls(k).unwrap().contains_key(&libc::SYS_openat));
        let kinds: Vec<ThreadKind> = threads_that_open.copied().collect();
        assert_eq!(kinds, [ThreadKind::ConsoleInput, ThreadKind::Monitor], "only the monitor's threads open files");
    }

    #[test]
    fn a_vcpu_thread_may_run_its_vcpu_but_not_create_a_vm() {
        let rules = &allowed_syscalls(ThreadKind::Vcpu).unwrap()[&libc::SYS_ioctl];
        let rule = |request| ioctl(&[request]).unwrap().1.remove(0);
        assert!(rules.contains(&rule(kvm::KVM_RUN())));
        ioctl_io_nr!(KVM_CREATE_VM, KVMIO, 0x01);
        assert!(!rules.contains(&rule(KVM_CREATE_VM())));
        assert!(!rules.contains(&rule(libc::TCSETS)), "TCSETS only on stdin");
    }
}
