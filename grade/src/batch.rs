//! `grade batch`: every submission folder of a class, graded apart, into one gradebook.
//!
//! Each submission is graded by a `grade run` process of its own, started in a process group
//! of its own, with:
//!
//! - a copy of the submission (`OUT/work/NAME/tree`, see [`crate::submission`]: no symbolic
//!   link is followed, build outputs and the submission's cargo settings are left out) and a
//!   target directory of its own (`OUT/work/NAME/target`);
//! - `HOME` and `TMPDIR` inside `OUT/work/NAME`, so that what its build scripts and binaries
//!   write to "home" or to temporary files stays there (cargo's, rustup's and the guest's
//!   caches keep their real places: `CARGO_HOME`, `RUSTUP_HOME`, `MINIVIRT_CACHE` are set);
//! - the instructor's checkpoints, and a time limit: past it the whole process group is
//!   killed, and the submission is `timed out`. The harness caps what each run's output keeps.
//!
//! So a submission that does not build, hangs, or floods its output costs only its own points.
//! This is not a sandbox: code from a submission runs as the grader's user and could write
//! anywhere that user can. Grade untrusted code in a container or a throwaway machine.
//!
//! The gradebook: `OUT/gradebook.csv` (one row per submission: name, status, points per stage,
//! total, possible, message) and `OUT/gradebook.json` (`grade/schema/gradebook.schema.json`);
//! each submission's full results are in `OUT/work/NAME/results.json`, its grader's output in
//! `OUT/work/NAME/grade.log`.
//!
//! # Resources
//! - RFC 4180, the CSV format: <https://www.rfc-editor.org/rfc/rfc4180>
//! - OWASP, CSV injection (why a field that starts with `=` gets a `'`):
//!   <https://owasp.org/www-community/attacks/CSV_Injection>

use crate::grading::Points;
use serde::Serialize;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The version of the gradebook JSON (`grade/schema/gradebook.schema.json`).
pub const GRADEBOOK_VERSION: u32 = 1;

/// What to grade, and how.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// The folder whose folders are the submissions.
    pub submissions: PathBuf,
    /// Where the gradebook and each submission's work folder go.
    pub out: PathBuf,
    /// The instructor's checkpoint files.
    pub checkpoints_dir: PathBuf,
    /// The stages graded (each with a checkpoint file).
    pub stages: Vec<u32>,
    /// How many submissions are graded at once.
    pub jobs: usize,
    /// How long one submission may take, build included.
    pub timeout: Duration,
    /// The grader to run for each submission (this program).
    pub grader: PathBuf,
}

/// How grading a submission ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    /// Every stage built and its checkpoints ran.
    Graded,
    /// At least one stage did not build (the stages that did are graded).
    BuildFailed,
    /// It took longer than the time limit and was stopped: no points.
    TimedOut,
    /// It could not be graded (not a folder, too large, the grader failed): no points.
    Error,
}

impl SubmissionStatus {
    /// The word in the CSV: `graded`, `build failed`, `timed out`, `error`.
    pub fn word(self) -> &'static str {
        match self {
            SubmissionStatus::Graded => "graded",
            SubmissionStatus::BuildFailed => "build failed",
            SubmissionStatus::TimedOut => "timed out",
            SubmissionStatus::Error => "error",
        }
    }
}

/// One stage of one submission.
#[derive(Debug, Clone, Serialize)]
pub struct StagePoints {
    /// The stage.
    pub stage: u32,
    /// `graded`, `build_failed`, `no_checkpoints`, or `not_graded` (the submission was not).
    pub status: String,
    /// Its points.
    pub points: Points,
}

/// One row of the gradebook.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The submission's folder name.
    pub name: String,
    /// How grading it ended.
    pub status: SubmissionStatus,
    /// Why, when it is not `graded`.
    pub message: String,
    /// Its points, out of the checkpoints' total.
    pub points: Points,
    /// Per stage.
    pub stages: Vec<StagePoints>,
    /// Seconds it took.
    pub seconds: f64,
    /// Its results (`grade --json`), relative to the gradebook's folder, when there are any.
    pub results: Option<String>,
    /// Its grader's output, relative to the gradebook's folder.
    pub log: String,
}

/// The whole gradebook.
#[derive(Debug, Clone, Serialize)]
pub struct Gradebook {
    /// [`GRADEBOOK_VERSION`].
    pub schema_version: u32,
    /// The grader and its version.
    pub tool: String,
    /// The checkpoints graded with.
    pub checkpoints: String,
    /// Points possible per stage.
    pub stages: Vec<StagePoints>,
    /// Points possible in all.
    pub possible: u32,
    /// One row per submission, by name.
    pub submissions: Vec<Row>,
}

/// Errors that stop a batch before it grades anything.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A folder could not be read or a file written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The options do not make sense.
    #[error("{0}")]
    Options(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Io { path: path.to_path_buf(), source }
}

/// Grades every submission and writes the gradebook (CSV and JSON) into `options.out`.
///
/// # Errors
///
/// When the submissions folder cannot be listed, a stage has no checkpoint file, or the
/// gradebook cannot be written. A submission that cannot be graded is a row, not an error.
pub fn run_batch(options: &BatchOptions) -> Result<Gradebook, BatchError> {
    if options.jobs == 0 {
        return Err(BatchError::Options("--jobs must be at least 1".into()));
    }
    let out = &options.out;
    let submissions = &options.submissions;
    let (out_abs, submissions_abs) = (absolute(out)?, submissions.canonicalize().map_err(io_error(submissions))?);
    if out_abs.starts_with(&submissions_abs) {
        return Err(BatchError::Options(format!(
            "the output folder {} is inside the submissions folder {}: it would be graded as a submission",
            out.display(),
            submissions.display()
        )));
    }
    let mut possible_stages = Vec::new();
    for &stage in &options.stages {
        let file = checkpoints::stage_file(&options.checkpoints_dir, stage);
        let checkpoints = checkpoints::load_file(&file).map_err(BatchError::Options)?;
        let possible = checkpoints.iter().flat_map(|c| &c.checks).map(|c| c.points).sum();
        possible_stages.push(StagePoints { stage, status: "possible".into(), points: Points { earned: 0, possible } });
    }
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(submissions)
        .map_err(io_error(submissions))?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|name| !name.to_string_lossy().starts_with('.'))
        .collect();
    names.sort();

    std::fs::create_dir_all(out.join("work")).map_err(io_error(out))?;
    let next = AtomicUsize::new(0);
    let rows = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.min(names.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(name) = names.get(index) else { break };
                let row = grade_submission(options, &possible_stages, name);
                eprintln!(
                    "grade batch: {} {}: {}/{}",
                    row.name,
                    row.status.word(),
                    row.points.earned,
                    row.points.possible
                );
                rows.lock().unwrap_or_else(|e| e.into_inner()).push(row);
            });
        }
    });
    let mut rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let gradebook = Gradebook {
        schema_version: GRADEBOOK_VERSION,
        tool: format!("minivirt grade {}", env!("CARGO_PKG_VERSION")),
        checkpoints: options.checkpoints_dir.display().to_string(),
        possible: possible_stages.iter().map(|s| s.points.possible).sum(),
        stages: possible_stages,
        submissions: rows,
    };
    let csv_path = out.join("gradebook.csv");
    std::fs::write(&csv_path, csv(&gradebook)).map_err(io_error(&csv_path))?;
    let json_path = out.join("gradebook.json");
    let json = serde_json::to_string_pretty(&gradebook).unwrap_or_default() + "\n";
    std::fs::write(&json_path, json).map_err(io_error(&json_path))?;
    Ok(gradebook)
}

fn absolute(path: &Path) -> Result<PathBuf, BatchError> {
    std::fs::create_dir_all(path).map_err(io_error(path))?;
    path.canonicalize().map_err(io_error(path))
}

/// Grades one submission in a `grade run` process of its own; never fails, only says how it went.
fn grade_submission(options: &BatchOptions, possible: &[StagePoints], name: &std::ffi::OsStr) -> Row {
    let display = name.to_string_lossy().into_owned();
    let relative = PathBuf::from("work").join(name);
    let work = options.out.join(&relative);
    let start = Instant::now();
    let mut row = Row {
        name: display,
        status: SubmissionStatus::Error,
        message: String::new(),
        points: Points { earned: 0, possible: possible.iter().map(|s| s.points.possible).sum() },
        stages: possible
            .iter()
            .map(|s| StagePoints { stage: s.stage, status: "not_graded".into(), points: s.points })
            .collect(),
        seconds: 0.0,
        results: None,
        log: relative.join("grade.log").display().to_string(),
    };
    let submission = options.submissions.join(name);
    if !std::fs::symlink_metadata(&submission).is_ok_and(|m| m.is_dir()) {
        row.message = "not a folder (a symbolic link is not followed): not graded".into();
        return row;
    }
    let results = work.join("results.json");
    let prepared = std::fs::create_dir_all(work.join("home"))
        .and_then(|()| std::fs::create_dir_all(work.join("tmp")))
        .and_then(|()| std::fs::File::create(work.join("grade.log")))
        .and_then(|log| {
            let _ = std::fs::remove_file(&results);
            Ok((log.try_clone()?, log))
        });
    let (stdout, stderr) = match prepared {
        Ok(files) => files,
        Err(e) => {
            row.message = format!("cannot prepare {}: {e}", work.display());
            return row;
        }
    };
    let mut command = Command::new(&options.grader);
    command
        .arg("run")
        .arg("--repo")
        .arg(&submission)
        .arg("--work")
        .arg(&work)
        .arg("--checkpoints")
        .arg(&options.checkpoints_dir)
        .args(options.stages.iter().flat_map(|s| ["--stage".to_string(), s.to_string()]))
        .arg("--json")
        .arg(&results)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    isolate(&mut command, &work);
    let ending = run_with_timeout(&mut command, options.timeout);
    row.seconds = start.elapsed().as_secs_f64();
    match ending {
        Ok(Ending::TimedOut) => {
            row.status = SubmissionStatus::TimedOut;
            row.message = format!("stopped after {} s", options.timeout.as_secs());
        }
        Ok(Ending::Exited(code)) => read_results(&mut row, &results, code, &relative),
        Err(e) => row.message = format!("cannot run {}: {e}", options.grader.display()),
    }
    row
}

/// Points the grading process's home, temporary folder and target directory into `work`, and
/// keeps the real places of the caches it must share (found before `HOME` changes).
fn isolate(command: &mut Command, work: &Path) {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let keep = |var: &str, under_home: &str| {
        std::env::var_os(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(under_home)))
    };
    let cache = keep("XDG_CACHE_HOME", ".cache").map(|c| c.join("minivirt"));
    for (var, value) in [
        ("CARGO_HOME", keep("CARGO_HOME", ".cargo")),
        ("RUSTUP_HOME", keep("RUSTUP_HOME", ".rustup")),
        ("MINIVIRT_CACHE", std::env::var_os("MINIVIRT_CACHE").map(PathBuf::from).or(cache)),
    ] {
        if let Some(value) = value {
            command.env(var, value);
        }
    }
    command
        .env("HOME", work.join("home"))
        .env("TMPDIR", work.join("tmp"))
        .env("NO_COLOR", "1")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("GITHUB_OUTPUT");
}

fn read_results(row: &mut Row, results: &Path, code: Option<i32>, relative: &Path) {
    let parsed =
        std::fs::read_to_string(results).ok().and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    let Some(value) = parsed else {
        row.message = format!("the grader wrote no results (exit status {code:?}): see {}", row.log);
        return;
    };
    row.results = Some(relative.join("results.json").display().to_string());
    let number = |v: &serde_json::Value| v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    let points = |v: &serde_json::Value| Points { earned: number(&v["earned"]), possible: number(&v["possible"]) };
    let mut failed = Vec::new();
    for stage in value["stages"].as_array().into_iter().flatten() {
        let number = number(&stage["stage"]);
        let status = stage["status"].as_str().unwrap_or("").to_string();
        if status == "build_failed" {
            failed.push(number.to_string());
        }
        if let Some(slot) = row.stages.iter_mut().find(|s| s.stage == number) {
            *slot = StagePoints { stage: number, status, points: points(&stage["points"]) };
        }
    }
    row.points = points(&value["points"]);
    if failed.is_empty() {
        row.status = SubmissionStatus::Graded;
    } else {
        row.status = SubmissionStatus::BuildFailed;
        row.message = format!("stage {} did not build", failed.join(", "));
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited (`None`: killed by a signal).
    Exited(Option<i32>),
    /// It ran past the time limit; its process group was killed.
    TimedOut,
}

/// Runs `command` in a process group of its own until it exits or `timeout` passes, then kills
/// that whole group either way (so nothing it started, a VMM or a build script, lives on).
///
/// # Errors
///
/// When the command cannot be started or waited for.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> std::io::Result<Ending> {
    let mut child = command.process_group(0).spawn()?;
    let group = child.id() as libc::pid_t;
    let kill_group = || {
        // SAFETY: kill(2) with a negative pid signals the process group we created for the
        // child (its id is the group's id); no memory is involved.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            kill_group();
            return Ok(Ending::Exited(status.code()));
        }
        if Instant::now() >= deadline {
            kill_group();
            child.wait()?;
            return Ok(Ending::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The gradebook as CSV (RFC 4180): a header, then one row per submission.
pub fn csv(gradebook: &Gradebook) -> String {
    let mut header = vec!["submission".to_string(), "status".to_string()];
    header.extend(gradebook.stages.iter().map(|s| format!("stage {}", s.stage)));
    header.extend(["total".to_string(), "possible".to_string(), "message".to_string()]);
    let mut out = csv_line(&header);
    for row in &gradebook.submissions {
        let mut fields = vec![row.name.clone(), row.status.word().to_string()];
        fields.extend(row.stages.iter().map(|s| s.points.earned.to_string()));
        fields.extend([row.points.earned.to_string(), row.points.possible.to_string(), row.message.clone()]);
        out += &csv_line(&fields);
    }
    out
}

fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    quoted.join(",") + "\r\n"
}

/// One field: quoted when it holds a comma, a quote or a line break; and a field a spreadsheet
/// would run as a formula (`=`, `+`, `-`, `@` first: a folder name is the student's choice)
/// starts with `'`.
fn csv_field(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@']) { format!("'{field}") } else { field.to_string() };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_past_its_time_is_killed_with_what_it_started() {
        let tmp = tempfile::tempdir().unwrap();
        let pid_file = tmp.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let start = Instant::now();
        let ending = run_with_timeout(Command::new("sh").args(["-c", &script]), Duration::from_secs(1)).unwrap();
        assert_eq!(ending, Ending::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(10));
        let pid: libc::pid_t = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // The background sleep went with the group (it may linger a moment as a zombie).
        let gone = (0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            state.is_empty() || state.contains(") Z ")
        });
        assert!(gone, "the grandchild {pid} still runs");

        let ending = run_with_timeout(Command::new("sh").args(["-c", "exit 3"]), Duration::from_secs(10)).unwrap();
        assert_eq!(ending, Ending::Exited(Some(3)));
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("ada"), "ada");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }
}
