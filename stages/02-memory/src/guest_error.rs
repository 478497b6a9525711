//! Reporting what the guest did wrong, without letting the guest flood the host's terminal.
//!
//! A device that gets an access it cannot make sense of (a bad offset, a DMA address outside
//! RAM) reports a guest error and carries on, as real hardware would. A hostile guest could do
//! that millions of times, so only the first [`SHOWN_ERRORS`] are printed; all are counted.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many guest errors are printed before the rest are only counted.
pub const SHOWN_ERRORS: u64 = 20;

static GUEST_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Reports one guest error from `source` (a device or subsystem name).
pub fn report(source: &str, message: fmt::Arguments<'_>) {
    let seen = GUEST_ERRORS.fetch_add(1, Ordering::Relaxed) + 1;
    if seen <= SHOWN_ERRORS {
        eprintln!("[minivirt] guest error: {source}: {message}");
    }
    if seen == SHOWN_ERRORS {
        eprintln!("[minivirt] further guest errors are counted, not shown");
    }
}

/// How many guest errors have been reported so far.
pub fn count() -> u64 {
    GUEST_ERRORS.load(Ordering::Relaxed)
}

/// Reports a guest error: `guest_error!("virtio-blk", "descriptor {} out of range", i)`.
#[macro_export]
macro_rules! guest_error {
    ($source:expr, $($arg:tt)*) => {
        $crate::guest_error::report($source, format_args!($($arg)*))
    };
}
