//! Ctrl-C: the first one asks the runs to stop (the child VMM is killed, what was measured so
//! far is written); children run in their own process group, so the terminal's SIGINT reaches
//! only `bench`, and none of them ever owns the terminal (their stdin is /dev/null).

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler (once; later calls do nothing).
pub fn install() {
    // An error means a handler is already installed (a second call): nothing to do.
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
}

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Marks the run as interrupted (what the handler does; for tests).
pub fn request_stop() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}
