//! The exit hook that feeds the statistics: every exit the VMM handles, by reason, device,
//! vCPU and guest RIP, with the time the VMM spent on it; and the boot timeline's marks.
//!
//! It is stage 3's [`ExitHook`] seam at work: the exit loop a student wrote in stage 3 is not
//! changed by a line, yet every exit passes through here.

use crate::stats::timeline::{BootEvent, BootTimeline};
use crate::stats::{ExitSample, ExitStats};
use kvm_ioctls::VcpuFd;
use stage02::vm::Buses;
use stage03::exit_hook::{ExitHook, ExitInfo, ExitKind};
use std::sync::Arc;
use std::time::Duration;

/// The port whose first write is the guest's first console byte (COM1's data register).
pub use stage04::layout::COM1_PORT as CONSOLE_PORT;

/// Counts and times exits into an [`ExitStats`].
pub struct ExitRecorder {
    stats: Arc<ExitStats>,
    timeline: Arc<BootTimeline>,
    buses: Arc<Buses>,
}

impl ExitRecorder {
    /// A recorder into `stats` and `timeline` that names devices from `buses`.
    pub fn new(stats: Arc<ExitStats>, timeline: Arc<BootTimeline>, buses: Arc<Buses>) -> Self {
        ExitRecorder { stats, timeline, buses }
    }

    fn device(&self, exit: &ExitInfo) -> Option<&'static str> {
        match exit.kind {
            ExitKind::IoIn | ExitKind::IoOut => self.buses.pio.device_at(exit.address),
            ExitKind::MmioRead | ExitKind::MmioWrite => self.buses.mmio.device_at(exit.address),
            _ => None,
        }
    }
}

// lab:begin solution stage8-exit-counter "record each exit: the guest RIP (KVM_GET_REGS), the device its port or address belongs to, and the VMM's time, into the statistics; mark the first console byte on the timeline"
impl ExitHook for ExitRecorder {
    fn vcpu_started(&self, _vcpu: u8, _fd: &VcpuFd) {
        self.timeline.mark(BootEvent::FirstInstruction);
    }

    fn exit_handled(&self, exit: &ExitInfo, fd: &VcpuFd, in_vmm: Duration) {
        // For I/O exits the RIP is the `in`/`out` or the load/store itself (KVM completes it on
        // the next KVM_RUN); for an exit the host workarounds emulated, where the guest resumes.
        let rip = fd.get_regs().ok().map(|regs| regs.rip);
        let sample = ExitSample::from_exit(exit, rip, self.device(exit), in_vmm);
        self.stats.record(usize::from(exit.vcpu), &sample);
        if exit.kind == ExitKind::IoOut && exit.address == CONSOLE_PORT {
            self.timeline.mark(BootEvent::FirstConsoleByte);
        }
    }
}
// lab:end

#[cfg(test)]
mod tests {
    use super::*;
    use stage02::bus::BusDevice;
    use std::sync::Mutex;
    use std::time::Instant;

    struct Nothing;
    impl BusDevice for Nothing {
        fn read(&mut self, _: u64, _: &mut [u8]) {}
        fn write(&mut self, _: u64, _: &[u8]) {}
    }

    #[test]
    fn exits_are_counted_by_kind_and_device_and_the_first_console_byte_is_marked() {
        let Ok(kvm) = kvm_ioctls::Kvm::new() else {
            panic!("this test needs /dev/kvm (a vCPU fd to read the RIP from), and it is not accessible");
        };
        let vm = kvm.create_vm().expect("KVM_CREATE_VM");
        let fd = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
        let buses = Arc::new(Buses::default());
        buses.pio.insert("com1", CONSOLE_PORT, 8, Arc::new(Mutex::new(Nothing))).unwrap();
        let stats = Arc::new(ExitStats::new(1));
        let timeline = Arc::new(BootTimeline::new(Instant::now()));
        let recorder = ExitRecorder::new(Arc::clone(&stats), Arc::clone(&timeline), buses);

        let status_read = ExitInfo { vcpu: 0, kind: ExitKind::IoIn, address: CONSOLE_PORT + 5, size: 1 };
        recorder.exit_handled(&status_read, &fd, Duration::from_micros(3));
        assert_eq!(timeline.at(BootEvent::FirstConsoleByte), None, "a read is not a console byte");
        let byte = ExitInfo { vcpu: 0, kind: ExitKind::IoOut, address: CONSOLE_PORT, size: 1 };
        recorder.exit_handled(&byte, &fd, Duration::from_micros(5));
        recorder.exit_handled(
            &ExitInfo { vcpu: 0, kind: ExitKind::IoOut, address: 0x80, size: 1 },
            &fd,
            Duration::ZERO,
        );

        let all = stats.snapshot().all;
        assert_eq!(all.total(), 3);
        assert_eq!(all.kinds[ExitKind::IoOut as usize].count, 2);
        assert_eq!(all.devices.get(&Some("com1")).map(|d| (d.reads, d.writes)), Some((1, 1)));
        assert!(timeline.at(BootEvent::FirstConsoleByte).is_some());
    }
}
