//! The user's terminal while the guest owns it: raw mode on the way in, the exact settings
//! back on every way out.
//!
//! In raw mode every key reaches the guest as it is typed: no line editing, no echo (the
//! guest's shell echoes), and Ctrl-C is a byte for the guest, not a signal for the VMM. The
//! settings saved on the way in are restored by [`RawTerminal`]'s `Drop` (normal exits,
//! errors, signals the event loop turns into a stop) and by the panic hook of
//! [`install_panic_hook`]. `stty -g` reads the same before and after a run.
//!
//! # Resources
//! - termios(3), "Raw mode"; QEMU `chardev/char-stdio.c` (`qemu_chr_set_echo_stdio`), whose
//!   flags these are: output processing stays on, so the guest's "\n" still starts a line.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

const STDIN: RawFd = libc::STDIN_FILENO;

/// The settings to restore; written once, before raw mode is entered.
static SAVED: OnceLock<libc::termios> = OnceLock::new();
/// Whether the terminal is in raw mode now (so that it is restored exactly once).
static RAW: AtomicBool = AtomicBool::new(false);

/// Raw mode on stdin's terminal for as long as this lives.
#[derive(Debug)]
pub struct RawTerminal(());

impl RawTerminal {
    /// Puts stdin's terminal in raw mode. `Ok(None)` when stdin is not a terminal (a pipe,
    /// a file, /dev/null): there is nothing to change then.
    pub fn enter() -> io::Result<Option<RawTerminal>> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(STDIN) } != 1 {
            return Ok(None);
        }
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut settings: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and a valid pointer.
        if unsafe { libc::tcgetattr(STDIN, &mut settings) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let saved = *SAVED.get_or_init(|| settings);
        let mut raw = saved;
        raw.c_iflag &= !(libc::IGNBRK | libc::BRKINT | libc::PARMRK | libc::ISTRIP)
            & !(libc::INLCR | libc::IGNCR | libc::ICRNL | libc::IXON);
        raw.c_oflag |= libc::OPOST;
        raw.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN | libc::ISIG);
        raw.c_cflag = (raw.c_cflag & !(libc::CSIZE | libc::PARENB)) | libc::CS8;
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: as above.
        if unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        RAW.store(true, Ordering::SeqCst);
        Ok(Some(RawTerminal(())))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the saved settings back if raw mode is on. Only async-signal-safe calls, so that it
/// can run from a panic hook on any thread.
pub fn restore() {
    if RAW.swap(false, Ordering::SeqCst) {
        if let Some(saved) = SAVED.get() {
            // SAFETY: a valid descriptor and a valid pointer to settings read from it.
            unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, saved) };
        }
    }
}

/// A panic anywhere in the VMM is a bug: restore the terminal, print the panic as usual, and
/// end the process with exit code 101 rather than leave a half-working VM behind.
pub fn install_panic_hook(program: &'static str) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        default_hook(info);
        eprintln!("{program}: internal error (a bug in the VMM), stopping");
        std::process::exit(101);
    }));
}
