//! Running one checkpoint: spawn, feed stdin, collect output, enforce the timeout, match.

use crate::spec::Checkpoint;
use regex::Regex;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Points it is worth.
    pub points: u32,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub message: String,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The checkpoint's name.
    pub name: String,
    /// What the binary printed (stdout, then stderr).
    pub output: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Each check, plus a check for the exit code.
    pub checks: Vec<CheckResult>,
}

impl RunResult {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// A failure report: what failed, and the end of the output.
    pub fn report(&self) -> String {
        let mut report = format!("checkpoint '{}' failed:\n", self.name);
        for check in self.checks.iter().filter(|c| !c.passed) {
            report += &format!("  - {}: {}\n", check.name, check.message);
        }
        report += &format!("  output (last 40 lines):\n{}", tail(&self.output, 40));
        report
    }
}

/// The last `lines` lines of `text`, indented.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].iter().map(|l| format!("    | {l}\n")).collect()
}

/// Runs `checkpoint` with `binary`; `repo` replaces `{repo}` in the arguments.
pub fn run_checkpoint(checkpoint: &Checkpoint, binary: &Path, repo: &Path) -> RunResult {
    if checkpoint.needs_kvm {
        crate::require_kvm();
    }
    if checkpoint.needs_guest {
        if let Err(e) = crate::guest::ensure_built(repo) {
            return failed_setup(checkpoint, &e);
        }
    }
    let start = Instant::now();
    let args: Vec<String> = checkpoint.args.iter().map(|a| a.replace("{repo}", &repo.display().to_string())).collect();
    let (status, output) = match spawn_and_wait(binary, &args, checkpoint.stdin.as_deref(), checkpoint.timeout) {
        Ok(done) => done,
        Err(e) => return failed_setup(checkpoint, &format!("cannot run {}: {e}", binary.display())),
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut checks: Vec<CheckResult> = checkpoint
        .checks
        .iter()
        .map(|check| {
            let found = Regex::new(&check.pattern).map(|re| re.is_match(&output)).unwrap_or(false);
            let passed = found != check.absent;
            let message = match (passed, check.absent) {
                (true, _) => String::new(),
                (false, false) => format!("expected output matching /{}/", check.pattern),
                (false, true) => format!("output must not match /{}/", check.pattern),
            };
            CheckResult { name: check.name.clone(), points: check.points, passed, message }
        })
        .collect();
    let exit_ok = status == Some(checkpoint.exit_code);
    let exit_message = match status {
        None => format!("timed out after {} s", checkpoint.timeout),
        Some(code) if !exit_ok => format!("exit code {code}, expected {}", checkpoint.exit_code),
        Some(_) => String::new(),
    };
    checks.push(CheckResult { name: "exit code".into(), points: 0, passed: exit_ok, message: exit_message });
    RunResult { name: checkpoint.name.clone(), output, seconds, checks }
}

fn failed_setup(checkpoint: &Checkpoint, message: &str) -> RunResult {
    let checks = checkpoint
        .checks
        .iter()
        .map(|c| CheckResult { name: c.name.clone(), points: c.points, passed: false, message: message.to_string() })
        .collect();
    RunResult { name: checkpoint.name.clone(), output: String::new(), seconds: 0.0, checks }
}

/// Runs the binary; `None` as the status means it timed out (and was killed).
fn spawn_and_wait(
    binary: &Path,
    args: &[String],
    stdin: Option<&str>,
    timeout: u64,
) -> std::io::Result<(Option<i32>, String)> {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.to_string();
        // Written from a thread so that a guest that does not read cannot block the harness.
        std::thread::spawn(move || pipe.write_all(text.as_bytes()));
    }
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = child.stdout.take().map(|p| collect(Box::new(p)));
    let stderr = child.stderr.take().map(|p| collect(Box::new(p)));
    let (done_tx, done_rx) = mpsc::channel();
    let pid = child.id();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = done_tx.send(());
        status
    });
    let timed_out = done_rx.recv_timeout(Duration::from_secs(timeout)).is_err();
    if timed_out {
        // SAFETY: sending SIGKILL to our own child, which has not been reaped yet (the waiter
        // thread reaps it only after it dies).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    let status = waiter.join().map_err(|_| std::io::Error::other("waiter panicked"))??;
    let mut output = String::new();
    for pipe in [stdout, stderr].into_iter().flatten() {
        output += &String::from_utf8_lossy(&pipe.join().unwrap_or_default());
    }
    // The guest's tty turns "\n" into "\r\n"; match lines as a terminal shows them.
    let output = output.replace("\r\n", "\n");
    Ok((if timed_out { None } else { status.code() }, output))
}
