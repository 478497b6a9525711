//! The console in a real terminal (a pseudo-terminal, as a user's terminal emulator gives):
//! raw mode while the guest runs, the exact settings back afterwards, whichever way out.
//!
//! Each session runs `sh -c 'stty -g > before; stage05; echo exit=$?; stty -g > after'` on
//! the pty, so `before` and `after` are the terminal's settings as the user's shell sees them.

use expectrl::{Eof, Regex, Session};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SCRIPT: &str = r#"stty -g > "$1/before"; "$0"; echo "exit=$?"; stty -g > "$1/after""#;

fn start(name: &str) -> (Session, PathBuf) {
    checkpoints::require_kvm();
    checkpoints::guest::ensure_built(&checkpoints::repo_root()).unwrap_or_else(|e| panic!("{e}"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new("sh");
    command.arg("-c").arg(SCRIPT).arg(env!("CARGO_BIN_EXE_stage05")).arg(&dir);
    let mut session = Session::spawn(command).expect("cannot start a session on a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(300)));
    (session, dir)
}

fn assert_terminal_restored(dir: &Path) {
    let before = std::fs::read_to_string(dir.join("before")).unwrap();
    let after = std::fs::read_to_string(dir.join("after")).unwrap();
    assert!(before.contains(':'), "stty -g printed {before:?}");
    assert_eq!(before, after, "the terminal settings changed across the run");
}

/// The process whose parent is `parent` (the VMM, child of the session's shell).
fn child_of(parent: i32) -> i32 {
    for _ in 0..100 {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
            let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            if after_comm.split_whitespace().nth(1) == Some(&parent.to_string()) {
                return entry.file_name().to_string_lossy().parse().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the shell {parent} has no child");
}

#[test]
fn type_a_command_then_quit_with_ctrl_a_x() {
    let (mut session, dir) = start("ctrl-a-x");
    session.expect("minivirt# ").expect("no shell prompt");
    session.send("echo $((6*7))\r").unwrap();
    // The guest sends CR-LF and the terminal adds a CR of its own (output processing stays on).
    session.expect(Regex("\n42\r+\n")).expect("the command's output did not appear");
    session.send([0x01, b'x']).unwrap();
    session.expect("exit=0").expect("Ctrl-A x did not end the VMM with exit code 0");
    session.expect(Eof).unwrap();
    assert_terminal_restored(&dir);
}

#[test]
fn sigterm_stops_the_vmm_and_restores_the_terminal() {
    let (mut session, dir) = start("sigterm");
    session.expect("Linux version").expect("the kernel did not start");
    let vmm = child_of(session.get_process().pid().as_raw());
    // SAFETY: kill with a valid signal number has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(vmm, libc::SIGTERM) }, 0);
    session.expect("exit=143").expect("SIGTERM did not end the VMM with 128 + 15");
    session.expect(Eof).unwrap();
    assert_terminal_restored(&dir);
}
