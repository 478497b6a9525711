//! The boot timer: a one-port device the guest writes to when it has finished booting.
//!
//! To measure boot time, the VMM needs to know when the guest considers itself booted —
//! something no real device reports. Firecracker's answer is a magic write: its guests' init
//! writes the byte 123 to I/O port 0x3f0 (on x86), and the VMM logs the time since it
//! started. minivirt's lab guest does the same: `/init` runs `boot-done` just before its
//! `MINIVIRT-GUEST-READY` line (`labs/guest/inspect/boot-done.c`).
//!
//! The model only notices: the first write of 123 calls [`BootTimerEvents::boot_complete`];
//! other values and later writes change nothing. Reads return all ones (0xff per byte), what
//! an empty ISA port gives, so a driver probing the range (0x3f0 is the floppy controller's
//! base on a PC) finds nothing there.
//!
//! # Integration
//! 1. Put it on the port-I/O bus at [`BOOT_TIMER_PORT`] with length [`BOOT_TIMER_SIZE`].
//! 2. Give it events that record the time: [`crate::stats::timeline::BootTimeline`] does.
//!
//! # Resources
//! - Firecracker `resources/tests/init.c` (`MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE` 123, written
//!   to port 0x03f0 on x86) and `src/vmm/src/devices/pseudo/boot_timer.rs` (its later MMIO form).

use stage02::bus::BusDevice;
use std::sync::Arc;

/// The port the guest writes to (Firecracker's choice on x86).
pub const BOOT_TIMER_PORT: u16 = 0x3f0;
/// The device covers one port.
pub const BOOT_TIMER_SIZE: u64 = 1;
/// The byte that means "boot complete".
pub const BOOT_COMPLETE_MAGIC: u8 = 123;
/// What a read returns in every byte: nothing here, as on an empty ISA bus.
pub const READ_VALUE: u8 = 0xff;

/// What the boot timer tells the VMM. The default does nothing.
pub trait BootTimerEvents: Send {
    /// The guest has signalled, for the first time, that its boot is complete.
    fn boot_complete(&self) {}
}

/// The events of a VMM that wants none of them.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl BootTimerEvents for NoEvents {}

impl<EV: BootTimerEvents + Sync> BootTimerEvents for Arc<EV> {
    fn boot_complete(&self) {
        self.as_ref().boot_complete();
    }
}

/// The device: whether the guest has signalled, and whom to tell.
///
/// # Example
/// ```
/// use stage02::bus::BusDevice;
/// use stage08::boot_timer::{BootTimer, BOOT_COMPLETE_MAGIC};
///
/// let mut timer = BootTimer::new();
/// timer.write(0, &[1]);
/// assert!(!timer.signalled(), "only 123 counts");
/// timer.write(0, &[BOOT_COMPLETE_MAGIC]);
/// assert!(timer.signalled());
/// ```
#[derive(Debug, Default)]
pub struct BootTimer<EV: BootTimerEvents = NoEvents> {
    events: EV,
    signalled: bool,
}

impl BootTimer {
    /// A boot timer that tells nobody (see [`BootTimer::with_events`]).
    pub fn new() -> BootTimer {
        BootTimer::with_events(NoEvents)
    }
}

impl<EV: BootTimerEvents> BootTimer<EV> {
    /// A boot timer that calls `events.boot_complete()` on the guest's first signal.
    pub fn with_events(events: EV) -> BootTimer<EV> {
        BootTimer { events, signalled: false }
    }

    /// Whether the guest has signalled.
    pub fn signalled(&self) -> bool {
        self.signalled
    }
}

// qa:begin stage8-boot-timer
impl<EV: BootTimerEvents> BusDevice for BootTimer<EV> {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(READ_VALUE);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        // The signal is one byte at the port; a wider `out` carries it in its low byte.
        if offset == 0 && data.first() == Some(&BOOT_COMPLETE_MAGIC) && !self.signalled {
            self.signalled = true;
            self.events.boot_complete();
        }
    }
}
// qa:end stage8-boot-timer

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Default)]
    struct Count(AtomicU32);
    impl BootTimerEvents for Count {
        fn boot_complete(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_first_123_is_reported_once() {
        let count = Arc::new(Count::default());
        let mut timer = BootTimer::with_events(Arc::clone(&count));
        for value in [0u8, 122, 124, 0xff] {
            timer.write(0, &[value]);
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "other values are ignored");
        timer.write(0, &[BOOT_COMPLETE_MAGIC]);
        timer.write(0, &[BOOT_COMPLETE_MAGIC]);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a second signal changes nothing");
        assert!(timer.signalled());
    }

    #[test]
    fn a_wide_write_carries_the_byte_low_and_other_offsets_do_nothing() {
        let mut timer = BootTimer::new();
        timer.write(1, &[BOOT_COMPLETE_MAGIC]);
        timer.write(0, &[]);
        assert!(!timer.signalled());
        timer.write(0, &u16::from(BOOT_COMPLETE_MAGIC).to_le_bytes());
        assert!(timer.signalled());
    }

    #[test]
    fn reads_see_an_empty_port() {
        let mut timer = BootTimer::new();
        let mut data = [0u8; 2];
        timer.read(0, &mut data);
        assert_eq!(data, [READ_VALUE; 2]);
        timer.write(0, &[BOOT_COMPLETE_MAGIC]);
        timer.read(0, &mut data[..1]);
        assert_eq!(data[0], READ_VALUE, "the signal is not readable back");
    }
}
