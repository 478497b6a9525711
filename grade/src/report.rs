//! The score table (xv6's `make grade`, in spirit) and the JSON results for a gradebook.

use crate::grading::{CheckRow, Report, StageStatus, Status};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::IsTerminal;

/// The version of the JSON results format (`grade/schema/results.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// Whether to colour the table: only on a terminal, and not when `NO_COLOR` is set.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The table: one line per check (stage, checkpoint / check, points, result, time), under a
/// failed check the expected pattern and the relevant output, then per-stage totals and
/// `Score: X/Y`.
pub fn table(report: &Report, colour: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<5}  {:<66}  {:>6}  {:<4}  {:>6}", "stage", "checkpoint / check", "points", "", "time");
    for stage in &report.stages {
        if stage.status == StageStatus::NoCheckpoints {
            let _ = writeln!(out, "{:<5}  {}", stage.stage, paint(&format!("({})", stage.message), "2", colour));
            continue;
        }
        for row in &stage.checks {
            // The exit code is worth no points: show it only when it says something.
            if row.points.possible == 0 && row.status == Status::Pass {
                continue;
            }
            let name = format!("{} / {}", row.checkpoint, row.check);
            let (word, code) = match row.status {
                Status::Pass => ("OK", "32"),
                Status::Fail => ("FAIL", "31"),
                Status::Error => ("ERR", "31"),
                Status::Skipped => ("SKIP", "33"),
            };
            let _ = writeln!(
                out,
                "{:<5}  {:<66}  {:>6}  {}  {:>5.1}s",
                row.stage,
                truncate(&name, 66),
                format!("{}/{}", row.points.earned, row.points.possible),
                paint(&format!("{word:<4}"), code, colour),
                row.seconds
            );
            if row.status == Status::Pass || row.status == Status::Skipped {
                continue;
            }
            if !row.expected.is_empty() {
                let verb = if row.absent { "must not match" } else { "expected" };
                let _ = writeln!(out, "       {verb}: /{}/", row.expected);
            }
            if !row.message.is_empty() && !row.message.starts_with("expected output matching") {
                let _ = writeln!(out, "       {}", row.message);
            }
            if !row.output_excerpt.is_empty() && !shown_before(report, row) {
                let _ = writeln!(out, "       output:");
                for line in row.output_excerpt.lines() {
                    let _ = writeln!(out, "         | {line}");
                }
            }
        }
    }
    let _ = writeln!(out);
    for stage in &report.stages {
        let note = match stage.status {
            StageStatus::Graded => String::new(),
            _ => format!("  ({})", stage.message),
        };
        let _ = writeln!(out, "stage {}: {}/{}{note}", stage.stage, stage.points.earned, stage.points.possible);
    }
    let score = format!("Score: {}/{}", report.points.earned, report.points.possible);
    let _ = writeln!(out, "{}", paint(&score, if report.full_marks() { "1;32" } else { "1;31" }, colour));
    out
}

/// What a check that did not pass has to say, for the formats that give each check a text of
/// its own (Gradescope's test output, JUnit's failure, GitHub Classroom's message): why, the
/// pattern expected, and the relevant output. Empty for a check that passed.
pub fn failure_text(row: &CheckRow) -> String {
    let mut out = String::new();
    if row.status == Status::Pass {
        return out;
    }
    if !row.message.is_empty() {
        let _ = writeln!(out, "{}", row.message);
    }
    if !row.expected.is_empty() && !row.message.contains(&row.expected) {
        let verb = if row.absent { "must not match" } else { "expected" };
        let _ = writeln!(out, "{verb}: /{}/", row.expected);
    }
    if !row.output_excerpt.is_empty() {
        let _ = writeln!(out, "output:");
        for line in row.output_excerpt.lines() {
            let _ = writeln!(out, "  | {line}");
        }
    }
    out
}

/// The name of a check across stages: `stage 1: hello / prints HELLO, WORLD!`.
pub fn check_name(row: &CheckRow) -> String {
    format!("stage {}: {} / {}", row.stage, row.checkpoint, row.check)
}

/// One line per stage (`stage 1: 5/10`, and why when it was not graded), then, when this
/// machine had no KVM, a line that says how many checks could not run, and `Score: X/Y`.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    for stage in &report.stages {
        let note = match stage.status {
            StageStatus::Graded => String::new(),
            _ => format!(" ({})", stage.message),
        };
        let _ = writeln!(out, "stage {}: {}/{}{note}", stage.stage, stage.points.earned, stage.points.possible);
    }
    let rows = report.stages.iter().flat_map(|s| &s.checks);
    let without_kvm: Vec<&CheckRow> = rows.filter(|r| crate::grading::lacked_kvm(r)).collect();
    if let Some(first) = without_kvm.first() {
        let _ = writeln!(out, "{} checks could not run: each {}", without_kvm.len(), first.message);
    }
    let _ = writeln!(out, "Score: {}/{}", report.points.earned, report.points.possible);
    out
}

/// Whether an earlier failed row of the same run already showed this output.
fn shown_before(report: &Report, row: &crate::grading::CheckRow) -> bool {
    let rows = report.stages.iter().flat_map(|s| &s.checks);
    for earlier in rows {
        if std::ptr::eq(earlier, row) {
            return false;
        }
        let failed = earlier.status == Status::Fail || earlier.status == Status::Error;
        if failed && earlier.stage == row.stage && earlier.checkpoint == row.checkpoint {
            return earlier.output_excerpt == row.output_excerpt;
        }
    }
    false
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        text.chars().take(width - 1).chain(['…']).collect()
    }
}

/// The JSON document: `grade/schema/results.schema.json`.
#[derive(Serialize)]
struct Results<'a> {
    schema_version: u32,
    tool: String,
    repo: String,
    status: &'static str,
    points: crate::grading::Points,
    seconds: f64,
    stages: Vec<StageSummary>,
    checks: Vec<&'a crate::grading::CheckRow>,
}

#[derive(Serialize)]
struct StageSummary {
    stage: u32,
    status: StageStatus,
    message: String,
    points: crate::grading::Points,
    build_seconds: f64,
}

/// The results as JSON, for a course's own gradebook.
pub fn json(report: &Report) -> String {
    let results = Results {
        schema_version: SCHEMA_VERSION,
        tool: format!("minivirt grade {}", env!("CARGO_PKG_VERSION")),
        repo: report.repo.display().to_string(),
        status: if report.full_marks() { "pass" } else { "fail" },
        points: report.points,
        seconds: report.seconds,
        stages: report
            .stages
            .iter()
            .map(|s| StageSummary {
                stage: s.stage,
                status: s.status,
                message: s.message.clone(),
                points: s.points,
                build_seconds: s.build_seconds,
            })
            .collect(),
        checks: report.stages.iter().flat_map(|s| &s.checks).collect(),
    };
    serde_json::to_string_pretty(&results).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
