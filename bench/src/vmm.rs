//! One boot of a VMM as a child process: started in its own process group with stdin from
//! /dev/null (it never owns the terminal, and the terminal's Ctrl-C reaches only `bench`), timed
//! from its start to the guest's marker line on its stdout and to its exit.

use crate::interrupt;
use crate::report::BootRun;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The line the lab guest's /init prints once the boot is complete (labs/guest/init).
pub const READY_MARKER: &str = "MINIVIRT-GUEST-READY";

/// How often the wait loop looks at Ctrl-C and the timeout.
const POLL: Duration = Duration::from_millis(100);

/// What to start.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The VMM binary.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// When to give up and kill it.
    pub timeout: Duration,
    /// Kill it as soon as the marker came (a probe, not a measured run).
    pub stop_when_ready: bool,
}

/// How one boot went.
#[derive(Debug)]
pub struct Outcome<R> {
    /// Time from the start to the marker line.
    pub ready: Option<Duration>,
    /// Time from the start to the exit.
    pub exited: Duration,
    /// The exit status.
    pub status: Option<ExitStatus>,
    /// Everything it printed on stdout (the guest's console).
    pub stdout: String,
    /// Everything it printed on stderr (the VMM's messages).
    pub stderr: String,
    /// What the `at_ready` callback returned.
    pub at_ready: Option<R>,
    /// Why the run was cut short (timeout, Ctrl-C) or failed (exit status), if it was.
    pub failure: Option<String>,
}

impl<R> Outcome<R> {
    /// The timings and failure of this boot as a table row; a boot that never printed the
    /// marker and gave no other reason fails for that.
    pub fn boot_run(&self) -> BootRun {
        let ready_s = self.ready.map(|d| d.as_secs_f64());
        let failure = match (&self.failure, ready_s) {
            (None, None) => Some(format!("the guest never printed {READY_MARKER}")),
            (failure, _) => failure.clone(),
        };
        BootRun { ready_s, exit_s: self.exited.as_secs_f64(), failure, ..Default::default() }
    }
}

/// Why a VMM could not be run at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {}: {source}", program.display())]
pub struct VmmError {
    /// The binary.
    pub program: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Runs `launch` to its end; `at_ready(pid)` is called once, while the VMM still runs, when the
/// marker line appears (to read its memory then).
///
/// # Errors
/// When the program cannot be started.
pub fn run<R>(launch: &Launch, at_ready: impl FnOnce(u32) -> R) -> Result<Outcome<R>, VmmError> {
    let started = Instant::now();
    let mut child = Command::new(&launch.program)
        .args(&launch.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| VmmError { program: launch.program.clone(), source })?;
    let pid = child.id();

    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if lines_tx.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                    break;
                }
                line.clear();
            }
        })
    });
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = err.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    });

    let (mut ready, mut at_ready, mut failure) = (None, Some(at_ready), None);
    let mut result = None;
    let mut console = String::new();
    loop {
        match lines.recv_timeout(POLL) {
            Ok(line) => {
                if ready.is_none() && line.contains(READY_MARKER) {
                    ready = Some(started.elapsed());
                    result = at_ready.take().map(|f| f(pid));
                    if launch.stop_when_ready {
                        kill_group(pid);
                    }
                }
                console.push_str(&line);
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if failure.is_none() {
            if interrupt::interrupted() {
                failure = Some("interrupted (Ctrl-C)".to_string());
            } else if started.elapsed() > launch.timeout {
                failure = Some(format!("no exit within {} s: stopped", launch.timeout.as_secs()));
            }
            if failure.is_some() {
                kill_group(pid);
            }
        }
    }
    let status = child.wait().ok();
    let exited = started.elapsed();
    if let Some(thread) = stdout {
        let _ = thread.join();
    }
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if failure.is_none() && !launch.stop_when_ready {
        match status {
            Some(s) if s.success() => {}
            Some(s) => failure = Some(format!("the VMM {s}: {}", last_line(&stderr))),
            None => failure = Some("the VMM's exit status is unknown".to_string()),
        }
    }
    Ok(Outcome { ready, exited, status, stdout: console, stderr, at_ready: result, failure })
}

/// Kills the VMM and whatever it started (its process group, which `run` created): SIGKILL,
/// since the child has no terminal state to restore (its stdin is /dev/null).
fn kill_group(pid: u32) {
    let Ok(group) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) with a negative pid signals the process group `pid` leads; it touches no
    // memory of ours. The group is the child's own (process_group(0) at spawn).
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

/// The last non-empty line of a program's messages, for a one-line failure.
pub fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no message)").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: u64) -> Launch {
        Launch {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            timeout: Duration::from_secs(timeout),
            stop_when_ready: false,
        }
    }

    #[test]
    fn the_marker_is_timed_and_the_callback_sees_the_running_child() {
        let launch = sh("sleep 0.3; echo 'MINIVIRT-GUEST-READY kernel=x'; sleep 0.3; echo bye >&2", 10);
        let outcome = run(&launch, |pid| std::path::Path::new(&format!("/proc/{pid}")).exists()).unwrap();
        let ready = outcome.ready.unwrap();
        assert!(ready >= Duration::from_millis(250) && ready < outcome.exited, "{outcome:?}");
        assert!(outcome.exited >= Duration::from_millis(550), "{outcome:?}");
        assert_eq!(outcome.at_ready, Some(true), "the child was alive at the marker");
        assert_eq!((outcome.stderr.as_str(), outcome.failure), ("bye\n", None));
    }

    #[test]
    fn a_run_without_marker_that_fails_says_why() {
        let outcome = run(&sh("echo 'stage08: no KVM' >&2; exit 1", 10), |_| ()).unwrap();
        assert_eq!(outcome.ready, None);
        assert_eq!(outcome.failure.unwrap(), "the VMM exit status: 1: stage08: no KVM");
    }

    #[test]
    fn a_hung_vmm_is_stopped_at_the_timeout() {
        let started = Instant::now();
        let outcome = run(&sh("sleep 30", 1), |_| ()).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(outcome.failure.unwrap(), "no exit within 1 s: stopped");
    }

    #[test]
    fn a_missing_binary_is_an_error() {
        let launch = Launch { program: "/no/such/vmm".into(), ..sh("", 1) };
        assert!(run(&launch, |_| ()).unwrap_err().to_string().starts_with("cannot start /no/such/vmm: "));
    }
}
