//! Confinement: each VMM thread allows itself only the system calls it needs, with a seccomp
//! filter it installs as it starts.
//!
//! The VMM runs the guest's most dangerous requests — port and MMIO accesses, descriptor
//! chains, DMA — through device models written in ordinary code. If a guest found a bug there
//! and took over a thread, it would have whatever that thread may do on the host. A filter
//! shrinks that to the few calls the thread's job needs: a vCPU thread may run its vCPU and
//! signal eventfds, but not open a file, start a program or make a socket. Firecracker does the
//! same (one filter per thread kind, plus its jailer: chroot, namespaces, cgroups, no
//! privileges), and so does QEMU with `-sandbox on`.
//!
//! How it fits together:
//! - [`filters`] holds each kind of thread's allow-list and compiles it to BPF with
//!   seccompiler; anything not on the list traps;
//! - [`sigsys`] turns the trap into one line naming the thread and the call, and an exit;
//! - [`Sandbox::confine_threads`] sets stage 3's thread start hook, so every thread the
//!   machine starts afterwards installs its filter before it does anything else. The main
//!   thread, which loads the guest and waits for the vCPUs, stays unconfined (an exercise).
//!
//! # Resources
//! - seccomp(2); `Documentation/userspace-api/seccomp_filter.rst` in the kernel.
//! - seccompiler: <https://github.com/rust-vmm/seccompiler>.
//! - Firecracker's `docs/seccomp.md` and `docs/jailer.md`; QEMU's `-sandbox` option.

pub mod filters;
pub mod sigsys;
pub mod syscall_names;

use filters::{FiltersError, ThreadKind};
use seccompiler::BpfProgram;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Stage 8's confinement flag.
#[derive(Debug, Default, clap::Args)]
pub struct SandboxArgs {
    /// Run every thread without its seccomp filter (for debugging a refused system call).
    #[arg(long)]
    pub no_seccomp: bool,
}

/// Why the threads cannot be confined.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// An allow-list did not compile.
    #[error(transparent)]
    Filters(#[from] FiltersError),
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler: {0}")]
    SigsysHandler(#[source] std::io::Error),
    /// Something else already runs at the start of every thread.
    #[error("a thread start hook is already set: cannot confine the threads")]
    StartHookTaken,
}

/// The confinement of this process's threads; [`Sandbox::summary`] says which were confined.
pub struct Sandbox {
    program: &'static str,
    /// The names of the threads that installed their filter, in order.
    confined: Option<Arc<Mutex<Vec<String>>>>,
}

impl Sandbox {
    /// Compiles every thread kind's filter, installs the SIGSYS handler and makes each thread
    /// started from now on install its filter first. With `--no-seccomp`, does nothing.
    /// Call it before the machine starts any thread.
    ///
    /// # Errors
    /// [`SandboxError`] when a filter does not compile or the hooks cannot be installed.
    pub fn confine_threads(program: &'static str, args: &SandboxArgs) -> Result<Sandbox, SandboxError> {
        if args.no_seccomp {
            return Ok(Sandbox { program, confined: None });
        }
        // Compiled now, so that a thread never fails to build its filter later.
        let programs: BTreeMap<ThreadKind, BpfProgram> = ThreadKind::ALL
            .iter()
            .map(|&kind| Ok((kind, filters::compile(kind)?)))
            .collect::<Result<_, FiltersError>>()?;
        sigsys::install_handler(program).map_err(SandboxError::SigsysHandler)?;
        let confined = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&confined);
        let hook = Box::new(move |name: &str| {
            sigsys::set_thread_name(name);
            let kind = ThreadKind::of(name);
            if let Err(e) = seccompiler::apply_filter(&programs[&kind]) {
                // A thread that cannot be confined must not run unconfined.
                stage05::terminal::restore();
                eprintln!("{program}: seccomp: cannot confine thread '{name}': {e}");
                std::process::exit(1);
            }
            record.lock().unwrap_or_else(|e| e.into_inner()).push(name.to_string());
        });
        stage03::threads::set_start_hook(hook).map_err(|_| SandboxError::StartHookTaken)?;
        Ok(Sandbox { program, confined: Some(confined) })
    }

    /// One line for the end of the run: how many threads ran confined, and which.
    pub fn summary(&self) -> String {
        let Some(confined) = &self.confined else {
            return format!("{}: seccomp: off (--no-seccomp): every thread could make any system call", self.program);
        };
        let names = confined.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut counted: Vec<(String, usize)> = Vec::new();
        for name in names.iter() {
            match counted.iter_mut().find(|(seen, _)| seen == name) {
                Some((_, count)) => *count += 1,
                None => counted.push((name.clone(), 1)),
            }
        }
        let list: Vec<String> = counted
            .into_iter()
            .map(|(name, count)| if count == 1 { name } else { format!("{name} ×{count}") })
            .collect();
        format!("{}: seccomp: {} threads confined ({})", self.program, names.len(), list.join(", "))
    }
}
