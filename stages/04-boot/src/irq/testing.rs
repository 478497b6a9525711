//! Test doubles for [`Trigger`](super::Trigger), shared by the unit tests of this stage and the
//! later ones (the UART of stage 5, the virtio-mmio transport of stage 6).
//!
//! This module is `pub` and always compiled, not `#[cfg(test)]`: a crate's `cfg(test)` items
//! exist only when that crate's own tests are built, so the tests of stage 5 could not see them
//! in stage 4. It is `#[doc(hidden)]` because it is not part of what a VMM uses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::Trigger;

/// A [`Trigger`] that counts its edges. Clones share the count, so a test keeps one clone and
/// gives the other to the device.
#[derive(Debug, Clone, Default)]
pub struct CountingTrigger(Arc<AtomicUsize>);

impl CountingTrigger {
    /// How many times the device has raised the interrupt so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Trigger for CountingTrigger {
    fn trigger(&self) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_count() {
        let trigger = CountingTrigger::default();
        let device_side = trigger.clone();
        assert_eq!(trigger.count(), 0);
        device_side.trigger().unwrap();
        device_side.trigger().unwrap();
        assert_eq!(trigger.count(), 2);
    }
}
