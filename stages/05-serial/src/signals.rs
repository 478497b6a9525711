//! Termination signals as events: SIGINT, SIGTERM and SIGHUP arrive on a file descriptor the
//! event loop waits on, instead of interrupting whichever thread they hit.
//!
//! A signal handler may only do async-signal-safe things; stopping the VM and restoring the
//! terminal are not among them. So the signals are blocked in every thread (the mask is set
//! before any VMM thread starts, and threads inherit it) and read from a signalfd, where they
//! become ordinary events: the loop asks the VM to stop, and the normal exit path restores
//! the terminal.
//!
//! # Resources
//! - signalfd(2), pthread_sigmask(3).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The signals that end the VMM.
pub const TERMINATION_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Blocks [`TERMINATION_SIGNALS`] in the calling thread, and so in every thread it starts from
/// now on; returns the set. A VMM that starts threads before its console (stage 8's monitor)
/// calls this first, so that no such thread is the one a signal kills.
pub fn block_in_this_thread() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a local set; valid signal numbers.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in TERMINATION_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
    }
    // SAFETY: a valid set; the old mask is not needed.
    let error = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(set)
}

/// A signalfd for [`TERMINATION_SIGNALS`].
#[derive(Debug)]
pub struct TerminationSignals(OwnedFd);

impl TerminationSignals {
    /// Blocks the termination signals in the calling thread (so in every thread it starts from
    /// now on) and opens a signalfd that receives them. Call it before starting any thread.
    pub fn block() -> io::Result<TerminationSignals> {
        let set = block_in_this_thread()?;
        // SAFETY: -1 asks for a new descriptor; a valid set.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        Ok(TerminationSignals(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The next pending signal's number, if any.
    pub fn read(&self) -> Option<libc::c_int> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into `info`.
        let read = unsafe { libc::read(self.0.as_raw_fd(), (&raw mut info).cast(), size) };
        (read == size as isize).then_some(info.ssi_signo as libc::c_int)
    }
}

impl AsRawFd for TerminationSignals {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
