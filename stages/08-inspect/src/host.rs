//! The host's view of the machine: the VMM's memory, and the exits KVM handled without it.
//!
//! Memory: the VMM's resident set (RSS) includes the guest RAM that has been touched — guest
//! RAM is an ordinary mapping of the VMM. `/proc/self/smaps` lists every mapping with its own
//! `Rss`, so the guest's share is the Rss of the guest RAM mappings, and the VMM's own
//! overhead is the difference (Firecracker's budget for it is 5 MiB).
//!
//! Exits: most VM exits never reach the VMM. KVM handles page faults, interrupts, `hlt` with
//! an in-kernel irqchip, and the emulation this course's nested host needs, in the kernel.
//! Since Linux 5.14 it counts them per vCPU and shows the counts through a file descriptor
//! from `KVM_GET_STATS_FD`: a header, descriptors (name, type, unit, offset) and the values.
//! kvm-ioctls 0.25 has no call for it, so this module makes the ioctl itself. A host that
//! does not offer it gets [`KvmVcpuStats::NotOffered`] with the reason, never an error.
//!
//! # Resources
//! - Linux `Documentation/filesystems/proc.rst` (`/proc/PID/smaps`).
//! - Linux `Documentation/virt/kvm/api.rst`, "KVM_GET_STATS_FD" (the binary format), and
//!   `arch/x86/kvm/x86.c` (`kvm_vcpu_stats_desc`: `exits`, `io_exits`, `halt_exits`, …).

use kvm_bindings::{
    KVMIO, KVM_STATS_TYPE_CUMULATIVE, KVM_STATS_TYPE_INSTANT, KVM_STATS_TYPE_LINEAR_HIST, KVM_STATS_TYPE_LOG_HIST,
    KVM_STATS_TYPE_MASK, KVM_STATS_TYPE_PEAK, KVM_STATS_UNIT_BOOLEAN, KVM_STATS_UNIT_BYTES, KVM_STATS_UNIT_CYCLES,
    KVM_STATS_UNIT_MASK, KVM_STATS_UNIT_NONE, KVM_STATS_UNIT_SECONDS,
};
use serde::Serialize;
use stage02::memory::GuestMemory;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use vmm_sys_util::ioctl::ioctl;
use vmm_sys_util::ioctl_io_nr;

/// The VMM's mappings with their sizes and resident sets.
pub const SMAPS_PATH: &str = "/proc/self/smaps";
/// Bytes per `kB` in smaps (it means KiB).
pub const SMAPS_KB: u64 = 1024;

/// The ioctl numbers this module needs and kvm-ioctls 0.25 lacks.
mod ioctl_numbers {
    use super::*;
    // `_IO(KVMIO, 0xce)`: include/uapi/linux/kvm.h.
    ioctl_io_nr!(KVM_GET_STATS_FD, KVMIO, 0xce);
}
use ioctl_numbers::KVM_GET_STATS_FD;

/// `struct kvm_stats_header`: flags, name_size, num_desc, id_offset, desc_offset, data_offset.
pub const STATS_HEADER_SIZE: usize = 24;
/// `struct kvm_stats_desc` without its name: flags, exponent, size, offset, bucket_size.
pub const STATS_DESC_SIZE: usize = 16;
/// Bytes per statistics value (each is a `__u64`).
pub const STATS_VALUE_SIZE: usize = 8;
/// A sanity bound on names (the kernel uses 48 bytes, `KVM_STATS_NAME_SIZE`).
pub const MAX_STATS_NAME_SIZE: usize = 4096;
/// A sanity bound on descriptors (x86 has about 60 per vCPU).
pub const MAX_STATS_DESCRIPTORS: usize = 4096;

/// The per-vCPU counters of exits KVM handled, in the order reports show them, where the
/// host has them (`arch/x86/kvm/x86.c`).
pub const KVM_EXIT_COUNTERS: [&str; 12] = [
    "exits",
    "io_exits",
    "mmio_exits",
    "halt_exits",
    "irq_exits",
    "signal_exits",
    "irq_window_exits",
    "nmi_window_exits",
    "request_irq_exits",
    "insn_emulation",
    "insn_emulation_fail",
    "hypercalls",
];

/// Errors from reading the host's statistics.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A `/proc` file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: &'static str,
        /// What the read said.
        #[source]
        source: io::Error,
    },
    /// A line of smaps is not what the kernel writes.
    #[error("{SMAPS_PATH} line {line}: {problem}: {text:?}")]
    Smaps {
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: &'static str,
        /// The line.
        text: String,
    },
    /// The statistics file descriptor cannot be read.
    #[error("cannot read the KVM statistics file descriptor")]
    ReadStats(#[source] io::Error),
    /// The statistics data is not laid out as KVM_GET_STATS_FD documents.
    #[error("malformed KVM statistics: {0}")]
    MalformedStats(&'static str),
}

/// The VMM's memory: all it has resident, and the guest's part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryUsage {
    /// Resident set of the whole VMM process, in bytes.
    pub vmm_rss_bytes: u64,
    /// Resident set of the guest RAM mappings: the guest memory actually touched.
    pub guest_rss_bytes: u64,
    /// The VMM's own overhead: everything resident that is not guest RAM.
    pub overhead_bytes: u64,
}

/// The host address ranges of guest RAM, `(hva, len)`, for [`memory_usage`].
pub fn guest_ram_ranges(mem: &GuestMemory) -> Vec<(u64, u64)> {
    mem.regions().iter().map(|r| (r.host_address(), r.size())).collect()
}

/// Reads `/proc/self/smaps` and splits the VMM's RSS into guest RAM (the mappings that start
/// inside `guest_ranges`) and the rest.
///
/// # Errors
/// [`HostError::Read`] if smaps cannot be read, [`HostError::Smaps`] if it cannot be parsed.
pub fn memory_usage(guest_ranges: &[(u64, u64)]) -> Result<MemoryUsage, HostError> {
    let text = std::fs::read_to_string(SMAPS_PATH).map_err(|source| HostError::Read { path: SMAPS_PATH, source })?;
    parse_smaps(&text, guest_ranges)
}

// qa:begin stage8-smaps
/// [`memory_usage`] on smaps text: sums the `Rss:` lines of all mappings, and of those whose
/// start lies in one of `guest_ranges` (`(hva, len)`; a mapping the kernel split is several).
///
/// # Errors
/// [`HostError::Smaps`] for a malformed mapping header or `Rss:` line.
pub fn parse_smaps(text: &str, guest_ranges: &[(u64, u64)]) -> Result<MemoryUsage, HostError> {
    let (mut total, mut guest) = (0u64, 0u64);
    let mut in_guest: Option<bool> = None;
    for (index, line) in text.lines().enumerate() {
        let error = |problem| HostError::Smaps { line: index + 1, problem, text: line.to_string() };
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some(rss) = line.strip_prefix("Rss:") {
            let kb = rss.trim().strip_suffix("kB").and_then(|n| n.trim().parse::<u64>().ok());
            let bytes = kb.ok_or_else(|| error("expected `Rss: N kB`"))? * SMAPS_KB;
            let is_guest = in_guest.ok_or_else(|| error("Rss before any mapping"))?;
            total += bytes;
            if is_guest {
                guest += bytes;
            }
        } else if !first.ends_with(':') && !first.is_empty() {
            // A mapping header: `start-end perms offset dev inode [path]`.
            let start = first.split_once('-').and_then(|(start, _)| u64::from_str_radix(start, 16).ok());
            let start = start.ok_or_else(|| error("expected a mapping `start-end perms ...`"))?;
            in_guest = Some(guest_ranges.iter().any(|&(hva, len)| start >= hva && start - hva < len));
        }
    }
    Ok(MemoryUsage { vmm_rss_bytes: total, guest_rss_bytes: guest, overhead_bytes: total.saturating_sub(guest) })
}
// qa:end stage8-smaps

/// What kind of number a KVM statistic is (`KVM_STATS_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatKind {
    /// Only ever grows: a counter.
    Cumulative,
    /// A current value.
    Instant,
    /// The highest value seen.
    Peak,
    /// Buckets of equal width.
    LinearHistogram,
    /// Buckets of doubling width.
    LogHistogram,
    /// A type this code does not know.
    Other,
}

/// The unit of a KVM statistic (`KVM_STATS_UNIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatUnit {
    /// A plain count.
    None,
    /// Bytes.
    Bytes,
    /// Seconds (scaled by the exponent: nanoseconds are exponent -9).
    Seconds,
    /// CPU cycles.
    Cycles,
    /// 0 or 1.
    Boolean,
    /// A unit this code does not know.
    Other,
}

/// One statistic of one vCPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmStat {
    /// Its name: `exits`, `halt_exits`, …
    pub name: String,
    /// Counter, gauge, peak or histogram.
    pub kind: StatKind,
    /// Its unit.
    pub unit: StatUnit,
    /// The value is `values × base^exponent` (base 10 or 2 from the flags; −9 for ns).
    pub exponent: i16,
    /// One value, or one per histogram bucket.
    pub values: Vec<u64>,
}

/// Everything one read of a statistics file descriptor gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmStatsSnapshot {
    /// The id string: `kvm-PID/vcpu-N`.
    pub id: String,
    /// The statistics, in the kernel's order.
    pub stats: Vec<KvmStat>,
}

impl KvmStatsSnapshot {
    /// The first value of the statistic called `name`, if the host has it.
    pub fn value(&self, name: &str) -> Option<u64> {
        self.stats.iter().find(|s| s.name == name).and_then(|s| s.values.first().copied())
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(offset..offset.checked_add(4)?)?.try_into().ok()?))
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(offset..offset.checked_add(2)?)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(offset..offset.checked_add(8)?)?.try_into().ok()?))
}

/// A NUL-terminated name in a field of `size` bytes at `offset`.
fn name_at(bytes: &[u8], offset: usize, size: usize) -> Option<String> {
    let field = bytes.get(offset..offset.checked_add(size)?)?;
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    Some(String::from_utf8_lossy(&field[..len]).into_owned())
}

/// Parses the contents of a KVM statistics file descriptor. Every offset and size comes from
/// the data and is checked: a short or inconsistent buffer is an error, never a panic.
///
/// # Errors
/// [`HostError::MalformedStats`] naming the part that does not fit.
pub fn parse_kvm_stats(bytes: &[u8]) -> Result<KvmStatsSnapshot, HostError> {
    let malformed = HostError::MalformedStats;
    let field = |index: usize| u32_at(bytes, index * 4).map(|v| v as usize).ok_or(malformed("short header"));
    let (name_size, count, id_offset, desc_offset, data_offset) =
        (field(1)?, field(2)?, field(3)?, field(4)?, field(5)?);
    if name_size == 0 || name_size > MAX_STATS_NAME_SIZE {
        return Err(malformed("name size out of range"));
    }
    if count > MAX_STATS_DESCRIPTORS {
        return Err(malformed("too many descriptors"));
    }
    let id = name_at(bytes, id_offset, name_size).ok_or(malformed("id string outside the data"))?;
    let mut stats = Vec::with_capacity(count);
    for index in 0..count {
        let desc = desc_offset + index * (STATS_DESC_SIZE + name_size);
        let outside = || HostError::MalformedStats("descriptor outside the data");
        let flags = u32_at(bytes, desc).ok_or_else(outside)?;
        let exponent = u16_at(bytes, desc + 4).ok_or_else(outside)? as i16;
        let size = usize::from(u16_at(bytes, desc + 6).ok_or_else(outside)?);
        let offset = u32_at(bytes, desc + 8).ok_or_else(outside)? as usize;
        let name = name_at(bytes, desc + STATS_DESC_SIZE, name_size).ok_or_else(outside)?;
        let values = (0..size)
            .map(|i| u64_at(bytes, data_offset + offset + i * STATS_VALUE_SIZE))
            .collect::<Option<Vec<u64>>>()
            .ok_or(malformed("value outside the data"))?;
        let kind = match flags & KVM_STATS_TYPE_MASK {
            KVM_STATS_TYPE_CUMULATIVE => StatKind::Cumulative,
            KVM_STATS_TYPE_INSTANT => StatKind::Instant,
            KVM_STATS_TYPE_PEAK => StatKind::Peak,
            KVM_STATS_TYPE_LINEAR_HIST => StatKind::LinearHistogram,
            KVM_STATS_TYPE_LOG_HIST => StatKind::LogHistogram,
            _ => StatKind::Other,
        };
        let unit = match flags & KVM_STATS_UNIT_MASK {
            KVM_STATS_UNIT_NONE => StatUnit::None,
            KVM_STATS_UNIT_BYTES => StatUnit::Bytes,
            KVM_STATS_UNIT_SECONDS => StatUnit::Seconds,
            KVM_STATS_UNIT_CYCLES => StatUnit::Cycles,
            KVM_STATS_UNIT_BOOLEAN => StatUnit::Boolean,
            _ => StatUnit::Other,
        };
        stats.push(KvmStat { name, kind, unit, exponent, values });
    }
    Ok(KvmStatsSnapshot { id, stats })
}

/// One vCPU's statistics file descriptor.
pub struct VcpuStatsFd {
    file: File,
}

impl VcpuStatsFd {
    /// Reads the whole file again (the values change; the layout does not) and parses it.
    ///
    /// # Errors
    /// [`HostError::ReadStats`] or [`HostError::MalformedStats`].
    pub fn read(&self) -> Result<KvmStatsSnapshot, HostError> {
        let mut bytes = vec![0u8; 4096];
        let mut len = 0;
        loop {
            if len == bytes.len() {
                bytes.resize(len * 2, 0);
            }
            let read = self.file.read_at(&mut bytes[len..], len as u64).map_err(HostError::ReadStats)?;
            if read == 0 {
                break;
            }
            len += read;
        }
        parse_kvm_stats(&bytes[..len])
    }
}

/// Whether the host offers a vCPU's statistics.
pub enum KvmVcpuStats {
    /// It does: read them with [`VcpuStatsFd::read`].
    Offered(VcpuStatsFd),
    /// It does not (a kernel before 5.14, or a KVM module without them); the sentence says so.
    NotOffered(String),
}

impl KvmVcpuStats {
    /// Asks KVM for the statistics file descriptor of the vCPU whose file descriptor is `vcpu`
    /// (a `kvm_ioctls::VcpuFd`).
    pub fn open(vcpu: &impl AsRawFd) -> KvmVcpuStats {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new file descriptor or -1;
        // `vcpu` is an open vCPU descriptor for the duration of the call.
        let fd = unsafe { ioctl(vcpu, KVM_GET_STATS_FD()) };
        if fd < 0 {
            let error = io::Error::last_os_error();
            return KvmVcpuStats::NotOffered(format!(
                "this host's KVM does not offer per-vCPU statistics (KVM_GET_STATS_FD: {error}), so exits handled in the kernel are not counted"
            ));
        }
        // SAFETY: the ioctl returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        KvmVcpuStats::Offered(VcpuStatsFd { file: File::from(fd) })
    }
}

/// KVM's exit counters for a report, summed over the vCPUs: where the host offers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmExitCounters {
    /// Whether the host offers them.
    pub offered: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `(name, sum over vCPUs)` for each of [`KVM_EXIT_COUNTERS`] the host has.
    pub counters: Vec<KvmCounter>,
}

/// One summed counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmCounter {
    /// The statistic's name.
    pub name: String,
    /// Its sum over the vCPUs.
    pub value: u64,
}

impl KvmExitCounters {
    /// The counters of [`KVM_EXIT_COUNTERS`] summed over `snapshots` (one per vCPU).
    pub fn from_snapshots(snapshots: &[KvmStatsSnapshot]) -> KvmExitCounters {
        let counters = KVM_EXIT_COUNTERS
            .iter()
            .filter(|name| snapshots.iter().any(|s| s.value(name).is_some()))
            .map(|name| KvmCounter {
                name: name.to_string(),
                value: snapshots.iter().filter_map(|s| s.value(name)).sum(),
            })
            .collect();
        KvmExitCounters { offered: true, note: None, counters }
    }

    /// The host does not offer them, for `reason`.
    pub fn not_offered(reason: String) -> KvmExitCounters {
        KvmExitCounters { offered: false, note: Some(reason), counters: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::KVM_STATS_UNIT_SECONDS;

    const NAME_SIZE: usize = 48;

    /// A stats file as the kernel lays it out: header, id, descriptors, data.
    fn stats_file(stats: &[(&str, u32, i16, &[u64])]) -> Vec<u8> {
        let id_offset = STATS_HEADER_SIZE;
        let desc_offset = id_offset + NAME_SIZE;
        let data_offset = desc_offset + stats.len() * (STATS_DESC_SIZE + NAME_SIZE);
        let mut bytes = Vec::new();
        for v in [0, NAME_SIZE, stats.len(), id_offset, desc_offset, data_offset] {
            bytes.extend_from_slice(&(v as u32).to_le_bytes());
        }
        let name = |bytes: &mut Vec<u8>, text: &str| {
            let mut field = [0u8; NAME_SIZE];
            field[..text.len()].copy_from_slice(text.as_bytes());
            bytes.extend_from_slice(&field);
        };
        name(&mut bytes, "kvm-1234/vcpu-0");
        let mut offset = 0;
        for (stat, flags, exponent, values) in stats {
            bytes.extend_from_slice(&flags.to_le_bytes());
            bytes.extend_from_slice(&exponent.to_le_bytes());
            bytes.extend_from_slice(&(values.len() as u16).to_le_bytes());
            bytes.extend_from_slice(&(offset as u32).to_le_bytes());
            bytes.extend_from_slice(&0u32.to_le_bytes());
            name(&mut bytes, stat);
            offset += values.len() * STATS_VALUE_SIZE;
        }
        for (_, _, _, values) in stats {
            for v in *values {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        bytes
    }

    #[test]
    fn a_stats_file_parses_into_named_values() {
        let bytes = stats_file(&[
            ("exits", KVM_STATS_TYPE_CUMULATIVE, 0, &[1234]),
            ("halt_wait_ns", KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_SECONDS, -9, &[5_000_000]),
            ("halt_poll_success_hist", KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS, -9, &[1, 2, 3]),
            ("guest_mode", KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN, 0, &[0]),
        ]);
        let snapshot = parse_kvm_stats(&bytes).unwrap();
        assert_eq!(snapshot.id, "kvm-1234/vcpu-0");
        assert_eq!(snapshot.value("exits"), Some(1234));
        let wait = &snapshot.stats[1];
        assert_eq!((wait.kind, wait.unit, wait.exponent), (StatKind::Cumulative, StatUnit::Seconds, -9));
        assert_eq!(snapshot.stats[2].values, [1, 2, 3]);
        assert_eq!(snapshot.stats[2].kind, StatKind::LogHistogram);
        assert_eq!((snapshot.stats[3].kind, snapshot.stats[3].unit), (StatKind::Instant, StatUnit::Boolean));
    }

    #[test]
    fn truncated_or_inconsistent_stats_are_errors_not_panics() {
        let bytes = stats_file(&[("exits", KVM_STATS_TYPE_CUMULATIVE, 0, &[1]), ("io_exits", 0, 0, &[2])]);
        for len in 0..bytes.len() {
            assert!(parse_kvm_stats(&bytes[..len]).is_err(), "{len} bytes");
        }
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes()); // num_desc
        assert_eq!(parse_kvm_stats(&huge).unwrap_err().to_string(), "malformed KVM statistics: too many descriptors");
        let mut wild = bytes.clone();
        wild[20..24].copy_from_slice(&u32::MAX.to_le_bytes()); // data_offset
        assert!(parse_kvm_stats(&wild).is_err());
    }

    #[test]
    fn exit_counters_are_summed_over_vcpus_and_missing_ones_left_out() {
        let vcpu = |exits, io| {
            parse_kvm_stats(&stats_file(&[
                ("exits", KVM_STATS_TYPE_CUMULATIVE, 0, &[exits]),
                ("io_exits", KVM_STATS_TYPE_CUMULATIVE, 0, &[io]),
                ("pf_taken", KVM_STATS_TYPE_CUMULATIVE, 0, &[7]),
            ]))
            .unwrap()
        };
        let counters = KvmExitCounters::from_snapshots(&[vcpu(100, 10), vcpu(50, 5)]);
        assert!(counters.offered);
        let pairs: Vec<(&str, u64)> = counters.counters.iter().map(|c| (c.name.as_str(), c.value)).collect();
        assert_eq!(pairs, [("exits", 150), ("io_exits", 15)]);
    }

    const SMAPS: &str = "\
55d0c0000000-55d0c0100000 r-xp 00000000 08:01 1234                       /usr/bin/stage08
Size:               1024 kB
Rss:                 512 kB
Pss:                 512 kB
VmFlags: rd ex mr mw me
7f0000000000-7f0000200000 rw-s 00000000 00:01 99                         /dev/zero (deleted)
Size:               2048 kB
Rss:                1536 kB
7f0000200000-7f0000300000 rw-s 00000000 00:01 99                         /dev/zero (deleted)
Rss:                 256 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  16 kB
";

    #[test]
    fn smaps_splits_the_rss_into_guest_ram_and_overhead() {
        let usage = parse_smaps(SMAPS, &[(0x7f00_0000_0000, 0x30_0000)]).unwrap();
        assert_eq!(usage.vmm_rss_bytes, (512 + 1536 + 256 + 16) * 1024);
        assert_eq!(usage.guest_rss_bytes, (1536 + 256) * 1024, "both pieces of the split mapping");
        assert_eq!(usage.overhead_bytes, (512 + 16) * 1024);
        assert_eq!(parse_smaps(SMAPS, &[]).unwrap().guest_rss_bytes, 0);
    }

    #[test]
    fn malformed_smaps_lines_are_errors_with_their_line_number() {
        let err = parse_smaps("Rss: 4 kB\n", &[]).unwrap_err();
        assert_eq!(err.to_string(), "/proc/self/smaps line 1: Rss before any mapping: \"Rss: 4 kB\"");
        let err = parse_smaps("00400000-00401000 r-xp 0 0:0 0\nRss: many\n", &[]).unwrap_err();
        assert!(err.to_string().starts_with("/proc/self/smaps line 2: expected `Rss: N kB`"), "{err}");
        assert!(parse_smaps("zz-00401000 r-xp\n", &[]).is_err());
    }

    #[test]
    fn touching_guest_ram_shows_in_the_vmms_own_smaps() {
        let mem = GuestMemory::new(&[(0, 0x40_0000)]).unwrap();
        let before = memory_usage(&guest_ram_ranges(&mem)).unwrap();
        assert_eq!(before.guest_rss_bytes, 0, "mapped with NORESERVE, untouched");
        for page in 0..256u64 {
            mem.write_obj(stage02::memory::GuestAddress(page * 4096), 1u8).unwrap();
        }
        let after = memory_usage(&guest_ram_ranges(&mem)).unwrap();
        assert_eq!(after.guest_rss_bytes, 1 << 20, "256 pages touched");
        assert!(after.vmm_rss_bytes >= after.guest_rss_bytes + after.overhead_bytes);
    }

    #[test]
    fn this_hosts_kvm_offers_vcpu_statistics_or_says_why_not() {
        checkpoints::require_kvm();
        let kvm = kvm_ioctls::Kvm::new().unwrap();
        let vm = kvm.create_vm().unwrap();
        let vcpu = vm.create_vcpu(0).unwrap();
        let advertised = kvm.check_extension_raw(u64::from(kvm_bindings::KVM_CAP_BINARY_STATS_FD)) > 0;
        match KvmVcpuStats::open(&vcpu) {
            KvmVcpuStats::Offered(fd) => {
                let snapshot = fd.read().unwrap();
                assert!(snapshot.id.contains("vcpu-0"), "{}", snapshot.id);
                assert_eq!(snapshot.value("exits"), Some(0), "a vCPU that never ran");
                let again = fd.read().unwrap();
                assert_eq!(again.stats.len(), snapshot.stats.len());
            }
            KvmVcpuStats::NotOffered(reason) => {
                assert!(!advertised, "KVM_CAP_BINARY_STATS_FD is advertised, yet: {reason}");
                assert!(reason.contains("KVM_GET_STATS_FD"), "{reason}");
            }
        }
    }
}
