//! Reporting what the guest did wrong, without letting the guest flood the host's terminal.
//!
//! A device that gets an access it cannot make sense of (a bad offset, a DMA address outside
//! RAM) reports a guest error and carries on, as real hardware would. A hostile guest could do
//! that millions of times, so only the first [`SHOWN_ERRORS`] are printed; all are counted.
//!
//! Most devices only need the [`guest_error!`](crate::guest_error!) macro. A device whose tests
//! (or whose VMM) want to see its own errors keeps a [`GuestErrorLog`]: it reports through the
//! same function, so the same limit applies, and remembers how many errors were its own and what
//! the last one said.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How many guest errors are printed before the rest are only counted.
pub const SHOWN_ERRORS: u64 = 20;

/// The count per source, in the order the sources first reported (a handful of devices); the
/// total is their sum.
static BY_SOURCE: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

fn by_source() -> MutexGuard<'static, Vec<(String, u64)>> {
    // A panic elsewhere while the lock was held leaves the counts usable.
    BY_SOURCE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn total(sources: &[(String, u64)]) -> u64 {
    sources.iter().map(|(_, n)| n).sum()
}

/// Counts one error from `source`; returns how many there have been in all.
fn count_for(source: &str) -> u64 {
    let mut sources = by_source();
    match sources.iter_mut().find(|(name, _)| name == source) {
        Some((_, n)) => *n += 1,
        None => sources.push((source.to_string(), 1)),
    }
    total(&sources)
}

/// Reports one guest error from `source` (a device or subsystem name).
pub fn report(source: &str, message: fmt::Arguments<'_>) {
    let seen = count_for(source);
    if seen <= SHOWN_ERRORS {
        eprintln!("[minivirt] guest error: {source}: {message}");
    }
    if seen == SHOWN_ERRORS {
        eprintln!("[minivirt] further guest errors are counted, not shown");
    }
}

/// How many guest errors have been reported so far.
pub fn count() -> u64 {
    total(&by_source())
}

/// The guest errors so far in one line for the VMM's exit, `None` if there were none:
/// `12345 guest errors (virtio-blk 12000, pci 340, edu 5); the first 20 were shown`.
pub fn summary() -> Option<String> {
    let sources = by_source();
    let total = total(&sources);
    if total == 0 {
        return None;
    }
    let parts: Vec<String> = sources.iter().map(|(name, n)| format!("{name} {n}")).collect();
    let shown = if total > SHOWN_ERRORS { format!("; the first {SHOWN_ERRORS} were shown") } else { String::new() };
    Some(format!("{total} guest errors ({}){shown}", parts.join(", ")))
}

/// Reports a guest error: `guest_error!("virtio-blk", "descriptor {} out of range", i)`.
#[macro_export]
macro_rules! guest_error {
    ($source:expr, $($arg:tt)*) => {
        $crate::guest_error::report($source, format_args!($($arg)*))
    };
}

/// The guest errors of one device: each is [reported](report) like any other (printed within
/// the shared limit, counted machine-wide), then counted here with its message kept, so that
/// tests and the VMM can ask the device what went wrong.
///
/// # Example
/// ```
/// use stage02::guest_error::GuestErrorLog;
///
/// let mut errors = GuestErrorLog::default();
/// errors.report("edu", &"DMA outside the buffer");
/// assert_eq!(errors.count(), 1);
/// assert_eq!(errors.last(), Some("DMA outside the buffer"));
/// ```
#[derive(Debug, Default)]
pub struct GuestErrorLog {
    count: u64,
    last: Option<String>,
}

impl GuestErrorLog {
    /// Reports one guest error from the device called `source`, and records it.
    ///
    /// # Arguments
    /// * `source` - The device or subsystem name, as for [`guest_error!`](crate::guest_error!).
    /// * `error` - What the guest did wrong; usually the device's error enum.
    pub fn report(&mut self, source: &str, error: &dyn fmt::Display) {
        report(source, format_args!("{error}"));
        self.count += 1;
        self.last = Some(error.to_string());
    }

    /// How many guest errors this device has reported.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The message of the last one, if there was one.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_counts_past_the_printing_limit_and_keeps_the_last_message() {
        let mut errors = GuestErrorLog::default();
        assert_eq!((errors.count(), errors.last()), (0, None));
        for i in 0..SHOWN_ERRORS + 4 {
            errors.report("test", &format_args!("error {i}"));
        }
        assert_eq!(errors.count(), SHOWN_ERRORS + 4);
        assert_eq!(errors.last(), Some(format!("error {}", SHOWN_ERRORS + 3).as_str()));
    }

    #[test]
    fn a_log_reports_through_the_shared_counter() {
        // Other tests report too, in parallel: the shared count grows by at least our share.
        let before = count();
        let mut errors = GuestErrorLog::default();
        errors.report("test", &"one");
        crate::guest_error!("test", "two");
        assert!(count() >= before + 2);
        assert_eq!(errors.count(), 1, "the log holds only its own device's errors");
    }

    #[test]
    fn the_summary_counts_each_source() {
        // Other tests report in parallel under other names; this one's sources are its own.
        for _ in 0..3 {
            crate::guest_error!("summary-test-a", "bad");
        }
        crate::guest_error!("summary-test-b", "worse");
        let line = summary().unwrap();
        assert!(line.contains("summary-test-a 3") && line.contains("summary-test-b 1"), "{line}");
        assert!(line.contains(" guest errors ("), "{line}");
    }
}
