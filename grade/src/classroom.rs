//! GitHub Classroom: the result its reporter action reads, and the workflow a handout carries.
//!
//! GitHub Classroom's autograding runs a workflow in the student's repository. Each grading
//! step sets a step output `result`: base64 of a JSON document `{version, status, max_score,
//! tests}`; the reporter action (`classroom-resources/autograding-grading-reporter`) reads it
//! from an environment variable `<STEP ID>_RESULTS`, prints it, and sends GitHub Classroom the
//! sum of the tests' `score` out of the sum of `max_score`. `grade --classroom` is such a step:
//! one test per check, with that check's points.
//!
//! The reporter's console table is computed differently: passed tests ÷ tests × `max_score`.
//! Checks are worth different points, so that line can differ from the grade; the grade sent
//! to Classroom and the grader's own table above it are exact.
//!
//! # Resources
//! - The result's producers and reader: `src/main.js` of
//!   <https://github.com/classroom-resources/autograding-command-grader> (`generateResult`) and
//!   `src/main.js`, `src/notify-classroom.js` of
//!   <https://github.com/classroom-resources/autograding-grading-reporter>.
//! - Step outputs through `$GITHUB_OUTPUT`:
//!   <https://docs.github.com/en/actions/using-workflows/workflow-commands-for-github-actions#setting-an-output-parameter>

use crate::grading::{Report, Status};
use crate::report::{check_name, failure_text};
use base64::Engine as _;
use serde::Serialize;
use std::io::Write as _;
use std::path::Path;

/// The workflow a handout carries at [`WORKFLOW_PATH`]: checkout, `/dev/kvm` opened to the
/// runner's user by a udev rule, the lab guest cached by its inputs, `grade --classroom`, and
/// the reporter.
pub const WORKFLOW: &str = include_str!("../templates/classroom.yml");

/// Where a handout carries [`WORKFLOW`].
pub const WORKFLOW_PATH: &str = ".github/workflows/classroom.yml";

/// The most bytes of base64 the result may take. The reporter receives it in an environment
/// variable, and Linux refuses to start a program with one string in its environment longer
/// than 128 KiB (`MAX_ARG_STRLEN`); the failure texts are shortened until it fits.
pub const MAX_ENCODED: usize = 96 * 1024;

/// The reporter's result document.
#[derive(Serialize)]
struct ClassroomResult {
    version: u32,
    /// `pass` (every point), `fail` (a check failed), `error` (points lost only to checks that
    /// could not run: a build error, no KVM).
    status: &'static str,
    max_score: u32,
    tests: Vec<Test>,
}

#[derive(Serialize)]
struct Test {
    name: String,
    /// `pass`, `fail` or `error` (the reporter prints the message of an error).
    status: &'static str,
    score: u32,
    /// What a student needs when the check did not pass; empty when it did.
    message: String,
    /// What the check looks for (the reporter prints it as "Test code").
    test_code: String,
    filename: &'static str,
    /// 0: the reporter then prints no line number.
    line_no: u32,
    /// Milliseconds the checkpoint's run took.
    duration: u64,
}

/// The result as JSON, each failure text cut to `max_message` characters.
pub fn result_json(report: &Report, max_message: usize) -> String {
    let rows: Vec<_> = report.stages.iter().flat_map(|s| &s.checks).collect();
    let failed = rows.iter().any(|r| matches!(r.status, Status::Fail | Status::Skipped));
    let status = match (report.full_marks(), failed) {
        (true, _) => "pass",
        (false, true) => "fail",
        (false, false) => "error",
    };
    let tests = rows
        .iter()
        .map(|row| Test {
            name: check_name(row),
            status: match row.status {
                Status::Pass => "pass",
                Status::Fail | Status::Skipped => "fail",
                Status::Error => "error",
            },
            score: row.points.earned,
            message: cut(&failure_text(row), max_message),
            test_code: match (row.expected.is_empty(), row.absent) {
                (true, _) => format!("{}: exit code as expected", row.checkpoint),
                (false, false) => format!("output matches /{}/", row.expected),
                (false, true) => format!("output does not match /{}/", row.expected),
            },
            filename: "",
            line_no: 0,
            duration: (row.seconds * 1000.0).round() as u64,
        })
        .collect();
    let result = ClassroomResult { version: 1, status, max_score: report.points.possible, tests };
    serde_json::to_string(&result)
        .unwrap_or_else(|e| format!("{{\"version\": 1, \"status\": \"error\", \"error\": \"{e}\"}}"))
}

/// The step output's value: the result in base64, at most [`MAX_ENCODED`] bytes (failure texts
/// are shortened, and dropped at the last, until it fits).
pub fn encoded_result(report: &Report) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut encoded = String::new();
    for max_message in [4000, 1500, 500, 120, 0] {
        encoded = engine.encode(result_json(report, max_message));
        if encoded.len() <= MAX_ENCODED {
            break;
        }
    }
    encoded
}

/// Appends `result=<base64>` to the file `$GITHUB_OUTPUT` names (how a step sets an output).
///
/// # Errors
///
/// When the file cannot be opened or written.
pub fn write_step_output(github_output: &Path, report: &Report) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(github_output)?;
    writeln!(file, "result={}", encoded_result(report))
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
