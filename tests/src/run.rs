//! Running one checkpoint: spawn, feed stdin, collect output, enforce the timeout (and stop a
//! run that lingers after a panic, see [`PANIC_GRACE`]), match.

use crate::during;
use crate::spec::{Checkpoint, Step};
use regex::Regex;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
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
    /// The pattern the output had to match (or, if `absent`, not match); empty for the exit
    /// code check.
    pub pattern: String,
    /// Whether the pattern had to be absent.
    pub absent: bool,
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
    /// How the run ended; `None` when it could not start (the checks say why).
    pub ending: Option<Ending>,
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

    /// The part of the output worth showing for a failure: see [`excerpt`].
    pub fn excerpt(&self, lines: usize) -> String {
        excerpt(&self.output, lines)
    }
}

/// The longest line an [`excerpt`] shows; longer ones are cut and end in `…`.
pub const EXCERPT_LINE_CHARS: usize = 400;

/// The last `lines` lines of `text`, preceded by the first panic message if that came earlier:
/// what a student needs to see of a failed run. Lines longer than [`EXCERPT_LINE_CHARS`] are
/// cut (a binary that prints one endless line must not fill a report).
pub fn excerpt(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let tail_start = all.len().saturating_sub(lines);
    let mut picked: Vec<&str> = Vec::new();
    let panic_line = all.iter().position(|l| l.contains("panicked at"));
    if let Some(first) = panic_line.filter(|&p| p < tail_start) {
        // The panic line and the message after it.
        picked.extend(&all[first..(first + 2).min(tail_start)]);
        if first + 2 < tail_start {
            picked.push("[...]");
        }
    } else if tail_start > 0 {
        picked.push("[...]");
    }
    picked.extend(&all[tail_start..]);
    let cut: Vec<String> = picked.iter().map(|line| cut_line(line)).collect();
    cut.join("\n")
}

fn cut_line(line: &str) -> String {
    match line.char_indices().nth(EXCERPT_LINE_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_string(),
    }
}

/// The last `lines` lines of `text`, indented.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].iter().map(|l| format!("    | {l}\n")).collect()
}

/// Runs `checkpoint` with `binary`; `repo` replaces `{repo}` in the arguments, and the lab
/// guest's folder (`labs/guest/out` in `repo`, or `MINIVIRT_GUEST_DIR`) replaces `{guest}`.
pub fn run_checkpoint(checkpoint: &Checkpoint, binary: &Path, repo: &Path) -> RunResult {
    if checkpoint.needs_kvm {
        crate::require_kvm();
    }
    if checkpoint.needs_guest {
        if let Err(e) = crate::guest::ensure_built(repo) {
            return failed_setup(checkpoint, &e);
        }
    }
    let work = match work_dir() {
        Ok(work) => work,
        Err(e) => return failed_setup(checkpoint, &format!("cannot create a scratch folder: {e}")),
    };
    let guest = crate::guest::guest_dir(repo).display().to_string();
    let expand = |text: &String| {
        text.replace("{repo}", &repo.display().to_string()).replace("{work}", &work).replace("{guest}", &guest)
    };
    for command in checkpoint.before.iter().map(expand) {
        let (ok, output) = host_command(&command);
        if !ok {
            return failed_setup(checkpoint, &format!("set-up command failed: {command}\n{output}"));
        }
    }
    let start = Instant::now();
    let args: Vec<String> = checkpoint.args.iter().map(expand).collect();
    let steps: Vec<Step> = checkpoint
        .steps
        .iter()
        .map(|step| Step { monitor: step.monitor.as_ref().map(expand), ..step.clone() })
        .collect();
    let run = spawn_and_wait(binary, &args, checkpoint.stdin.as_deref(), &steps, checkpoint.timeout);
    let (ending, mut output, captures, stdout) = match run {
        Ok(done) => done,
        Err(e) => return failed_setup(checkpoint, &format!("cannot run {}: {e}", binary.display())),
    };
    // The binary's own standard output, for `after` commands that compare with it.
    if let Err(e) = std::fs::write(Path::new(&work).join("stdout"), &stdout) {
        output += &format!("\n[harness] cannot save stdout for the after commands: {e}\n");
    }
    for command in checkpoint.after.iter().map(expand) {
        let (_, after) = host_command(&command);
        output += &format!("\n$ {command}\n{after}");
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut checks: Vec<CheckResult> = checkpoint
        .checks
        .iter()
        .map(|check| {
            let pattern = during::fill_check_pattern(&check.pattern, &captures);
            let found = Regex::new(&pattern).map(|re| re.is_match(&output)).unwrap_or(false);
            let passed = found != check.absent;
            let message = match (passed, check.absent) {
                (true, _) => String::new(),
                (false, false) => format!("expected output matching /{pattern}/"),
                (false, true) => format!("output must not match /{pattern}/"),
            };
            CheckResult {
                name: check.name.clone(),
                points: check.points,
                passed,
                message,
                pattern: check.pattern.clone(),
                absent: check.absent,
            }
        })
        .collect();
    let exit_ok = if checkpoint.kills() {
        ending == Ending::KilledByStep
    } else {
        ending == Ending::Exited(Some(checkpoint.exit_code))
    };
    let exit_message = match ending {
        _ if exit_ok => String::new(),
        Ending::KilledByStep => "killed by a kill step, which this checkpoint does not have".to_string(),
        Ending::Exited(code) if checkpoint.kills() => format!(
            "{} before the kill step's output appeared",
            code.map_or("killed by a signal".to_string(), |code| format!("exited with code {code}"))
        ),
        Ending::TimedOut => format!("timed out after {} s", checkpoint.timeout),
        Ending::KilledAfterPanic => format!(
            "a thread panicked and the process was still running {} s later: killed (a panic must stop the VMM)",
            PANIC_GRACE.as_secs()
        ),
        Ending::Exited(None) => "killed by a signal".to_string(),
        Ending::Exited(Some(code)) if !exit_ok => format!("exit code {code}, expected {}", checkpoint.exit_code),
        Ending::Exited(Some(_)) => String::new(),
    };
    checks.push(CheckResult {
        name: "exit code".into(),
        points: 0,
        passed: exit_ok,
        message: exit_message,
        pattern: String::new(),
        absent: false,
    });
    RunResult { name: checkpoint.name.clone(), output, seconds, checks, ending: Some(ending) }
}

/// The scratch folder for `{work}`: one per process, so the checkpoints of a stage file, run in
/// order, can hand files to each other (a disk image written by one boot, read by the next).
fn work_dir() -> std::io::Result<String> {
    let dir = std::env::temp_dir().join(format!("minivirt-checkpoints-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.display().to_string())
}

/// Runs `command` with `sh -c`; whether it succeeded, and its stdout and stderr.
fn host_command(command: &str) -> (bool, String) {
    match Command::new("sh").arg("-c").arg(command).stdin(Stdio::null()).output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text)
        }
        Err(e) => (false, format!("cannot run sh: {e}")),
    }
}

fn failed_setup(checkpoint: &Checkpoint, message: &str) -> RunResult {
    let checks = checkpoint
        .checks
        .iter()
        .map(|c| CheckResult {
            name: c.name.clone(),
            points: c.points,
            passed: false,
            message: message.to_string(),
            pattern: c.pattern.clone(),
            absent: c.absent,
        })
        .collect();
    RunResult { name: checkpoint.name.clone(), output: String::new(), seconds: 0.0, checks, ending: None }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The process exited by itself; `None` when a signal killed it.
    Exited(Option<i32>),
    /// It ran past the checkpoint's timeout and was killed.
    TimedOut,
    /// A thread panicked and the process was still running [`PANIC_GRACE`] later: killed.
    KilledAfterPanic,
    /// A kill step of the checkpoint killed it with SIGKILL (a power cut), as it asked.
    KilledByStep,
}

/// How long a process may go on after printing a Rust panic before the harness kills it. A
/// VMM whose vCPU thread panics should stop at once; one that does not is not waited for until
/// the (long) timeout of a guest boot.
pub const PANIC_GRACE: Duration = Duration::from_secs(5);

/// What the standard library prints when a thread panics.
const PANIC_MARKER: &[u8] = b"panicked at";

/// How much of each output stream a run keeps from its start: a binary that floods its output
/// (a loop that prints) costs the harness at most this and [`KEEP_TAIL`] bytes of memory, not
/// everything it printed until its timeout.
pub const KEEP_HEAD: usize = 1 << 20;

/// How much of each output stream a run keeps from its end, once it has passed [`KEEP_HEAD`].
pub const KEEP_TAIL: usize = 64 << 10;

/// One output stream, capped: the first [`KEEP_HEAD`] bytes, the last [`KEEP_TAIL`], and how
/// many bytes between them were left out.
#[derive(Default)]
struct CappedOutput {
    head: Vec<u8>,
    tail: Vec<u8>,
    left_out: u64,
    /// The last bytes seen, so that a panic marker split across two reads is still found.
    recent: Vec<u8>,
}

impl CappedOutput {
    /// Keeps what the caps allow of `bytes`; returns whether the panic marker appears in them.
    fn push(&mut self, bytes: &[u8]) -> bool {
        let mut window = std::mem::take(&mut self.recent);
        window.extend_from_slice(bytes);
        let panicked = window.windows(PANIC_MARKER.len()).any(|w| w == PANIC_MARKER);
        self.recent = window.split_off(window.len().saturating_sub(PANIC_MARKER.len() - 1));

        let room = KEEP_HEAD.saturating_sub(self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..room]);
        self.tail.extend_from_slice(&bytes[room..]);
        // Trimmed in batches, so that a flood does not move the tail for every read.
        if self.tail.len() > 2 * KEEP_TAIL {
            self.trim_tail();
        }
        panicked
    }

    fn trim_tail(&mut self) {
        let excess = self.tail.len().saturating_sub(KEEP_TAIL);
        self.tail.drain(..excess);
        self.left_out += excess as u64;
    }

    /// What is kept so far, as text (for steps that wait for a line).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned() + &String::from_utf8_lossy(&self.tail)
    }

    fn into_text(mut self) -> String {
        self.trim_tail();
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.left_out > 0 {
            text += &format!(
                "\n[... {} bytes of output left out: a run keeps its first {} KiB and its last {} KiB ...]\n",
                self.left_out,
                KEEP_HEAD >> 10,
                KEEP_TAIL >> 10
            );
        }
        text + &String::from_utf8_lossy(&self.tail)
    }
}

enum Event {
    /// Bytes from stdout (0), stderr (1) or a step's monitor transcript (2).
    Data(usize, Vec<u8>),
    Closed,
    Exited(std::io::Result<std::process::ExitStatus>),
}

/// Runs the binary until it exits, times out, or lingers after a panic, taking `steps` as its
/// output matches them. Returns the ending, the output, the groups of the first step's match,
/// and the standard output alone.
fn spawn_and_wait(
    binary: &Path,
    args: &[String],
    stdin: Option<&str>,
    steps: &[Step],
    timeout: u64,
) -> std::io::Result<(Ending, String, Vec<String>, Vec<u8>)> {
    let keep_stdin = steps.iter().any(|step| step.input.is_some());
    let mut child = Command::new(binary)
        .args(args)
        // A panic's message is what a failure report needs; a backtrace would push the rest of
        // the output out of it.
        .env("RUST_BACKTRACE", "0")
        .stdin(if stdin.is_some() || keep_stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Input goes through a shared slot so that steps can type more; the last writer closes it.
    let input: Arc<Mutex<Option<ChildStdin>>> = Arc::new(Mutex::new(child.stdin.take()));
    if let Some(text) = stdin {
        let text = text.to_string();
        let input = Arc::clone(&input);
        // Written from a thread so that a guest that does not read cannot block the harness.
        std::thread::spawn(move || write_input(&input, &text, !keep_stdin));
    }
    let (events, received) = mpsc::channel();
    let mut pending_steps: Vec<(Regex, Step)> =
        steps.iter().filter_map(|step| Regex::new(&step.output).ok().map(|re| (re, step.clone()))).collect();
    let steps_left = Arc::new(std::sync::atomic::AtomicUsize::new(pending_steps.len()));
    let mut captures: Option<Vec<String>> = None;
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    let mut open = 0;
    for (index, pipe) in pipes.into_iter().enumerate() {
        let Some(mut pipe) = pipe else { continue };
        open += 1;
        let events = events.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            loop {
                match pipe.read(&mut buffer) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if events.send(Event::Data(index, buffer[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = events.send(Event::Closed);
        });
    }
    let step_events = events.clone();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = events.send(Event::Exited(child.wait()));
    });

    let kill = || {
        // SAFETY: sending SIGKILL to our own child, which has not been reaped yet (the waiter
        // thread reaps it only after it dies, and we stop killing once it has been reaped).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    };
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut panic_deadline: Option<Instant> = None;
    let mut killed: Option<Ending> = None;
    let mut status: Option<std::process::ExitStatus> = None;
    // Once the process has exited, its pipes close at once unless a child of its own holds them.
    let mut drain_deadline: Option<Instant> = None;
    let mut buffers = [CappedOutput::default(), CappedOutput::default(), CappedOutput::default()];
    while status.is_none() || open > 0 {
        let wake = match (drain_deadline, killed) {
            (Some(drain), _) => drain,
            // Killed: wait for the waiter to reap it.
            (None, Some(_)) => Instant::now() + Duration::from_secs(60),
            (None, None) => panic_deadline.map_or(deadline, |p| p.min(deadline)),
        };
        // Checked before waiting, not only when the wait times out: a binary that never stops
        // printing would otherwise never let it time out.
        if Instant::now() >= wake {
            if drain_deadline.is_some() {
                break;
            }
            if killed.is_none() {
                kill();
                killed = Some(if Instant::now() >= deadline { Ending::TimedOut } else { Ending::KilledAfterPanic });
                continue;
            }
        }
        match received.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(Event::Data(index, bytes)) => {
                if buffers[index].push(&bytes) && panic_deadline.is_none() {
                    panic_deadline = Some(Instant::now() + PANIC_GRACE);
                }
                if index < 2 && !pending_steps.is_empty() {
                    let seen = buffers[0].text() + &buffers[1].text();
                    let mut kill_now = false;
                    pending_steps.retain(|(pattern, step)| {
                        let Some(groups) = during::first_match(pattern, &seen) else { return true };
                        captures.get_or_insert_with(|| groups.clone());
                        if step.kill {
                            kill_now = true;
                            return false;
                        }
                        start_step(
                            step.clone(),
                            groups,
                            step_events.clone(),
                            Arc::clone(&input),
                            Arc::clone(&steps_left),
                        );
                        false
                    });
                    // At once, on this thread: the point of a kill step is where it cuts.
                    if kill_now && killed.is_none() && status.is_none() {
                        kill();
                        killed = Some(Ending::KilledByStep);
                    }
                }
            }
            Ok(Event::Closed) => open -= 1,
            Ok(Event::Exited(result)) => {
                status = Some(result?);
                drain_deadline = Some(Instant::now() + Duration::from_secs(2));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let stdout = buffers[0].text().into_bytes();
    let mut output = String::new();
    for buffer in buffers {
        output += &buffer.into_text();
    }
    // The guest's tty turns "\n" into "\r\n"; match lines as a terminal shows them.
    let output = output.replace("\r\n", "\n");
    let ending = killed.unwrap_or(Ending::Exited(status.and_then(|s| s.code())));
    Ok((ending, output, captures.unwrap_or_default(), stdout))
}

/// Takes one step on its own thread: the monitor commands, then the input. The last step to
/// finish closes standard input.
fn start_step(
    step: Step,
    groups: Vec<String>,
    events: mpsc::Sender<Event>,
    input: Arc<Mutex<Option<ChildStdin>>>,
    steps_left: Arc<std::sync::atomic::AtomicUsize>,
) {
    std::thread::spawn(move || {
        if let Some(socket) = &step.monitor {
            let commands: Vec<String> = step.send.iter().map(|c| during::fill_groups(c, &groups)).collect();
            let transcript = during::talk_to_monitor(socket, &commands);
            let _ = events.send(Event::Data(2, format!("\n{transcript}\n").into_bytes()));
        }
        let last = steps_left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1;
        write_input(&input, step.input.as_deref().unwrap_or(""), last);
    });
}

/// Writes `text` to the binary's standard input, and closes it (EOF) if `close`.
fn write_input(input: &Mutex<Option<ChildStdin>>, text: &str, close: bool) {
    let mut slot = input.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pipe) = slot.as_mut() {
        // A binary that exited or closed its input: nothing more to type.
        let _ = pipe.write_all(text.as_bytes()).and_then(|()| pipe.flush());
    }
    if close {
        slot.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Check;

    fn shell(script: &str, timeout: u64) -> Checkpoint {
        Checkpoint {
            steps: Vec::new(),
            name: "shell".into(),
            args: vec!["-c".into(), script.into()],
            stdin: None,
            timeout,
            exit_code: 0,
            needs_kvm: false,
            needs_guest: false,
            before: vec![],
            after: vec![],
            checks: vec![Check { name: "says hi".into(), points: 3, pattern: "(?m)^hi$".into(), absent: false }],
        }
    }

    #[test]
    fn host_commands_around_the_run_share_the_work_folder() {
        let mut checkpoint = shell("cat \"$0\"/note; echo hi > \"$0\"/reply", 10);
        checkpoint.args.push("{work}".into());
        checkpoint.before = vec!["echo before > {work}/note".into()];
        checkpoint.after = vec!["cat {work}/reply".into()];
        checkpoint.checks[0].pattern = "(?s)^before\n.*\\$ cat \\S+/reply\nhi\n".into();
        let result = run_checkpoint(&checkpoint, Path::new("/bin/sh"), Path::new("/"));
        assert!(result.passed(), "{}", result.report());

        checkpoint.before = vec!["false".into()];
        let result = run_checkpoint(&checkpoint, Path::new("/bin/sh"), Path::new("/"));
        assert!(!result.passed() && result.checks[0].message.contains("set-up command failed: false"));
    }

    #[test]
    fn a_step_types_input_once_the_output_matches_and_checks_see_its_groups() {
        // The "guest" prints a token, then waits for a line; the step types one back.
        let mut checkpoint = shell("echo token=0xbeef; read line; echo got $line", 10);
        checkpoint.steps = vec![Step {
            output: "token=(0x[0-9a-f]+)".into(),
            monitor: None,
            send: vec![],
            input: Some("go\n".into()),
            kill: false,
        }];
        checkpoint.checks[0].pattern = "(?m)^got go$".into();
        checkpoint.checks.push(Check {
            name: "groups".into(),
            points: 1,
            pattern: "token={when:1}\n".into(),
            absent: false,
        });
        let result = run_checkpoint(&checkpoint, Path::new("/bin/sh"), Path::new("/"));
        assert!(result.passed(), "{}", result.report());
    }

    #[test]
    fn a_kill_step_cuts_the_run_at_its_output_and_after_commands_still_run() {
        // The "guest" writes a file, announces it, and would write another if it lived on.
        let script = "echo first > \"$0\"/a; echo synced; sleep 30; echo second > \"$0\"/b; echo hi";
        let mut checkpoint = shell(script, 30);
        checkpoint.args.push("{work}".into());
        checkpoint.steps =
            vec![Step { output: "(?m)^synced$".into(), monitor: None, send: vec![], input: None, kill: true }];
        checkpoint.after = vec!["cat {work}/a; test -e {work}/b && echo b-exists || echo no-b".into()];
        checkpoint.checks[0].pattern = "(?m)^first\nno-b$".into();
        checkpoint.checks.push(Check { name: "cut".into(), points: 1, pattern: "(?m)^hi$".into(), absent: true });
        let start = Instant::now();
        let result = run_checkpoint(&checkpoint, Path::new("/bin/sh"), Path::new("/"));
        // The shell's `sleep` child keeps the pipes open after the kill: the harness drains
        // them for 2 s at most, then goes on.
        assert!(start.elapsed() < Duration::from_secs(15), "killed at once, not after the sleep");
        assert_eq!(result.ending, Some(Ending::KilledByStep));
        assert!(result.passed(), "{}", result.report());

        // A run that ends before the kill step's output fails its exit check.
        let mut early = shell("echo hi; exit 0", 30);
        early.steps = checkpoint.steps.clone();
        let result = run_checkpoint(&early, Path::new("/bin/sh"), Path::new("/"));
        assert_eq!(result.ending, Some(Ending::Exited(Some(0))));
        assert!(!result.passed());
        assert_eq!(result.checks[1].message, "exited with code 0 before the kill step's output appeared");
    }

    #[test]
    fn output_is_matched_and_the_exit_code_checked() {
        let result = run_checkpoint(&shell("echo hi; echo oops >&2; exit 3", 20), Path::new("/bin/sh"), Path::new("."));
        assert_eq!(result.ending, Some(Ending::Exited(Some(3))));
        assert_eq!(result.output, "hi\noops\n", "stdout, then stderr");
        assert!(result.checks[0].passed);
        assert_eq!(result.checks[1].message, "exit code 3, expected 0");
    }

    #[test]
    fn a_run_past_its_timeout_is_killed() {
        let start = Instant::now();
        let result = run_checkpoint(&shell("sleep 30", 1), Path::new("/bin/sh"), Path::new("."));
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(result.ending, Some(Ending::TimedOut));
        assert_eq!(result.checks[1].message, "timed out after 1 s");
        assert_eq!(result.checks[0].message, "expected output matching /(?m)^hi$/");
    }

    #[test]
    fn a_process_that_lingers_after_a_panic_is_killed_early() {
        let start = Instant::now();
        let script = "echo \"thread 'vcpu 0' panicked at src/x.rs:1:1:\" >&2; echo 'not yet implemented' >&2; sleep 60";
        let result = run_checkpoint(&shell(script, 120), Path::new("/bin/sh"), Path::new("."));
        assert!(start.elapsed() < PANIC_GRACE + Duration::from_secs(5), "{:?}", start.elapsed());
        assert_eq!(result.ending, Some(Ending::KilledAfterPanic));
        assert!(result.checks[1].message.contains("a thread panicked"), "{}", result.checks[1].message);
    }

    #[test]
    fn a_flood_of_output_is_capped_and_still_times_out() {
        let start = Instant::now();
        // `yes` prints as fast as the pipe takes it, and never stops.
        let result = run_checkpoint(&shell("echo hi; exec yes flood", 2), Path::new("/bin/sh"), Path::new("."));
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
        assert_eq!(result.ending, Some(Ending::TimedOut));
        assert!(result.output.len() <= KEEP_HEAD + KEEP_TAIL + 200, "kept {} bytes", result.output.len());
        assert!(result.output.starts_with("hi\nflood\n"), "the start is kept");
        assert!(result.output.contains(" bytes of output left out: a run keeps its first 1024 KiB"));
        let end = &result.output[result.output.len() - 100..];
        assert!(end.contains("flood\nflood\n") && end.chars().all(|c| "flod\n".contains(c)), "and the end: {end}");
        assert!(result.checks[0].passed, "checks still see the kept output");
    }

    #[test]
    fn a_panic_marker_split_between_reads_is_found() {
        let mut out = CappedOutput::default();
        assert!(!out.push(b"thread 'main' pani"));
        assert!(out.push(b"cked at src/main.rs:1:1"));
        assert!(!out.push(b"more"));
        assert_eq!(out.into_text(), "thread 'main' panicked at src/main.rs:1:1more");
    }

    #[test]
    fn the_excerpt_cuts_endless_lines() {
        let text = format!("start\n{}\n", "x".repeat(10_000));
        let excerpt = excerpt(&text, 5);
        assert_eq!(excerpt, format!("start\n{}…", "x".repeat(EXCERPT_LINE_CHARS)));
    }

    #[test]
    fn the_excerpt_keeps_the_first_panic_and_the_end() {
        let mut text = String::from("boot\nthread 'vcpu 0' panicked at a.rs:1:1:\nnot yet implemented: stage 5\n");
        for i in 0..30 {
            text += &format!("line {i}\n");
        }
        let excerpt = excerpt(&text, 3);
        assert_eq!(
            excerpt,
            "thread 'vcpu 0' panicked at a.rs:1:1:\nnot yet implemented: stage 5\n[...]\nline 27\nline 28\nline 29"
        );
        assert_eq!(super::excerpt("a\nb\n", 5), "a\nb");
        assert_eq!(super::excerpt("a\nb\nc\n", 2), "[...]\nb\nc");
    }
}
