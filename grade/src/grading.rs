//! Grading a tree: build each stage's binary, run its checkpoints, collect the results.

use checkpoints::{load_file, run_checkpoint, stage_file, Checkpoint};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// How many lines of output a failed check shows.
pub const EXCERPT_LINES: usize = 20;

/// What to grade, and how.
#[derive(Debug, Clone)]
pub struct GradeOptions {
    /// The tree to grade.
    pub repo: PathBuf,
    /// The stages to grade; empty means every stage folder of the tree.
    pub stages: Vec<u32>,
    /// Where cargo builds the tree.
    pub target_dir: PathBuf,
    /// Where the checkpoint files are (`stageNN.toml`).
    pub checkpoints_dir: PathBuf,
    /// Stop a stage at its first lost point (the author check only needs to see one).
    pub stop_at_first_failure: bool,
    /// Say on stderr what is being built and run.
    pub progress: bool,
}

/// The result of one graded check, one row of the table and of the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    /// The stage.
    pub stage: u32,
    /// The checkpoint (one run of the stage binary).
    pub checkpoint: String,
    /// The check.
    pub check: String,
    /// `pass`, `fail`, `error` (could not run), or `skipped` (not run).
    pub status: Status,
    /// Points earned and possible.
    pub points: Points,
    /// Why it did not pass; empty when it did.
    pub message: String,
    /// The pattern the output had to match (empty for the exit code check).
    pub expected: String,
    /// Whether the pattern had to be absent instead.
    pub absent: bool,
    /// The relevant end of the output, when the check did not pass.
    pub output_excerpt: String,
    /// Seconds the checkpoint's run took.
    pub seconds: f64,
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The output matched.
    Pass,
    /// It did not.
    Fail,
    /// The binary could not be built or run.
    Error,
    /// Not run (`stop_at_first_failure`).
    Skipped,
}

/// Points earned out of possible.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Points {
    /// Earned.
    pub earned: u32,
    /// Possible.
    pub possible: u32,
}

impl std::ops::AddAssign for Points {
    fn add_assign(&mut self, other: Points) {
        self.earned += other.earned;
        self.possible += other.possible;
    }
}

/// One stage's results.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    /// The stage.
    pub stage: u32,
    /// `graded`, `no_checkpoints` (no checkpoint file: nothing to grade) or `build_failed`.
    pub status: StageStatus,
    /// What went wrong, if anything.
    pub message: String,
    /// Points over the stage's checks.
    pub points: Points,
    /// Seconds for the build.
    pub build_seconds: f64,
    /// The checks.
    pub checks: Vec<CheckRow>,
}

/// A stage's outcome as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Its checkpoints ran.
    Graded,
    /// It has no checkpoint file yet.
    NoCheckpoints,
    /// Its binary did not build (every check is an error).
    BuildFailed,
}

/// Every stage's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The tree graded.
    pub repo: PathBuf,
    /// Points over all stages.
    pub points: Points,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The stages.
    pub stages: Vec<StageResult>,
}

impl Report {
    /// Whether every point was earned.
    pub fn full_marks(&self) -> bool {
        self.points.earned == self.points.possible
    }
}

/// The stage folders of the tree: `stages/NN-name` → NN, sorted.
pub fn stage_numbers(repo: &Path) -> Vec<u32> {
    let mut numbers: Vec<u32> = std::fs::read_dir(repo.join("stages"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_string_lossy().split('-').next()?.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// The stages that have a checkpoint file in `dir` (`stageNN.toml` → NN), sorted: what an
/// instructor's own copy of the checkpoints grades, whatever stage folders a submission has.
pub fn checkpoint_stages(dir: &Path) -> Vec<u32> {
    let mut numbers: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("stage")?.strip_suffix(".toml")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// The report for a tree that could not be graded at all (its copy failed, say): every check
/// of `options.stages` is an error that says `message`, so that every output format still
/// lists the checks and their points.
pub fn not_graded(options: &GradeOptions, message: &str) -> Report {
    let mut report = Report { repo: options.repo.clone(), points: Points::default(), seconds: 0.0, stages: Vec::new() };
    for &stage in &options.stages {
        let checkpoints = load_file(&stage_file(&options.checkpoints_dir, stage)).unwrap_or_default();
        let checks: Vec<CheckRow> =
            checkpoints.iter().flat_map(|c| unrun_rows(stage, c, Status::Error, message, "")).collect();
        let points = sum(&checks);
        report.points += points;
        report.stages.push(StageResult {
            stage,
            status: StageStatus::BuildFailed,
            message: message.to_string(),
            points,
            build_seconds: 0.0,
            checks,
        });
    }
    report
}

/// The target directory cargo uses for `repo` when nothing else is said: `CARGO_TARGET_DIR`
/// for this tool's own tree, `repo/target` for any other.
pub fn default_target_dir(repo: &Path) -> PathBuf {
    let own = checkpoints::repo_root().canonicalize().ok();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if own.is_some() && repo.canonicalize().ok() == own => PathBuf::from(dir),
        _ => repo.join("target"),
    }
}

/// Grades the stages of `options.repo`.
pub fn grade(options: &GradeOptions) -> Report {
    let start = Instant::now();
    let stages = if options.stages.is_empty() { stage_numbers(&options.repo) } else { options.stages.clone() };
    let mut report = Report { repo: options.repo.clone(), points: Points::default(), seconds: 0.0, stages: Vec::new() };
    for stage in stages {
        let result = grade_stage(options, stage);
        report.points += result.points;
        report.stages.push(result);
    }
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// Grades one stage: loads its checkpoints, builds its binary, runs them.
pub fn grade_stage(options: &GradeOptions, stage: u32) -> StageResult {
    let mut result = StageResult {
        stage,
        status: StageStatus::Graded,
        message: String::new(),
        points: Points::default(),
        build_seconds: 0.0,
        checks: Vec::new(),
    };
    let file = stage_file(&options.checkpoints_dir, stage);
    if !file.exists() {
        result.status = StageStatus::NoCheckpoints;
        result.message = format!("no checkpoint file {}", file.display());
        return result;
    }
    let checkpoints = match load_file(&file) {
        Ok(checkpoints) => checkpoints,
        Err(e) => {
            result.status = StageStatus::BuildFailed;
            result.message = e;
            return result;
        }
    };
    if options.progress {
        eprintln!("grade: building stage {stage} in {}", options.repo.display());
    }
    let build_start = Instant::now();
    let binary = build_stage(&options.repo, &options.target_dir, stage);
    result.build_seconds = build_start.elapsed().as_secs_f64();
    let binary = match binary {
        Ok(binary) => binary,
        Err((message, log)) => {
            result.status = StageStatus::BuildFailed;
            result.message = message.clone();
            for checkpoint in &checkpoints {
                result.checks.extend(unrun_rows(stage, checkpoint, Status::Error, &message, &log));
            }
            result.points = sum(&result.checks);
            return result;
        }
    };
    let kvm = kvm_problem();
    let mut stopped = false;
    for checkpoint in &checkpoints {
        if stopped {
            result.checks.extend(unrun_rows(
                stage,
                checkpoint,
                Status::Skipped,
                "not run: an earlier check failed",
                "",
            ));
            continue;
        }
        if let (true, Some(problem)) = (checkpoint.needs_kvm, &kvm) {
            result.checks.extend(unrun_rows(stage, checkpoint, Status::Error, problem, ""));
            continue;
        }
        if options.progress {
            eprintln!("grade: stage {stage}: {} (timeout {} s)", checkpoint.name, checkpoint.timeout);
        }
        let run = run_checkpoint(checkpoint, &binary, &options.repo);
        let excerpt = run.excerpt(EXCERPT_LINES);
        for check in &run.checks {
            let status = match (check.passed, run.ending) {
                (true, _) => Status::Pass,
                (false, None) => Status::Error,
                (false, Some(_)) => Status::Fail,
            };
            result.checks.push(CheckRow {
                stage,
                checkpoint: run.name.clone(),
                check: check.name.clone(),
                status,
                points: Points { earned: if check.passed { check.points } else { 0 }, possible: check.points },
                message: check.message.clone(),
                expected: check.pattern.clone(),
                absent: check.absent,
                output_excerpt: if check.passed { String::new() } else { excerpt.clone() },
                seconds: run.seconds,
            });
        }
        let lost = run.checks.iter().any(|c| !c.passed && c.points > 0);
        stopped = options.stop_at_first_failure && lost;
    }
    result.points = sum(&result.checks);
    result
}

fn sum(rows: &[CheckRow]) -> Points {
    let mut points = Points::default();
    for row in rows {
        points += row.points;
    }
    points
}

/// Rows for the checks of a checkpoint that did not run.
fn unrun_rows(stage: u32, checkpoint: &Checkpoint, status: Status, message: &str, log: &str) -> Vec<CheckRow> {
    checkpoint
        .checks
        .iter()
        .map(|check| CheckRow {
            stage,
            checkpoint: checkpoint.name.clone(),
            check: check.name.clone(),
            status,
            points: Points { earned: 0, possible: check.points },
            message: message.to_string(),
            expected: check.pattern.clone(),
            absent: check.absent,
            output_excerpt: log.to_string(),
            seconds: 0.0,
        })
        .collect()
}

/// Why KVM cannot be used, if it cannot (the harness's check, which `MINIVIRT_KVM_DEVICE`
/// can point elsewhere: see [`checkpoints::KVM_DEVICE_VAR`]).
fn kvm_problem() -> Option<String> {
    checkpoints::kvm_problem().map(|problem| format!("{problem}: grade on a Linux machine with KVM"))
}

/// Whether a check could not run because this machine has no usable KVM.
pub fn lacked_kvm(row: &CheckRow) -> bool {
    row.status == Status::Error && row.message.starts_with("needs KVM")
}

/// Builds stage `stage`'s binary (`cargo build -p stageNN --bins`); returns its path, or a
/// message and the end of cargo's output.
pub fn build_stage(repo: &Path, target_dir: &Path, stage: u32) -> Result<PathBuf, (String, String)> {
    let package = format!("stage{stage:02}");
    claim_target_dir(repo, target_dir).map_err(|message| (message, String::new()))?;
    let output = cargo(repo, target_dir, &["build", "-p", &package, "--bins"])
        .map_err(|e| (format!("cannot run cargo: {e}"), String::new()))?;
    let log = compiler_errors(&String::from_utf8_lossy(&output.stderr), 60);
    if !output.status.success() {
        return Err((format!("`cargo build -p {package} --bins` failed"), log));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let executable = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == package.as_str())
        .find_map(|message| message["executable"].as_str().map(PathBuf::from));
    executable.ok_or_else(|| (format!("package {package} has no binary named {package}"), log))
}

/// Records that `target_dir` builds the tree at `repo`, or refuses if it builds another one.
///
/// Every tree puts its binaries at `TARGET/debug/stageNN`, and cargo does not copy a binary
/// there again when it is up to date: after a build of tree B, a build of tree A in the same
/// target directory would report B's binary as A's. So each tree needs its own.
fn claim_target_dir(repo: &Path, target_dir: &Path) -> Result<(), String> {
    let tree = repo.canonicalize().map_err(|e| format!("{}: {e}", repo.display()))?;
    let marker = target_dir.join("grade-tree.txt");
    match std::fs::read_to_string(&marker) {
        Ok(owner) if Path::new(owner.trim()) == tree => Ok(()),
        Ok(owner) => Err(format!(
            "the target directory {} builds the tree {}; give {} a target directory of its own (--target-dir)",
            target_dir.display(),
            owner.trim(),
            tree.display()
        )),
        Err(_) => std::fs::create_dir_all(target_dir)
            .and_then(|()| std::fs::write(&marker, format!("{}\n", tree.display())))
            .map_err(|e| format!("{}: {e}", marker.display())),
    }
}

/// The errors in cargo's rendered output (each `error...` line up to the next blank line), at
/// most `lines` lines; the end of the output if there are none.
pub fn compiler_errors(stderr: &str, lines: usize) -> String {
    let mut picked: Vec<&str> = Vec::new();
    let mut in_error = false;
    for line in stderr.lines() {
        if line.starts_with("error") {
            in_error = true;
        } else if line.trim().is_empty() {
            in_error = false;
        }
        if in_error {
            picked.push(line);
        }
    }
    if picked.is_empty() {
        return checkpoints::run::excerpt(stderr, lines);
    }
    if picked.len() > lines {
        picked.truncate(lines);
        picked.push("[...]");
    }
    picked.join("\n")
}

/// Runs `cargo ARGS --message-format=json-render-diagnostics` on the tree at `repo`.
pub fn cargo(repo: &Path, target_dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Absolute: cargo runs in the tree, where a relative path would mean something else.
    let (repo, target_dir) = (&std::path::absolute(repo)?, &std::path::absolute(target_dir)?);
    Command::new(cargo)
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(repo.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(repo)
        .output()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_failures_show_the_errors_not_the_warnings() {
        let stderr = "   Compiling stage01\nwarning: unused variable: `x`\n --> a.rs:1:1\n\nerror[E0433]: cannot find `io`\n --> b.rs:2:2\n  |\n\nwarning: 1 warning\nerror: could not compile `stage06`\n";
        assert_eq!(
            compiler_errors(stderr, 60),
            "error[E0433]: cannot find `io`\n --> b.rs:2:2\n  |\nerror: could not compile `stage06`"
        );
        assert_eq!(compiler_errors("a\nb\n", 60), "a\nb", "no errors: the end of the output");
    }

    #[test]
    fn stages_are_the_numbered_folders() {
        let numbers = stage_numbers(&checkpoints::repo_root());
        assert_eq!(&numbers[..4], &[1, 2, 3, 4]);
    }
}
