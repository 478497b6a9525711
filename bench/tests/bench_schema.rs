//! The JSON `bench` writes validates against bench/schema/bench.schema.json: a boot report with
//! every field (and a failed run), an exits report, and an empty one; and the schema refuses
//! what a report never holds.

use bench::report::{BenchReport, BootRun, ExitCounts, FunctionExits, Group, WorkloadReport, WorkloadRun};

fn schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/bench.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).expect("the schema is a valid draft 2020-12 schema")
}

fn errors(value: &serde_json::Value) -> Vec<String> {
    schema().iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

fn assert_valid(report: &BenchReport) -> serde_json::Value {
    let json = report.to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let errors = errors(&value);
    assert!(errors.is_empty(), "the report does not match the schema:\n{}\n{json}", errors.join("\n"));
    value
}

fn measured_run() -> BootRun {
    BootRun {
        ready_s: Some(81.25),
        exit_s: 84.5,
        boot_timer_s: Some(81.0),
        exits: Some(ExitCounts {
            total: 87_012,
            by_reason: [("io_out".to_string(), 21_345), ("mmio_read".to_string(), 65_667)].into(),
            top_functions: vec![FunctionExits { function: "pcibios_irq_init".into(), exits: 65_000 }],
        }),
        emulated_instructions: Some(24_138_749),
        overhead_bytes: Some(2 << 20),
        overhead_source: Some("stage 8's --stats-json".into()),
        failure: None,
    }
}

fn boot_report() -> BenchReport {
    let mut report = BenchReport::new("boot", "minivirt_run=\"true\"");
    report.groups.push(Group {
        name: "minivirt stage08".into(),
        runs: vec![
            measured_run(),
            BootRun { exit_s: 900.0, failure: Some("no exit within 900 s: stopped".into()), ..Default::default() },
        ],
        ..Default::default()
    });
    report.groups.push(Group {
        name: "QEMU 7.2.19 (TCG)".into(),
        accel: Some("tcg".into()),
        notes: vec!["TCG: QEMU with KVM did not reach the marker".into()],
        runs: vec![BootRun { ready_s: Some(2.4), exit_s: 2.6, overhead_bytes: Some(60 << 20), ..Default::default() }],
        ..Default::default()
    });
    report
}

#[test]
fn a_boot_report_matches_the_schema() {
    let value = assert_valid(&boot_report());
    assert_eq!(value["groups"][0]["runs"][0]["exits"]["by_reason"]["mmio_read"], 65_667);
    assert_eq!(value["groups"][0]["runs"][1]["ready_s"], serde_json::Value::Null);
    assert_eq!(value["groups"][1]["accel"], "tcg");
}

#[test]
fn exits_and_empty_reports_match_the_schema() {
    let mut report = BenchReport::new("exits", "");
    report.groups.push(Group { name: "baseline".into(), runs: vec![measured_run()], ..Default::default() });
    report.groups.push(Group {
        name: "quiet".into(),
        switch: "quiet".into(),
        runs: vec![measured_run()],
        ..Default::default()
    });
    assert_valid(&report);
    let mut empty = BenchReport::new("boot", "");
    empty.interrupted = true;
    empty.skipped.push("QEMU: not installed".into());
    assert_valid(&empty);
}

fn guest_report() -> BenchReport {
    let mut report = BenchReport::new("guest", "minivirt_run=\"/usr/bin/workloads cpu 10\"");
    report.groups.push(Group { name: "minivirt stage08".into(), runs: vec![measured_run()], ..Default::default() });
    let output = "bench: cpu events=1600 elapsed_ns=2019950246 max_prime=10000 primes_per_event=1228\n\
                  bench: mem op=rnd_write block=1024 bytes=536870912 elapsed_ns=324378146\n\
                  bench: fileio op=rnd_read block=4096 ops=20000 elapsed_ns=1943438609 p50_ns=46921 p95_ns=91433 p99_ns=1442433\n";
    let run = WorkloadRun { measurements: bench::workloads::parse(output), failure: None };
    report.workloads = Some(WorkloadReport {
        disk_bytes: 64 << 20,
        host_notes: vec!["target/bench/workloads on target/bench/scratch.img".into()],
        host: vec![run.clone()],
        guest: vec![WorkloadRun { failure: Some("the guest printed 3 of 28 results".into()), ..run }],
    });
    report
}

#[test]
fn a_guest_report_matches_the_schema() {
    let value = assert_valid(&guest_report());
    let guest = &value["workloads"]["guest"][0];
    assert_eq!(guest["measurements"][2]["values"]["p99_ns"], 1_442_433);
    assert_eq!(guest["measurements"][1]["op"], "rnd_write");
    // Other commands write no workloads at all.
    assert!(serde_json::to_value(boot_report()).unwrap().get("workloads").is_none());
    let mut value = serde_json::to_value(guest_report()).unwrap();
    value["workloads"]["host"][0]["measurements"][0]["values"]["speed"] = 1.into();
    value["workloads"]["host"][0]["measurements"][0]["workload"] = "gpu".into();
    assert_eq!(errors(&value).len(), 2, "{:?}", errors(&value));
}

#[test]
fn the_schema_refuses_what_a_report_never_contains() {
    let mut value = serde_json::to_value(boot_report()).unwrap();
    value["command"] = "guess".into();
    value["groups"][0]["runs"][0]["exits"]["by_reason"]["teleport"] = 1.into();
    value["groups"][0]["runs"][0]["exit_s"] = (-1.0).into();
    value["surprise"] = true.into();
    assert_eq!(errors(&value).len(), 4, "{:?}", errors(&value));
}
