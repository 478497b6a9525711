//! Exit statistics: which VM exits reach the VMM, how long it spends on them, which devices
//! they are for, and which guest code causes them.
//!
//! Every exit KVM hands to user space costs a round trip out of the guest and back: trap,
//! decode, emulate, resume. Counting them by reason and by device shows what a workload costs;
//! counting them by guest RIP and resolving the RIPs to guest kernel functions shows *who*
//! causes them — the method of the seed paper, which finds the hot functions and then removes
//! their exits (for example by batching serial output).
//!
//! Recording is on the vCPU's exit path, so it must be cheap: each vCPU has its own recorder
//! behind its own mutex, which only that vCPU takes while it runs (a report takes it briefly).
//! The RIP table is bounded ([`MAX_TRACKED_RIPS`] per vCPU); exits at further RIPs are counted
//! in one "untracked" bucket, so a hostile guest cannot make the VMM's memory grow.
//!
//! - [`histogram`]: the log-scale latency histogram behind mean and p99;
//! - [`timeline`]: the boot timeline (VMM start → first instruction → first console byte →
//!   boot complete → stop);
//! - [`profile`]: the sampling profiler's counts;
//! - [`report`]: all of it as text tables and as JSON (`schema/stats.schema.json`).
//!
//! # Resources
//! - Linux `Documentation/virt/kvm/api.rst`, "KVM_RUN" (the exit reasons).
//! - Firecracker `src/vmm/src/logger/metrics.rs` (`VcpuMetrics`: exit counters and their times).

pub mod histogram;
pub mod profile;
pub mod report;
pub mod timeline;

use histogram::LatencyHistogram;
use serde::Serialize;
use stage03::exit_hook::ExitInfo;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Distinct guest RIPs each vCPU counts one by one.
pub const MAX_TRACKED_RIPS: usize = 4096;
/// Distinct ports or addresses kept per RIP (the rest are only counted).
pub const MAX_ADDRESSES_PER_RIP: usize = 4;

pub use stage03::exit_hook::ExitKind;

/// One exit, as the vCPU loop saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitSample {
    /// Why.
    pub kind: ExitKind,
    /// The guest RIP at the exit (for port I/O, the `in`/`out` itself), if read.
    pub rip: Option<u64>,
    /// The device the access went to (its bus name), if any.
    pub device: Option<&'static str>,
    /// The port or guest-physical address accessed, for I/O exits.
    pub address: Option<u64>,
    /// Time the VMM spent on it: from `KVM_RUN` returning to the next `KVM_RUN`.
    pub vmm_time: Duration,
}

impl ExitSample {
    /// The sample for an exit the exit hook saw; `device` is the bus's name for its address.
    pub fn from_exit(exit: &ExitInfo, rip: Option<u64>, device: Option<&'static str>, vmm_time: Duration) -> Self {
        let is_access = exit.kind.is_read() || exit.kind.is_write();
        ExitSample { kind: exit.kind, rip, device, address: is_access.then_some(exit.address), vmm_time }
    }
}

/// Count, time and latency histogram of one exit kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Exits of this kind.
    pub count: u64,
    /// Nanoseconds spent in the VMM on them.
    pub total_ns: u64,
    /// Their durations.
    pub histogram: LatencyHistogram,
}

impl KindStats {
    fn merge(&mut self, other: &KindStats) {
        self.count += other.count;
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
        self.histogram.merge(&other.histogram);
    }
}

/// Reads and writes of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeviceCounts {
    /// Accesses that read (`in`, MMIO load).
    pub reads: u64,
    /// Accesses that wrote (`out`, MMIO store).
    pub writes: u64,
}

/// What one guest RIP caused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RipStats {
    /// Exits there.
    pub exits: u64,
    /// Of those, by kind (indexed like [`ExitKind::ALL`]).
    pub kinds: [u64; ExitKind::ALL.len()],
    /// The first distinct ports or addresses accessed, sorted, at most [`MAX_ADDRESSES_PER_RIP`].
    pub addresses: Vec<u64>,
    /// Whether there were more.
    pub more_addresses: bool,
}

impl RipStats {
    fn add(&mut self, kind: ExitKind, address: Option<u64>) {
        self.exits += 1;
        self.kinds[kind as usize] += 1;
        if let Some(address) = address {
            self.add_address(address);
        }
    }

    fn add_address(&mut self, address: u64) {
        if let Err(at) = self.addresses.binary_search(&address) {
            if self.addresses.len() < MAX_ADDRESSES_PER_RIP {
                self.addresses.insert(at, address);
            } else {
                self.more_addresses = true;
            }
        }
    }

    /// Adds another RIP's counts (merging vCPUs, or RIPs of one function).
    pub fn merge(&mut self, other: &RipStats) {
        self.exits += other.exits;
        for (mine, theirs) in self.kinds.iter_mut().zip(other.kinds) {
            *mine += theirs;
        }
        for &address in &other.addresses {
            self.add_address(address);
        }
        self.more_addresses |= other.more_addresses;
    }
}

/// Everything one vCPU (or, merged, the VM) recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitCounts {
    /// By kind, indexed like [`ExitKind::ALL`].
    pub kinds: [KindStats; ExitKind::ALL.len()],
    /// By device name; accesses to no device under `None`.
    pub devices: HashMap<Option<&'static str>, DeviceCounts>,
    /// By guest RIP, for the tracked RIPs.
    pub rips: HashMap<u64, RipStats>,
    /// Exits whose RIP was not tracked (the table was full, or the RIP unknown).
    pub untracked: RipStats,
}

impl ExitCounts {
    /// Counts one exit.
    pub fn record(&mut self, sample: &ExitSample) {
        let ns = u64::try_from(sample.vmm_time.as_nanos()).unwrap_or(u64::MAX);
        let kind = &mut self.kinds[sample.kind as usize];
        kind.count += 1;
        kind.total_ns = kind.total_ns.saturating_add(ns);
        kind.histogram.record(ns);
        if sample.kind.is_read() || sample.kind.is_write() {
            let device = self.devices.entry(sample.device).or_default();
            if sample.kind.is_read() {
                device.reads += 1;
            } else {
                device.writes += 1;
            }
        }
        let rip = match sample.rip {
            Some(rip) if self.rips.len() < MAX_TRACKED_RIPS || self.rips.contains_key(&rip) => {
                self.rips.entry(rip).or_default()
            }
            _ => &mut self.untracked,
        };
        rip.add(sample.kind, sample.address);
    }

    /// Adds another recorder's counts.
    pub fn merge(&mut self, other: &ExitCounts) {
        for (mine, theirs) in self.kinds.iter_mut().zip(&other.kinds) {
            mine.merge(theirs);
        }
        for (&name, counts) in &other.devices {
            let mine = self.devices.entry(name).or_default();
            mine.reads += counts.reads;
            mine.writes += counts.writes;
        }
        for (&rip, stats) in &other.rips {
            self.rips.entry(rip).or_default().merge(stats);
        }
        self.untracked.merge(&other.untracked);
    }

    /// Exits in all.
    pub fn total(&self) -> u64 {
        self.kinds.iter().map(|k| k.count).sum()
    }

    /// Nanoseconds in the VMM in all.
    pub fn total_ns(&self) -> u64 {
        self.kinds.iter().fold(0u64, |sum, k| sum.saturating_add(k.total_ns))
    }
}

/// The exit statistics of a VM: one recorder per vCPU.
///
/// # Integration
/// 1. Create it with the vCPU count and share it (`Arc`) with the vCPU threads.
/// 2. In the exit hook, time the exit's handling and call [`ExitStats::record`] with the
///    vCPU's index and an [`ExitSample`].
/// 3. For `info stats` or at the end, take [`ExitStats::snapshot`] and build a
///    [`report::StatsReport`].
#[derive(Debug)]
pub struct ExitStats {
    vcpus: Vec<Mutex<ExitCounts>>,
}

impl ExitStats {
    /// Empty statistics for `vcpus` vCPUs.
    pub fn new(vcpus: usize) -> ExitStats {
        ExitStats { vcpus: (0..vcpus).map(|_| Mutex::default()).collect() }
    }

    fn lock(counts: &Mutex<ExitCounts>) -> MutexGuard<'_, ExitCounts> {
        counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one exit of vCPU `vcpu` (an index beyond the vCPU count is ignored).
    pub fn record(&self, vcpu: usize, sample: &ExitSample) {
        if let Some(counts) = self.vcpus.get(vcpu) {
            ExitStats::lock(counts).record(sample);
        }
    }

    /// A copy of the counts so far: each vCPU's, and all merged.
    pub fn snapshot(&self) -> ExitSnapshot {
        let per_vcpu: Vec<ExitCounts> = self.vcpus.iter().map(|c| ExitStats::lock(c).clone()).collect();
        let mut all = ExitCounts::default();
        for counts in &per_vcpu {
            all.merge(counts);
        }
        ExitSnapshot { all, per_vcpu }
    }
}

/// The counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitSnapshot {
    /// All vCPUs merged.
    pub all: ExitCounts,
    /// Each vCPU's, by index.
    pub per_vcpu: Vec<ExitCounts>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIAL_PUTC: u64 = 0xffff_ffff_811a_68f4;

    fn out(port: u64, rip: u64) -> ExitSample {
        ExitSample {
            kind: ExitKind::IoOut,
            rip: Some(rip),
            device: Some("serial"),
            address: Some(port),
            vmm_time: Duration::from_micros(2),
        }
    }

    #[test]
    fn exits_are_counted_by_kind_device_and_rip() {
        let stats = ExitStats::new(2);
        for _ in 0..3 {
            stats.record(0, &out(0x3f8, SERIAL_PUTC));
        }
        stats.record(1, &out(0x3f9, SERIAL_PUTC));
        stats.record(
            1,
            &ExitSample {
                kind: ExitKind::Hlt,
                rip: None,
                device: None,
                address: None,
                vmm_time: Duration::from_millis(1),
            },
        );
        stats.record(7, &out(0x3f8, 0)); // no such vCPU: ignored
        let snapshot = stats.snapshot();
        let all = &snapshot.all;
        assert_eq!(all.total(), 5);
        assert_eq!(all.kinds[ExitKind::IoOut as usize].count, 4);
        assert_eq!(all.kinds[ExitKind::IoOut as usize].total_ns, 8_000);
        assert_eq!(all.total_ns(), 1_008_000);
        assert_eq!(all.devices[&Some("serial")], DeviceCounts { reads: 0, writes: 4 });
        let putc = &all.rips[&SERIAL_PUTC];
        assert_eq!((putc.exits, putc.addresses.as_slice()), (4, &[0x3f8, 0x3f9][..]));
        assert_eq!(all.untracked.exits, 1, "the hlt had no RIP");
        assert_eq!([snapshot.per_vcpu[0].total(), snapshot.per_vcpu[1].total()], [3, 2]);
    }

    #[test]
    fn the_rip_table_is_bounded() {
        let mut counts = ExitCounts::default();
        for rip in 0..(MAX_TRACKED_RIPS as u64 + 10) {
            counts.record(&out(0x80, rip));
        }
        counts.record(&out(0x80, 5)); // a tracked RIP is still counted as itself
        assert_eq!(counts.rips.len(), MAX_TRACKED_RIPS);
        assert_eq!(counts.untracked.exits, 10);
        assert_eq!(counts.rips[&5].exits, 2);
    }

    #[test]
    fn each_rip_keeps_a_few_distinct_addresses() {
        let mut counts = ExitCounts::default();
        for port in [0x3fd, 0x3f8, 0x3fd, 0x3f9, 0x3fa, 0x3fb, 0x3fc] {
            counts.record(&out(port, SERIAL_PUTC));
        }
        let putc = &counts.rips[&SERIAL_PUTC];
        assert_eq!(putc.addresses, [0x3f8, 0x3f9, 0x3fa, 0x3fd]);
        assert!(putc.more_addresses);
    }

    #[test]
    fn hook_exits_become_samples_with_an_address_only_for_accesses() {
        let read = ExitInfo { vcpu: 0, kind: ExitKind::IoIn, address: 0x3fd, size: 1 };
        let sample = ExitSample::from_exit(&read, Some(1), Some("serial"), Duration::ZERO);
        assert_eq!((sample.kind, sample.device, sample.address), (ExitKind::IoIn, Some("serial"), Some(0x3fd)));
        let halt = ExitInfo { vcpu: 0, kind: ExitKind::Hlt, address: 0, size: 0 };
        assert_eq!(ExitSample::from_exit(&halt, None, None, Duration::ZERO).address, None);
    }
}
