//! The checkpoint harness: runs a stage binary with a timeout and matches its output.
//!
//! Checkpoints are data (`tests/checkpoints/stageNN.toml`): a run is a command line, optional
//! standard input and a timeout; each run carries graded checks (a regular expression over the
//! output, worth some points) and an expected exit code. Every stage's `cargo test` runs its
//! file through [`assert_stage_passes`]; the grader reads the same files.
#![deny(missing_docs)]

pub mod during;
pub mod guest;
pub mod run;
pub mod spec;

pub use run::{run_checkpoint, CheckResult, Ending, RunResult};
pub use spec::{load_file, load_stage, stage_file, Check, Checkpoint, Step};

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Fails (never skips) when KVM is missing, saying so in one line.
pub fn require_kvm() {
    let kvm = Path::new("/dev/kvm");
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(kvm) {
        panic!("this checkpoint needs KVM, and /dev/kvm cannot be opened ({e}): run it on a Linux machine with KVM");
    }
}

/// Runs every checkpoint of stage `stage` against `binary` and panics with a report if any
/// check fails. Prints one line per check either way.
pub fn assert_stage_passes(stage: u32, binary: &str) {
    let checkpoints = load_stage(&repo_root(), stage).unwrap_or_else(|e| panic!("{e}"));
    assert!(!checkpoints.is_empty(), "stage {stage} has no checkpoints");
    let mut failures = Vec::new();
    for checkpoint in &checkpoints {
        let result = run_checkpoint(checkpoint, Path::new(binary), &repo_root());
        for check in &result.checks {
            let mark = if check.passed { "PASS" } else { "FAIL" };
            eprintln!("stage {stage} {} / {}: {mark} ({:.1} s)", checkpoint.name, check.name, result.seconds);
        }
        if !result.passed() {
            failures.push(result.report());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
