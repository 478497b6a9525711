//! The Markdown tables on stdout: min / median / max per VMM (`bench boot`), and each switch's
//! effect against the baseline (`bench exits`).

use crate::report::{BenchReport, BootRun, Group};
use crate::summary::Summary;
use std::collections::BTreeSet;
use std::fmt::Write;

const MIB: f64 = 1024.0 * 1024.0;

/// The figures of a group's runs.
fn ready(group: &Group) -> Option<Summary> {
    Summary::of(group.runs.iter().filter_map(|r| r.ready_s))
}
fn exit(group: &Group) -> Option<Summary> {
    Summary::of(group.runs.iter().filter(|r| r.failure.is_none()).map(|r| r.exit_s))
}
fn exits(group: &Group) -> Option<Summary> {
    Summary::of(group.runs.iter().filter_map(|r| r.exits.as_ref()).map(|e| e.total as f64))
}
fn emulated(group: &Group) -> Option<Summary> {
    Summary::of(group.runs.iter().filter_map(|r| r.emulated_instructions).map(|n| n as f64))
}
fn overhead_mib(group: &Group) -> Option<Summary> {
    Summary::of(group.runs.iter().filter_map(|r| r.overhead_bytes).map(|b| b as f64 / MIB))
}
fn reason(group: &Group, reason: &str) -> Option<Summary> {
    let counts = group.runs.iter().filter_map(|r| r.exits.as_ref());
    Summary::of(counts.map(|e| e.by_reason.get(reason).copied().unwrap_or(0) as f64))
}

/// `min / median / max` with `decimals` decimals, or `–` when nothing was measured.
pub fn spread(summary: Option<Summary>, decimals: usize) -> String {
    match summary {
        Some(s) => format!("{:.d$} / {:.d$} / {:.d$}", s.min, s.median, s.max, d = decimals),
        None => "–".into(),
    }
}

/// The median alone, or `–`.
fn median(summary: Option<Summary>, decimals: usize) -> String {
    summary.map_or_else(|| "–".into(), |s| format!("{:.d$}", s.median, d = decimals))
}

/// The change from `before` to `after` as a factor, `×0.25` (four times fewer), or `–`.
pub fn factor(before: Option<Summary>, after: Option<Summary>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if b.median > 0.0 => format!("×{:.2}", a.median / b.median),
        _ => "–".into(),
    }
}

/// Runs that did not finish normally, as a footnote line per run.
fn failures(report: &BenchReport) -> String {
    let mut text = String::new();
    for group in &report.groups {
        for (i, run) in group.runs.iter().enumerate() {
            if let Some(why) = &run.failure {
                let _ = writeln!(text, "- {} run {}: {why}", group.name, i + 1);
            }
        }
    }
    text
}

/// Notes, skipped parts and the interruption, under a table.
pub(crate) fn footer(report: &BenchReport) -> String {
    let mut text = String::new();
    for group in &report.groups {
        for note in &group.notes {
            let _ = writeln!(text, "- {}: {note}", group.name);
        }
    }
    for skipped in &report.skipped {
        let _ = writeln!(text, "- skipped: {skipped}");
    }
    text.push_str(&failures(report));
    if report.interrupted {
        text.push_str("- interrupted (Ctrl-C): the table holds the runs finished before\n");
    }
    if text.is_empty() {
        text
    } else {
        format!("\n{text}")
    }
}

/// `bench boot`: one row per VMM.
pub fn boot_table(report: &BenchReport) -> String {
    let mut text = String::from(
        "| VMM | runs | boot-complete (s) min / median / max | exit (s) min / median / max | exits per boot (median) | instructions KVM emulated (median) | VMM overhead (MiB) min / median / max |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for group in &report.groups {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} |",
            group.name,
            group.runs.len(),
            spread(ready(group), 2),
            spread(exit(group), 2),
            median(exits(group), 0),
            median(emulated(group), 0),
            spread(overhead_mib(group), 2),
        );
    }
    text + &footer(report)
}

/// `bench exits`: each switch against the first group (the baseline), then exits by reason.
pub fn exits_table(report: &BenchReport) -> String {
    let Some(baseline) = report.groups.first() else {
        return footer(report);
    };
    let mut text = String::from(
        "| experiment | switch | runs | exits per boot (median) | vs baseline | instructions KVM emulated (median) | vs baseline | boot-complete (s, median) | vs baseline |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for group in &report.groups {
        let switch = if group.switch.is_empty() { "(none)".to_string() } else { format!("`{}`", group.switch) };
        let _ = writeln!(
            text,
            "| {} | {switch} | {} | {} | {} | {} | {} | {} | {} |",
            group.name,
            group.runs.len(),
            median(exits(group), 0),
            factor(exits(baseline), exits(group)),
            median(emulated(group), 0),
            factor(emulated(baseline), emulated(group)),
            median(ready(group), 1),
            factor(ready(baseline), ready(group)),
        );
    }
    let reasons: BTreeSet<&str> = report
        .groups
        .iter()
        .flat_map(|g| g.runs.iter().filter_map(|r| r.exits.as_ref()))
        .flat_map(|e| e.by_reason.keys().map(String::as_str))
        .collect();
    if !reasons.is_empty() {
        text.push_str("\nExits per boot by reason (median):\n\n| reason |");
        for group in &report.groups {
            let _ = write!(text, " {} |", group.name);
        }
        text.push_str("\n|---|");
        text.push_str(&"---|".repeat(report.groups.len()));
        text.push('\n');
        for name in reasons {
            let _ = write!(text, "| {name} |");
            for group in &report.groups {
                let _ = write!(text, " {} |", median(reason(group, name), 0));
            }
            text.push('\n');
        }
    }
    if let Some(run) = baseline.runs.iter().find(|r| r.exits.as_ref().is_some_and(|e| !e.top_functions.is_empty())) {
        let _ = write!(
            text,
            "\nWhere the baseline's exits come from (one boot):\n\n| guest function | exits |\n|---|---|\n"
        );
        for f in run.exits.iter().flat_map(|e| &e.top_functions) {
            let _ = writeln!(text, "| {} | {} |", f.function, f.exits);
        }
    }
    text + &footer(report)
}

/// The table for the report's command.
pub fn table(report: &BenchReport) -> String {
    match report.command.as_str() {
        "exits" => exits_table(report),
        "guest" => crate::guest::table(report),
        _ => boot_table(report),
    }
}

/// A run as one progress line: `ready 81.3 s, exit 84.0 s, 87012 exits`.
pub fn run_line(run: &BootRun) -> String {
    let mut line = match run.ready_s {
        Some(s) => format!("ready {s:.1} s, exit {:.1} s", run.exit_s),
        None => format!("no marker, stopped after {:.1} s", run.exit_s),
    };
    if let Some(exits) = &run.exits {
        let _ = write!(line, ", {} exits", exits.total);
    }
    if let Some(why) = &run.failure {
        let _ = write!(line, " ({why})");
    }
    line
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{ExitCounts, FunctionExits};

    pub(crate) fn run(ready: f64, total: u64, mmio: u64, overhead_mib: u64) -> BootRun {
        BootRun {
            ready_s: Some(ready),
            exit_s: ready + 1.0,
            boot_timer_s: Some(ready - 0.5),
            exits: Some(ExitCounts {
                total,
                by_reason: [("io_out".to_string(), total - mmio), ("mmio_read".to_string(), mmio)].into(),
                top_functions: vec![FunctionExits { function: "pcibios_irq_init".into(), exits: mmio }],
            }),
            emulated_instructions: Some(total * 1000),
            overhead_bytes: Some(overhead_mib << 20),
            overhead_source: Some("stats JSON".into()),
            failure: None,
        }
    }

    pub(crate) fn boot_report() -> BenchReport {
        let mut report = BenchReport::new("boot", "minivirt_run=\"true\"");
        report.groups.push(Group {
            name: "minivirt stage08".into(),
            runs: vec![run(80.0, 1000, 800, 2), run(90.0, 1200, 800, 3), run(100.0, 1100, 800, 2)],
            ..Default::default()
        });
        report.groups.push(Group {
            name: "QEMU 7.2.0 (TCG)".into(),
            accel: Some("tcg".into()),
            notes: vec!["KVM stopped on the kernel's int3".into()],
            runs: vec![BootRun {
                ready_s: Some(2.5),
                exit_s: 2.75,
                overhead_bytes: Some(40 << 20),
                ..Default::default()
            }],
            ..Default::default()
        });
        report
    }

    #[test]
    fn the_boot_table_has_min_median_max_per_vmm() {
        let table = boot_table(&boot_report());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[2],
            "| minivirt stage08 | 3 | 80.00 / 90.00 / 100.00 | 81.00 / 91.00 / 101.00 | 1100 | 1100000 | 2.00 / 2.00 / 3.00 |"
        );
        assert_eq!(
            lines[3],
            "| QEMU 7.2.0 (TCG) | 1 | 2.50 / 2.50 / 2.50 | 2.75 / 2.75 / 2.75 | – | – | 40.00 / 40.00 / 40.00 |"
        );
        assert!(table.contains("- QEMU 7.2.0 (TCG): KVM stopped on the kernel's int3"), "{table}");
    }

    #[test]
    fn failed_runs_are_footnotes_and_do_not_count_as_exits() {
        let mut report = boot_report();
        report.groups[0].runs.push(BootRun {
            exit_s: 600.0,
            failure: Some("timeout after 600 s".into()),
            ..Default::default()
        });
        report.interrupted = true;
        report.skipped.push("QEMU: not installed".into());
        let table = boot_table(&report);
        assert!(
            table.contains("| minivirt stage08 | 4 | 80.00 / 90.00 / 100.00 | 81.00 / 91.00 / 101.00 |"),
            "{table}"
        );
        assert!(table.contains("- minivirt stage08 run 4: timeout after 600 s"), "{table}");
        assert!(table.contains("- skipped: QEMU: not installed") && table.contains("interrupted (Ctrl-C)"), "{table}");
    }

    #[test]
    fn the_exits_table_compares_each_switch_with_the_baseline() {
        let mut report = BenchReport::new("exits", "");
        report.groups.push(Group {
            name: "baseline".into(),
            runs: vec![run(80.0, 1000, 800, 2)],
            ..Default::default()
        });
        report.groups.push(Group {
            name: "quiet".into(),
            switch: "quiet".into(),
            runs: vec![run(60.0, 250, 200, 2)],
            ..Default::default()
        });
        let table = exits_table(&report);
        assert!(table.contains("| baseline | (none) | 1 | 1000 | ×1.00 | 1000000 | ×1.00 | 80.0 | ×1.00 |"), "{table}");
        assert!(table.contains("| quiet | `quiet` | 1 | 250 | ×0.25 | 250000 | ×0.25 | 60.0 | ×0.75 |"), "{table}");
        assert!(
            table.contains(
                "| reason | baseline | quiet |\n|---|---|---|\n| io_out | 200 | 50 |\n| mmio_read | 800 | 200 |"
            ),
            "{table}"
        );
        assert!(table.contains("| pcibios_irq_init | 800 |"), "{table}");
    }

    #[test]
    fn nothing_measured_shows_dashes() {
        assert_eq!(spread(None, 2), "–");
        assert_eq!(factor(None, Summary::of([1.0])), "–");
        assert_eq!(
            run_line(&BootRun { exit_s: 3.0, failure: Some("interrupted".into()), ..Default::default() }),
            "no marker, stopped after 3.0 s (interrupted)"
        );
    }
}
