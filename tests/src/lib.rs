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

/// The environment variable that points the harness at another KVM device than `/dev/kvm`.
///
/// A seam for tests of what grading reports on a machine without KVM (Gradescope's containers
/// have none): `MINIVIRT_KVM_DEVICE=/nonexistent` makes every checkpoint that needs KVM say so
/// instead of running. It changes only the harness's check; the stage binaries always open
/// `/dev/kvm`.
pub const KVM_DEVICE_VAR: &str = "MINIVIRT_KVM_DEVICE";

/// The KVM device the harness checks: `/dev/kvm`, or [`KVM_DEVICE_VAR`] when set.
pub fn kvm_device() -> PathBuf {
    std::env::var_os(KVM_DEVICE_VAR).filter(|v| !v.is_empty()).map_or_else(|| PathBuf::from("/dev/kvm"), PathBuf::from)
}

/// Why KVM cannot be used, if it cannot: the device does not open for reading and writing.
pub fn kvm_problem() -> Option<String> {
    let kvm = kvm_device();
    let opened = std::fs::OpenOptions::new().read(true).write(true).open(&kvm);
    opened.err().map(|e| format!("needs KVM, and {} cannot be opened ({e})", kvm.display()))
}

/// Fails (never skips) when KVM is missing, saying so in one line.
pub fn require_kvm() {
    if let Some(problem) = kvm_problem() {
        panic!("this checkpoint {problem}: run it on a Linux machine with KVM");
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
