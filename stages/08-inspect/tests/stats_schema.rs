//! The JSON of real reports validates against stages/08-inspect/schema/stats.schema.json: a
//! full one (every optional part, KVM counters offered and not) and an empty one.

use stage02::memory::{GuestAddress, GuestMemory};
use stage08::host::{self, KvmExitCounters, KvmStat, KvmStatsSnapshot, StatKind, StatUnit};
use stage08::stats::profile::Profile;
use stage08::stats::report::{StatsReport, DEFAULT_TOP};
use stage08::stats::timeline::{BootEvent, BootTimeline};
use stage08::stats::{ExitKind, ExitSample, ExitSnapshot, ExitStats};
use stage08::symbols::SymbolTable;
use std::time::{Duration, Instant};

fn schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/stats.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).expect("the schema is a valid draft 2020-12 schema")
}

fn errors(value: &serde_json::Value) -> Vec<String> {
    schema().iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

fn assert_valid(json: &str) {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let errors = errors(&value);
    assert!(errors.is_empty(), "the report does not match the schema:\n{}\n{json}", errors.join("\n"));
}

/// A report with every part, from recorded data.
fn full_report(kvm: KvmExitCounters) -> StatsReport {
    let stats = ExitStats::new(2);
    let serial = |kind, rip, port| ExitSample {
        kind,
        rip: Some(rip),
        device: Some("serial"),
        address: Some(port),
        vmm_time: Duration::from_micros(3),
    };
    for port in 0x3f8..0x3ff {
        stats.record(0, &serial(ExitKind::IoOut, 0xffff_ffff_811a_68f4, port));
    }
    stats.record(1, &serial(ExitKind::IoIn, 0x40_1000, 0x3fd));
    for kind in [ExitKind::MmioWrite, ExitKind::Hlt, ExitKind::InternalError, ExitKind::Other] {
        stats.record(1, &ExitSample { kind, rip: None, device: None, address: None, vmm_time: Duration::ZERO });
    }
    let symbols = SymbolTable::parse("ffffffff811a68ca T serial8250_tx_chars\n", "System.map").unwrap();
    let mut report = StatsReport::new(&stats.snapshot(), Some((&symbols, "System.map")), DEFAULT_TOP);

    let timeline = BootTimeline::new(Instant::now());
    timeline.mark(BootEvent::FirstInstruction);
    timeline.mark(BootEvent::BootComplete);
    report.timeline = Some(timeline.report());

    let mem = GuestMemory::new(&[(0, 0x10_0000)]).unwrap();
    mem.write_obj(GuestAddress(0), 1u64).unwrap();
    report.memory = Some(host::memory_usage(&host::guest_ram_ranges(&mem)).unwrap());

    let profile = Profile::new();
    profile.record(0xffff_ffff_811a_68f4, false);
    profile.record(0x40_1000, true);
    report.profile = Some(profile.report(Some(&symbols), 1));
    report.kvm = Some(kvm);
    report
}

fn offered() -> KvmExitCounters {
    let stat = |name: &str, value| KvmStat {
        name: name.into(),
        kind: StatKind::Cumulative,
        unit: StatUnit::None,
        exponent: 0,
        values: vec![value],
    };
    let vcpu = KvmStatsSnapshot { id: "kvm-1/vcpu-0".into(), stats: vec![stat("exits", 900), stat("io_exits", 12)] };
    KvmExitCounters::from_snapshots(&[vcpu])
}

#[test]
fn a_full_report_matches_the_schema() {
    let report = full_report(offered());
    let json = report.to_json();
    assert_valid(&json);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["exits"]["total"], 12);
    assert_eq!(value["hot_spots"]["functions"][0]["function"], "serial8250_tx_chars");
    assert_eq!(value["hot_spots"]["functions"][0]["kinds"]["io_out"], 7);
    assert_eq!(value["kvm"]["counters"][0]["name"], "exits");
    assert_eq!(value["timeline"]["events"][1]["since_start_ns"], serde_json::Value::Null, "no console byte");
    assert_valid(&full_report(KvmExitCounters::not_offered("no KVM_GET_STATS_FD here".into())).to_json());
}

#[test]
fn an_empty_report_matches_the_schema() {
    let report = StatsReport::new(&ExitSnapshot::default(), None, DEFAULT_TOP);
    let json = report.to_json();
    assert_valid(&json);
    assert!(!json.contains("\"kvm\"") && !json.contains("\"profile\""), "parts not measured are left out: {json}");
}

#[test]
fn the_schema_refuses_what_a_report_never_contains() {
    let mut value: serde_json::Value = serde_json::from_str(&full_report(offered()).to_json()).unwrap();
    value["exits"]["reasons"][0]["reason"] = "port_sideways".into();
    value["memory"]["vmm_rss_bytes"] = (-1).into();
    value["surprise"] = true.into();
    assert_eq!(errors(&value).len(), 3, "{:?}", errors(&value));
}
