//! Gradescope's `results.json`: one test per check, numbered `stage.index`, with the points,
//! `passed`/`failed`, and for a failed check why (the build's errors, the missing KVM, the
//! pattern expected and the relevant output).
//!
//! The shape is checked against `grade/schema/gradescope-results.schema.json`, written from
//! Gradescope's specification.
//!
//! # Resources
//! - Gradescope, "Autograder Specifications", Output format:
//!   <https://gradescope-autograders.readthedocs.io/en/latest/specs/>

use crate::grading::{Report, Status};
use crate::report::{check_name, failure_text, summary};
use serde::Serialize;

/// Who sees a test: Gradescope's `visible` (always), `hidden`, `after_due_date`,
/// `after_published`. Every test is visible: the checkpoints are in the handout.
pub const VISIBILITY: &str = "visible";

/// The document Gradescope reads from `/autograder/results/results.json`.
#[derive(Serialize)]
struct Results {
    /// The submission's points (Gradescope would add the tests' scores up; said explicitly).
    score: u32,
    /// Whole seconds the grading took.
    execution_time: u64,
    /// Text for the whole submission: the per-stage lines and `Score: X/Y`.
    output: String,
    /// Plain text: no HTML or Markdown in a compiler's errors gets rendered.
    output_format: &'static str,
    tests: Vec<Test>,
}

#[derive(Serialize)]
struct Test {
    name: String,
    number: String,
    score: u32,
    max_score: u32,
    status: &'static str,
    output: String,
    output_format: &'static str,
    visibility: &'static str,
}

/// The report as Gradescope's `results.json`.
pub fn results_json(report: &Report) -> String {
    let mut tests = Vec::new();
    for stage in &report.stages {
        for (index, row) in stage.checks.iter().enumerate() {
            tests.push(Test {
                name: check_name(row),
                number: format!("{}.{}", row.stage, index + 1),
                score: row.points.earned,
                max_score: row.points.possible,
                status: if row.status == Status::Pass { "passed" } else { "failed" },
                output: failure_text(row),
                output_format: "text",
                visibility: VISIBILITY,
            });
        }
    }
    let results = Results {
        score: report.points.earned,
        execution_time: report.seconds.round() as u64,
        output: summary(report),
        output_format: "text",
        tests,
    };
    serde_json::to_string_pretty(&results).unwrap_or_else(|e| format!("{{\"score\": 0, \"output\": \"{e}\"}}"))
}
