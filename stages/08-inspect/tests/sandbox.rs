//! Confinement, seen from outside: a thread started under a vCPU's, the I/O thread's or the
//! console's filter cannot start a program or create a file. The refused call ends the
//! process with one line naming the thread and the call, and exit code 128 + SIGSYS.
//!
//! A filter cannot be taken off again, so each case runs in a child process: this test binary
//! again, running only the ignored `child_makes_one_call`, told what to do by environment
//! variables.

use stage03::threads;
use stage08::sandbox::sigsys::SIGSYS_EXIT_CODE;
use stage08::sandbox::{Sandbox, SandboxArgs};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const THREAD: &str = "MINIVIRT_SANDBOX_THREAD";
const CALL: &str = "MINIVIRT_SANDBOX_CALL";
const FILE: &str = "MINIVIRT_SANDBOX_FILE";
/// What the child prints when every call it made went through.
const ALLOWED: &str = "the calls were allowed";

/// A fresh directory for one case's file.
fn scratch(case: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stage08-sandbox-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `call` in a child process, on a confined thread called `thread`.
fn run_child(thread: &str, call: &str, file: &Path) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_makes_one_call", "--ignored", "--test-threads=1", "--nocapture", "-q"])
        .env(THREAD, thread)
        .env(CALL, call)
        .env(FILE, file)
        .output()
        .unwrap()
}

/// Asserts that the child died of the filter, with the one line naming `thread` and `call`.
fn assert_refused(output: &Output, thread: &str, call: &str, number: i64) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(SIGSYS_EXIT_CODE), "{}\n{stderr}", output.status);
    let expected = format!(
        "stage08: seccomp: thread '{thread}' made a forbidden system call: {call} ({number}); stopping (--no-seccomp turns the filters off)\n"
    );
    assert_eq!(stderr, expected);
    assert!(!String::from_utf8_lossy(&output.stdout).contains(ALLOWED));
}

#[test]
fn a_vcpu_thread_cannot_create_a_file() {
    let file = scratch("vcpu-create").join("new-file");
    let output = run_child("vcpu 0", "create", &file);
    assert_refused(&output, "vcpu 0", "openat", libc::SYS_openat);
    assert!(!file.exists(), "the file was created");
}

#[test]
fn a_vcpu_thread_cannot_start_a_program() {
    let file = scratch("vcpu-exec").join("unused");
    let output = run_child("vcpu 1", "execve", &file);
    assert_refused(&output, "vcpu 1", "execve", libc::SYS_execve);
}

#[test]
fn the_io_thread_cannot_create_a_file_or_start_a_program() {
    let file = scratch("io-create").join("new-file");
    assert_refused(&run_child("virtio i/o", "create", &file), "virtio i/o", "openat", libc::SYS_openat);
    assert!(!file.exists(), "the file was created");
    assert_refused(&run_child("virtio i/o", "execve", &file), "virtio i/o", "execve", libc::SYS_execve);
}

#[test]
fn the_console_thread_may_open_for_reading_but_not_create() {
    // Its monitor reads /proc/self/pagemap, so openat is allowed, but only read-only.
    let file = scratch("console-create").join("new-file");
    let output = run_child("console input", "read-then-create", &file);
    assert_refused(&output, "console input", "openat", libc::SYS_openat);
    assert!(String::from_utf8_lossy(&output.stdout).contains("read /proc/self/stat"), "the read-only open failed");
    assert!(!file.exists(), "the file was created");
}

#[test]
fn a_confined_vcpu_thread_still_does_its_job() {
    // Memory, locks, sleeping and writing: what every thread needs goes through.
    let file = scratch("vcpu-job").join("unused");
    let output = run_child("vcpu 0", "allowed", &file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    assert!(String::from_utf8_lossy(&output.stdout).contains(ALLOWED), "{stderr}");
}

#[test]
#[ignore = "the child process of the tests above; they run it"]
fn child_makes_one_call() {
    let (thread, call, file) = (env(THREAD), env(CALL), PathBuf::from(env(FILE)));
    let _sandbox = Sandbox::confine_threads("stage08", &SandboxArgs::default()).unwrap();
    let worker = threads::spawn(thread, move || match call.as_str() {
        "create" => {
            let _ = std::fs::File::create(&file);
        }
        "read-then-create" => {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
            println!("read /proc/self/stat: {} bytes", stat.len());
            let _ = std::fs::File::create(&file);
        }
        "execve" => {
            let program = CString::new("/bin/true").unwrap();
            let argv = [program.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the call.
            unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        }
        "allowed" => {
            let buffer = vec![7u8; 64 << 20];
            let lock = std::sync::Mutex::new(buffer.len());
            std::thread::sleep(std::time::Duration::from_millis(10));
            eprint!("{}", if *lock.lock().unwrap() == 64 << 20 { "" } else { "wrong length\n" });
        }
        other => panic!("unknown call {other}"),
    });
    worker.unwrap().join().unwrap();
    println!("{ALLOWED}");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: this test is run by the others"))
}
