//! The boot timeline: when the VMM started, when the guest ran its first instruction, wrote its
//! first console byte, said it had booted, and when the VM stopped.
//!
//! Each moment is recorded once, the first time, from whichever thread sees it (a vCPU, the
//! console, the boot timer), with one atomic compare-and-swap, so a hot path can call
//! [`BootTimeline::mark`] every time: after the first call it is one atomic load.
//!
//! # Resources
//! - Firecracker's boot-time measurement: `docs/design.md` and its boot timer device.

use crate::boot_timer::BootTimerEvents;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A moment of the boot after the VMM's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BootEvent {
    /// The first `KVM_RUN` of the boot vCPU.
    FirstInstruction,
    /// The guest's first byte on the console (serial THR).
    FirstConsoleByte,
    /// The guest's boot-complete signal (the boot timer: 123 to port 0x3f0).
    BootComplete,
    /// The VM stopped.
    Stop,
}

impl BootEvent {
    /// The events in boot order.
    pub const ALL: [BootEvent; 4] =
        [BootEvent::FirstInstruction, BootEvent::FirstConsoleByte, BootEvent::BootComplete, BootEvent::Stop];

    /// What the event is, for tables.
    pub fn label(self) -> &'static str {
        match self {
            BootEvent::FirstInstruction => "first guest instruction",
            BootEvent::FirstConsoleByte => "first console byte",
            BootEvent::BootComplete => "boot complete (guest signal)",
            BootEvent::Stop => "stop",
        }
    }
}

/// The moments, as nanoseconds since the VMM's start plus one (0: not yet).
#[derive(Debug)]
pub struct BootTimeline {
    start: Instant,
    marks: [AtomicU64; BootEvent::ALL.len()],
}

impl BootTimeline {
    /// A timeline whose VMM start is `start` (take it first thing in `main`).
    pub fn new(start: Instant) -> BootTimeline {
        BootTimeline { start, marks: Default::default() }
    }

    /// Records `event` as happening now, unless it already happened.
    pub fn mark(&self, event: BootEvent) {
        let slot = &self.marks[event as usize];
        if slot.load(Ordering::Relaxed) == 0 {
            let since = self.start.elapsed().as_nanos().min(u128::from(u64::MAX - 1)) as u64 + 1;
            // Only the first caller wins; the others' times are later anyway.
            let _ = slot.compare_exchange(0, since, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// When `event` happened, after the VMM's start.
    pub fn at(&self, event: BootEvent) -> Option<Duration> {
        match self.marks[event as usize].load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_nanos(since - 1)),
        }
    }

    /// The timeline for a report: every event, with the time since the start and since the
    /// previous event that happened.
    pub fn report(&self) -> TimelineReport {
        let mut previous = Some(0u64);
        let events = BootEvent::ALL
            .iter()
            .map(|&event| {
                let since_start_ns = self.at(event).map(|d| d.as_nanos() as u64);
                let since_previous_ns = since_start_ns.zip(previous).map(|(now, before)| now.saturating_sub(before));
                previous = since_start_ns.or(previous);
                TimelineRow { event, label: event.label(), since_start_ns, since_previous_ns }
            })
            .collect();
        TimelineReport { events }
    }
}

impl BootTimerEvents for BootTimeline {
    fn boot_complete(&self) {
        self.mark(BootEvent::BootComplete);
    }
}

/// One event of the timeline report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRow {
    /// Which event.
    pub event: BootEvent,
    /// Its description.
    pub label: &'static str,
    /// Nanoseconds after the VMM's start; `None` if it did not happen.
    pub since_start_ns: Option<u64>,
    /// Nanoseconds after the previous event that happened (or the start).
    pub since_previous_ns: Option<u64>,
}

/// The boot timeline, for `info stats` and `--stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineReport {
    /// The events in boot order; the VMM's start is time 0.
    pub events: Vec<TimelineRow>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_timer::{BootTimer, BOOT_COMPLETE_MAGIC};
    use stage02::bus::BusDevice;
    use std::sync::Arc;

    #[test]
    fn only_the_first_mark_of_an_event_counts() {
        let timeline = BootTimeline::new(Instant::now() - Duration::from_millis(5));
        assert_eq!(timeline.at(BootEvent::FirstConsoleByte), None);
        timeline.mark(BootEvent::FirstConsoleByte);
        let first = timeline.at(BootEvent::FirstConsoleByte).unwrap();
        assert!(first >= Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(2));
        timeline.mark(BootEvent::FirstConsoleByte);
        assert_eq!(timeline.at(BootEvent::FirstConsoleByte), Some(first));
    }

    #[test]
    fn the_boot_timer_marks_boot_complete() {
        let timeline = Arc::new(BootTimeline::new(Instant::now()));
        let mut timer = BootTimer::with_events(Arc::clone(&timeline));
        timer.write(0, &[BOOT_COMPLETE_MAGIC]);
        assert!(timeline.at(BootEvent::BootComplete).is_some());
    }

    #[test]
    fn the_report_measures_each_event_from_the_previous_one_that_happened() {
        let timeline = BootTimeline::new(Instant::now());
        timeline.mark(BootEvent::FirstInstruction);
        std::thread::sleep(Duration::from_millis(3));
        timeline.mark(BootEvent::BootComplete);
        let report = timeline.report();
        let [first, console, complete, stop] = &report.events[..] else { panic!() };
        assert_eq!(first.since_previous_ns, first.since_start_ns);
        assert_eq!((console.since_start_ns, console.since_previous_ns), (None, None));
        let gap = complete.since_previous_ns.unwrap();
        assert_eq!(gap, complete.since_start_ns.unwrap() - first.since_start_ns.unwrap());
        assert!(gap >= 3_000_000, "{gap}");
        assert_eq!(stop.since_start_ns, None);
    }
}
