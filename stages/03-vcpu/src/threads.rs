//! The VMM's threads: each is started here, under a name that says what it does, so that a
//! later stage can run something first on every one of them.
//!
//! The vCPUs are the VMM's first threads; later stages add a console input thread, an I/O
//! thread, a device worker, a monitor. Some things can only be done by a thread to itself —
//! stage 8 confines each thread to the system calls it needs, and a seccomp filter applies to
//! the thread that installs it — so every thread starts through [`spawn`], which first calls
//! the process's start hook (none unless one was set) with the thread's name.
//!
//! # Resources
//! - `std::thread::Builder`; pthread_setname_np(3) (the name `ps -L` and `top -H` show).

use std::io;
use std::sync::OnceLock;
use std::thread::JoinHandle;

/// Something to run first on every VMM thread, given the thread's name.
pub type StartHook = Box<dyn Fn(&str) + Send + Sync>;

/// The process's start hook: one per process, like the panic hook.
static START_HOOK: OnceLock<StartHook> = OnceLock::new();

/// Sets the hook that every thread started by [`spawn`] from now on runs first. Threads
/// already running are not affected, so set it before the machine starts any.
///
/// # Errors
/// Gives the hook back if one was set already.
pub fn set_start_hook(hook: StartHook) -> Result<(), StartHook> {
    START_HOOK.set(hook)
}

/// Starts a thread called `name` that runs the start hook, then `body`.
///
/// # Errors
/// When the host refuses a new thread.
pub fn spawn<T, F>(name: impl Into<String>, body: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let name = name.into();
    std::thread::Builder::new().name(name.clone()).spawn(move || {
        if let Some(hook) = START_HOOK.get() {
            hook(&name);
        }
        body()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_thread_runs_the_start_hook_first_under_its_name() {
        static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let hook: StartHook = Box::new(|name| STARTED.lock().unwrap().push(name.to_string()));
        assert!(set_start_hook(hook).is_ok());
        let seen = spawn("worker 7", || {
            let started = STARTED.lock().unwrap().clone();
            (std::thread::current().name().map(str::to_string), started)
        });
        let (name, started) = seen.unwrap().join().unwrap();
        assert_eq!(name.as_deref(), Some("worker 7"));
        // Other tests in this process may start threads too: look for this one.
        assert!(started.iter().any(|n| n == "worker 7"), "the hook ran before the body: {started:?}");
        assert!(set_start_hook(Box::new(|_| {})).is_err(), "one hook per process");
    }
}
