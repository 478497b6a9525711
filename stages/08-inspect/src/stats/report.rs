//! The statistics report: text tables for people (`info stats`, `--stats`) and JSON for
//! programs (`--stats-json`, format `stages/08-inspect/schema/stats.schema.json`).
//!
//! The report is built from an [`ExitSnapshot`] and, optionally, the guest's symbols; the VMM
//! adds the parts it has (KVM's counters, the boot timeline, memory, the profile) by setting
//! the public fields. Exit hot spots group the RIPs by guest function: the top functions by
//! exits, each with the exit kinds and the ports or addresses it touched — which kernel
//! functions write the serial port, say.
//!
//! # Resources
//! - JSON Schema draft 2020-12: <https://json-schema.org/draft/2020-12/json-schema-core>.

use super::profile::{ProfileReport, UNKNOWN_LINE, USER_MODE_LINE};
use super::timeline::TimelineReport;
use super::{ExitKind, ExitSnapshot, RipStats};
use crate::host::{KvmExitCounters, MemoryUsage};
use crate::symbols::SymbolTable;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// The version of the JSON format; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;
/// How many hot-spot functions (and profile lines) a report lists by default.
pub const DEFAULT_TOP: usize = 15;
/// The percentile reported besides the mean.
pub const PERCENTILE: f64 = 99.0;
/// Guest addresses from here up are the kernel's half of the address space.
pub const KERNEL_HALF_START: u64 = 0xffff_8000_0000_0000;
/// The device name shown for accesses no device answered.
pub const NO_DEVICE: &str = "(no device)";

/// Serializes an exit kind as its report name (`io_out`, …).
fn kind_name<S: serde::Serializer>(kind: &ExitKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.name())
}

/// Exits of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonRow {
    /// The kind.
    #[serde(serialize_with = "kind_name")]
    pub reason: ExitKind,
    /// How many.
    pub count: u64,
    /// Nanoseconds the VMM spent on them.
    pub vmm_ns: u64,
    /// The mean, in nanoseconds.
    pub mean_ns: u64,
    /// An upper bound of the 99th percentile, in nanoseconds (at most 25 % high).
    pub p99_ns: u64,
}

/// All exits that reached the VMM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitsSection {
    /// Exits in all: the sum of the reasons' counts.
    pub total: u64,
    /// Nanoseconds in the VMM in all.
    pub vmm_ns: u64,
    /// By kind, in [`ExitKind::ALL`] order, kinds that happened only.
    pub reasons: Vec<ReasonRow>,
}

/// Accesses to one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRow {
    /// The device's bus name, or [`NO_DEVICE`].
    pub device: String,
    /// Reads (`in`, MMIO loads).
    pub reads: u64,
    /// Writes (`out`, MMIO stores).
    pub writes: u64,
}

/// One vCPU's exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VcpuRow {
    /// Its index.
    pub vcpu: usize,
    /// Its exits.
    pub exits: u64,
    /// Nanoseconds the VMM spent on them.
    pub vmm_ns: u64,
}

/// One guest function and the exits its code caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionRow {
    /// The function; `[user mode]` for user-space RIPs, `[unknown]` for kernel RIPs no symbol
    /// covers, or the RIP in hex when the report has no symbols.
    pub function: String,
    /// Exits at its RIPs.
    pub exits: u64,
    /// Of those, by kind (`port_out`: 12, …), kinds that happened only.
    pub kinds: BTreeMap<&'static str, u64>,
    /// The ports or guest-physical addresses accessed (the first few, sorted).
    pub addresses: Vec<u64>,
    /// Whether there were more than those.
    pub more_addresses: bool,
}

/// The top guest functions by exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HotSpots {
    /// Where the names come from: the symbol file, or `none`.
    pub symbols: String,
    /// The top functions, most exits first.
    pub functions: Vec<FunctionRow>,
    /// Exits in functions below the top ones.
    pub other_exits: u64,
    /// Exits whose RIP was not recorded or not tracked (the per-vCPU table was full).
    pub untracked_exits: u64,
}

/// Everything `info stats` and `--stats` show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Exits that reached the VMM, by reason.
    pub exits: ExitsSection,
    /// By device, busiest first.
    pub devices: Vec<DeviceRow>,
    /// By vCPU.
    pub vcpus: Vec<VcpuRow>,
    /// By guest function.
    pub hot_spots: HotSpots,
    /// Exits KVM handled in the kernel, when the VMM asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kvm: Option<KvmExitCounters>,
    /// The boot timeline, when the VMM keeps one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<TimelineReport>,
    /// The VMM's memory, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryUsage>,
    /// The sampling profile, when `--profile` ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileReport>,
}

impl StatsReport {
    /// The exit part of the report: reasons, devices, vCPUs and the top `top` hot-spot
    /// functions, resolved through `symbols` (named `symbols_origin` in the report).
    pub fn new(snapshot: &ExitSnapshot, symbols: Option<(&SymbolTable, &str)>, top: usize) -> StatsReport {
        let all = &snapshot.all;
        let reasons = ExitKind::ALL
            .iter()
            .zip(&all.kinds)
            .filter(|(_, stats)| stats.count > 0)
            .map(|(&reason, stats)| ReasonRow {
                reason,
                count: stats.count,
                vmm_ns: stats.total_ns,
                mean_ns: stats.total_ns / stats.count,
                p99_ns: stats.histogram.percentile(PERCENTILE).unwrap_or(0),
            })
            .collect();
        let mut devices: Vec<DeviceRow> = all
            .devices
            .iter()
            .map(|(name, c)| DeviceRow {
                device: name.unwrap_or(NO_DEVICE).to_string(),
                reads: c.reads,
                writes: c.writes,
            })
            .collect();
        devices.sort_by(|a, b| (b.reads + b.writes).cmp(&(a.reads + a.writes)).then_with(|| a.device.cmp(&b.device)));
        let vcpus = snapshot
            .per_vcpu
            .iter()
            .enumerate()
            .map(|(vcpu, counts)| VcpuRow { vcpu, exits: counts.total(), vmm_ns: counts.total_ns() })
            .collect();
        StatsReport {
            schema_version: SCHEMA_VERSION,
            exits: ExitsSection { total: all.total(), vmm_ns: all.total_ns(), reasons },
            devices,
            vcpus,
            hot_spots: hot_spots(&all.rips, &all.untracked, symbols, top),
            kvm: None,
            timeline: None,
            memory: None,
            profile: None,
        }
    }

    /// The report as JSON (`schema/stats.schema.json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain numbers, strings and lists")
    }

    /// The report as text: a title line and a Markdown table per part.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let exits = &self.exits;
        let _ = writeln!(out, "VM exits handled by the VMM: {}, {} in the VMM\n", exits.total, duration(exits.vmm_ns));
        let mut rows: Vec<Vec<String>> = exits
            .reasons
            .iter()
            .map(|r| {
                vec![
                    r.reason.name().to_string(),
                    r.count.to_string(),
                    percent(r.count, exits.total),
                    duration(r.vmm_ns),
                    duration(r.mean_ns),
                    format!("≤ {}", duration(r.p99_ns)),
                ]
            })
            .collect();
        let mean = exits.vmm_ns.checked_div(exits.total).unwrap_or(0);
        rows.push(vec![
            "total".into(),
            exits.total.to_string(),
            percent(exits.total, exits.total),
            duration(exits.vmm_ns),
            duration(mean),
            String::new(),
        ]);
        table(&mut out, &["reason", "exits", "share", "VMM time", "mean", "p99"], "lrrrrr", rows);

        let _ = writeln!(out, "Exits by device\n");
        let rows =
            self.devices.iter().map(|d| vec![d.device.clone(), d.reads.to_string(), d.writes.to_string()]).collect();
        table(&mut out, &["device", "reads", "writes"], "lrr", rows);

        let _ = writeln!(out, "Exits by vCPU\n");
        let rows =
            self.vcpus.iter().map(|v| vec![v.vcpu.to_string(), v.exits.to_string(), duration(v.vmm_ns)]).collect();
        table(&mut out, &["vCPU", "exits", "VMM time"], "rrr", rows);

        if let Some(kvm) = &self.kvm {
            kvm_text(&mut out, kvm);
        }
        self.hot_spots_text(&mut out);
        if let Some(timeline) = &self.timeline {
            timeline_text(&mut out, timeline);
        }
        if let Some(memory) = &self.memory {
            let _ = writeln!(out, "Memory\n");
            let rows = vec![
                vec!["VMM resident (RSS)".to_string(), size(memory.vmm_rss_bytes)],
                vec!["guest RAM touched".to_string(), size(memory.guest_rss_bytes)],
                vec!["VMM overhead".to_string(), size(memory.overhead_bytes)],
            ];
            table(&mut out, &["", "size"], "lr", rows);
        }
        if let Some(profile) = &self.profile {
            profile_text(&mut out, profile);
        }
        out
    }

    fn hot_spots_text(&self, out: &mut String) {
        let hot = &self.hot_spots;
        let _ = writeln!(out, "Hot spots: guest functions by exits (symbols: {})\n", hot.symbols);
        let rows = hot
            .functions
            .iter()
            .map(|f| {
                let kinds: Vec<String> = f.kinds.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
                let mut addresses: Vec<String> = f.addresses.iter().map(|a| format!("{a:#x}")).collect();
                if f.more_addresses {
                    addresses.push("…".into());
                }
                vec![f.function.clone(), f.exits.to_string(), kinds.join(", "), addresses.join(" ")]
            })
            .collect();
        table(out, &["function", "exits", "kinds", "ports/addresses"], "lrll", rows);
        if hot.other_exits > 0 || hot.untracked_exits > 0 {
            let _ = writeln!(
                out,
                "{} more exits in other functions; {} without a tracked RIP\n",
                hot.other_exits, hot.untracked_exits
            );
        }
    }
}

/// Groups RIP statistics by function and keeps the top `top`.
fn hot_spots(
    rips: &HashMap<u64, RipStats>,
    untracked: &RipStats,
    symbols: Option<(&SymbolTable, &str)>,
    top: usize,
) -> HotSpots {
    let mut functions: HashMap<String, RipStats> = HashMap::new();
    for (&rip, stats) in rips {
        let name = match symbols {
            _ if rip < KERNEL_HALF_START => USER_MODE_LINE.to_string(),
            Some((table, _)) => table.lookup(rip).map_or(UNKNOWN_LINE.to_string(), |l| l.symbol.name.to_string()),
            None => format!("{rip:#x}"),
        };
        functions.entry(name).or_default().merge(stats);
    }
    let mut rows: Vec<FunctionRow> = functions
        .into_iter()
        .map(|(function, stats)| FunctionRow {
            function,
            exits: stats.exits,
            kinds: ExitKind::ALL.iter().zip(stats.kinds).filter(|(_, n)| *n > 0).map(|(k, n)| (k.name(), n)).collect(),
            addresses: stats.addresses,
            more_addresses: stats.more_addresses,
        })
        .collect();
    rows.sort_by(|a, b| b.exits.cmp(&a.exits).then_with(|| a.function.cmp(&b.function)));
    let other_exits = rows.iter().skip(top).map(|r| r.exits).sum();
    rows.truncate(top);
    HotSpots {
        symbols: symbols.map_or("none".to_string(), |(_, origin)| origin.to_string()),
        functions: rows,
        other_exits,
        untracked_exits: untracked.exits,
    }
}

fn kvm_text(out: &mut String, kvm: &KvmExitCounters) {
    if !kvm.offered {
        let _ = writeln!(out, "Exits KVM handled in the kernel: not offered: {}\n", kvm.note.as_deref().unwrap_or(""));
        return;
    }
    let _ = writeln!(out, "Exits KVM handled in the kernel (KVM_GET_STATS_FD, all vCPUs)\n");
    let rows = kvm.counters.iter().map(|c| vec![c.name.clone(), c.value.to_string()]).collect();
    table(out, &["counter", "value"], "lr", rows);
}

fn timeline_text(out: &mut String, timeline: &TimelineReport) {
    let _ = writeln!(out, "Boot timeline\n");
    let mut rows = vec![vec!["VMM start".to_string(), duration(0), String::new()]];
    rows.extend(timeline.events.iter().map(|e| {
        let when = e.since_start_ns.map_or("-".to_string(), duration);
        vec![e.label.to_string(), when, e.since_previous_ns.map_or(String::new(), |ns| format!("+{}", duration(ns)))]
    }));
    table(out, &["event", "since VMM start", "since previous"], "lrr", rows);
}

fn profile_text(out: &mut String, profile: &ProfileReport) {
    let _ = writeln!(out, "Guest profile: {} samples, {} in user mode\n", profile.samples, profile.user_mode_samples);
    let mut rows: Vec<Vec<String>> = profile
        .rows
        .iter()
        .map(|r| vec![r.function.clone(), r.samples.to_string(), percent(r.samples, profile.samples)])
        .collect();
    if profile.other_samples > 0 {
        let other = profile.other_samples;
        rows.push(vec!["(other functions)".into(), other.to_string(), percent(other, profile.samples)]);
    }
    table(out, &["function", "samples", "share"], "lrr", rows);
}

/// A Markdown table with padded columns; `align` has `l` or `r` per column.
fn table(out: &mut String, headers: &[&str], align: &str, rows: Vec<Vec<String>>) {
    let width = |column: usize| {
        rows.iter().map(|r| r[column].chars().count()).chain([headers[column].chars().count(), 3]).max().unwrap_or(3)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let right: Vec<bool> = align.chars().map(|c| c == 'r').collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(
                |(i, cell)| {
                    if right[i] {
                        format!("{cell:>w$}", w = widths[i])
                    } else {
                        format!("{cell:<w$}", w = widths[i])
                    }
                },
            )
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let _ = writeln!(out, "{}", line(headers.iter().map(|h| h.to_string()).collect()));
    let rules: Vec<String> = widths
        .iter()
        .zip(&right)
        .map(|(&w, &r)| if r { format!("{}:", "-".repeat(w + 1)) } else { "-".repeat(w + 2) })
        .collect();
    let _ = writeln!(out, "|{}|", rules.join("|"));
    for row in rows {
        let _ = writeln!(out, "{}", line(row));
    }
    out.push('\n');
}

/// Nanoseconds for people: `850 ns`, `12.3 µs`, `4.56 ms`, `78.9 s`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// Bytes for people: `512 KiB`, `12.5 MiB`.
pub fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes < MIB {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// `part` of `whole` as a percentage with one decimal.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ExitSample, ExitStats};
    use std::time::Duration;

    const MAP: &str = "\
ffffffff811a68ca T serial8250_tx_chars
ffffffff811a6a1e t serial8250_start_tx
ffffffff811a0000 t io_serial_in
ffffffff81000000 T startup_64
";

    fn sample(kind: ExitKind, rip: u64, address: u64, device: &'static str, us: u64) -> ExitSample {
        ExitSample {
            kind,
            rip: Some(rip),
            device: Some(device),
            address: Some(address),
            vmm_time: Duration::from_micros(us),
        }
    }

    /// A small boot: the serial driver writes THR and reads LSR; user space writes too.
    fn stats() -> ExitStats {
        let stats = ExitStats::new(2);
        for i in 0..100 {
            stats.record(0, &sample(ExitKind::IoOut, 0xffff_ffff_811a_68f4 + i % 3, 0x3f8, "serial", 2));
        }
        for _ in 0..40 {
            stats.record(1, &sample(ExitKind::IoIn, 0xffff_ffff_811a_0010, 0x3fd, "serial", 1));
        }
        stats.record(1, &sample(ExitKind::IoIn, 0xffff_ffff_811a_0010, 0x3fe, "serial", 1));
        stats.record(0, &sample(ExitKind::IoOut, 0x40_1000, 0x80, "post", 1));
        stats.record(
            0,
            &ExitSample {
                kind: ExitKind::MmioRead,
                rip: Some(0xffff_ffff_8100_0040),
                device: None,
                address: Some(0xfed0_0000),
                vmm_time: Duration::from_micros(5),
            },
        );
        stats.record(
            1,
            &ExitSample {
                kind: ExitKind::Hlt,
                rip: None,
                device: None,
                address: None,
                vmm_time: Duration::from_millis(3),
            },
        );
        stats
    }

    fn report() -> StatsReport {
        let symbols = SymbolTable::parse(MAP, "System.map").unwrap();
        StatsReport::new(&stats().snapshot(), Some((&symbols, "System.map")), DEFAULT_TOP)
    }

    #[test]
    fn the_reasons_add_up_to_the_total() {
        let report = report();
        assert_eq!(report.exits.total, 144);
        assert_eq!(report.exits.reasons.iter().map(|r| r.count).sum::<u64>(), report.exits.total);
        let out = &report.exits.reasons[1];
        assert_eq!((out.reason, out.count, out.vmm_ns, out.mean_ns), (ExitKind::IoOut, 101, 201_000, 1990));
        assert!((2_000..2_500).contains(&out.p99_ns), "{}", out.p99_ns);
        assert_eq!(report.vcpus.iter().map(|v| v.exits).sum::<u64>(), 144);
    }

    #[test]
    fn devices_are_listed_busiest_first() {
        let report = report();
        let devices: Vec<(&str, u64, u64)> =
            report.devices.iter().map(|d| (d.device.as_str(), d.reads, d.writes)).collect();
        assert_eq!(devices, [("serial", 41, 100), ("(no device)", 1, 0), ("post", 0, 1)]);
    }

    #[test]
    fn hot_spots_name_functions_with_their_kinds_and_ports() {
        let hot = report().hot_spots;
        let first = &hot.functions[0];
        assert_eq!((first.function.as_str(), first.exits), ("serial8250_tx_chars", 100), "3 RIPs, one function");
        assert_eq!(first.kinds, BTreeMap::from([("io_out", 100)]));
        assert_eq!(first.addresses, [0x3f8]);
        let second = &hot.functions[1];
        assert_eq!(
            (second.function.as_str(), second.exits, second.addresses.as_slice()),
            ("io_serial_in", 41, &[0x3fd, 0x3fe][..])
        );
        let names: Vec<&str> = hot.functions.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, ["serial8250_tx_chars", "io_serial_in", "[user mode]", "startup_64"]);
        assert_eq!((hot.untracked_exits, hot.other_exits), (1, 0));
        assert_eq!(hot.symbols, "System.map");
    }

    #[test]
    fn without_symbols_hot_spots_are_raw_rips_and_the_top_is_cut() {
        let report = StatsReport::new(&stats().snapshot(), None, 2);
        let names: Vec<&str> = report.hot_spots.functions.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, ["0xffffffff811a0010", "0xffffffff811a68f4"]);
        assert_eq!(report.hot_spots.other_exits, 100 - 34 + 1 + 1, "the other two serial RIPs, user and startup");
        assert_eq!(report.hot_spots.symbols, "none");
    }

    #[test]
    fn the_text_has_a_table_per_part() {
        let text = report().to_text();
        assert!(text.starts_with("VM exits handled by the VMM: 144, 3.25 ms in the VMM\n"), "{text}");
        assert!(text.contains("\n| io_out    |   101 |  70.1 % | 201.0 µs |  2.0 µs |  ≤ 2.0 µs |\n"), "{text}");
        assert!(text.contains("\n| total     |   144 | 100.0 % |  3.25 ms | 22.5 µs |           |\n"), "{text}");
        assert!(text.contains("\n|-----------|------:|--------:|"), "a Markdown rule: {text}");
        assert!(text.contains("| serial8250_tx_chars |   100 | io_out 100  | 0x3f8"), "{text}");
        assert!(text.contains("| io_serial_in        |    41 | io_in 41    | 0x3fd 0x3fe"), "{text}");
        assert!(text.contains("0 more exits in other functions; 1 without a tracked RIP"), "{text}");
        assert!(!text.contains("Boot timeline") && !text.contains("Memory"), "parts the VMM did not add are left out");
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(
            [duration(850), duration(12_345), duration(4_560_000), duration(78_900_000_000)],
            ["850 ns", "12.3 µs", "4.56 ms", "78.90 s"]
        );
        assert_eq!([size(512 << 10), size(12 << 20 | 1 << 19)], ["512 KiB", "12.5 MiB"]);
    }
}
