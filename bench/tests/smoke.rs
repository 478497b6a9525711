//! The smoke checkpoint: `bench boot --runs 1` (minivirt only) boots the lab guest once with
//! stage 8 and prints its table. NEEDS KVM: without /dev/kvm it fails with one line saying so
//! (checkpoints::require_kvm), never a silent pass. Boots Linux once: 1–3 minutes here.

use std::process::Command;

#[test]
fn bench_boot_runs_once_and_prints_the_table() {
    checkpoints::require_kvm();
    let repo = checkpoints::repo_root();
    checkpoints::guest::ensure_built(&repo).unwrap_or_else(|e| panic!("{e}"));
    let work = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let json = work.join("boot.json");
    let plots = work.join("plots");

    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["boot", "--runs", "1", "--timeout", "600", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&plots)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "bench boot failed ({}):\n{stdout}\n{stderr}", output.status);

    // The table: a header, and one row for stage 8 with every figure measured.
    let row = regex::Regex::new(
        r"(?m)^\| minivirt stage08 \| 1 \| ([0-9.]+) / [0-9.]+ / [0-9.]+ \| ([0-9.]+) / [0-9.]+ / [0-9.]+ \| ([0-9]+) \| ([0-9]+|–) \| ([0-9.]+) / [0-9.]+ / [0-9.]+ \|$",
    )
    .unwrap();
    assert!(stdout.starts_with("| VMM | runs | boot-complete (s) min / median / max |"), "{stdout}");
    let fields =
        row.captures(&stdout).unwrap_or_else(|| panic!("no stage08 row with every figure:\n{stdout}\n{stderr}"));
    let number = |i: usize| fields[i].parse::<f64>().unwrap();
    let (ready, exit, exits, overhead_mib) = (number(1), number(2), number(3), number(5));
    assert!(ready > 0.0 && ready < exit, "boot-complete {ready} s comes before the exit {exit} s");
    assert!(exits > 100.0, "a Linux boot makes more than {exits} exits to the VMM");
    assert!(overhead_mib > 0.0 && overhead_mib < 256.0, "the VMM's own memory: {overhead_mib} MiB");
    assert!(!stdout.contains("- skipped") && !stdout.contains("run 1:"), "no failure, no skip:\n{stdout}");

    // The JSON says the same, and the plot was drawn.
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let run = &report["groups"][0]["runs"][0];
    assert_eq!(run["exits"]["total"].as_f64(), Some(exits));
    // KVM's insn_emulation where the host offers its statistics, `–` in the table otherwise.
    assert_eq!(run["emulated_instructions"].as_u64(), fields[4].parse::<u64>().ok());
    assert!(run["boot_timer_s"].as_f64().is_some_and(|s| s > 0.0 && s <= ready), "{run}");
    assert!(std::fs::read_to_string(plots.join("boot-time.svg")).unwrap().contains("<circle"));
    std::fs::remove_dir_all(work).unwrap();
}
