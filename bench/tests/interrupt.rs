//! `bench` against a stand-in VMM (a shell script that prints the guest's marker): quick, and
//! no KVM needed. Ctrl-C during `bench boot` stops the running VMM (and what it started), the
//! table and the JSON hold the runs finished before, and bench exits with 130. Without QEMU,
//! `--qemu` is skipped in one line that says how to install it.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The first boot ends at once; every later one hangs for a minute after the marker.
const FAKE_VMM: &str = r#"#!/bin/sh
n=$(cat "$BENCH_FAKE_DIR/count" 2>/dev/null || echo 0)
echo $((n + 1)) > "$BENCH_FAKE_DIR/count"
echo "MINIVIRT-GUEST-READY kernel=fake uptime=0.1"
if [ "$n" -ge 1 ]; then sleep 60; fi
"#;

#[test]
fn ctrl_c_keeps_what_was_measured() {
    let dir = std::env::temp_dir().join(format!("bench-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let vmm = dir.join("fake-vmm.sh");
    std::fs::write(&vmm, FAKE_VMM).unwrap();
    std::fs::set_permissions(&vmm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let json = dir.join("boot.json");

    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["boot", "--runs", "3", "--vmm"])
        .arg(&vmm)
        .arg("--json")
        .arg(&json)
        .env("BENCH_FAKE_DIR", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the second boot is under way, then press Ctrl-C.
    while std::fs::read_to_string(dir.join("count")).unwrap_or_default().trim() != "2" {
        assert!(started.elapsed() < Duration::from_secs(20), "the second boot never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) sends SIGINT to our own child; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "bench waited for the hung VMM");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("\n| minivirt stage08 | 1 | "), "one finished run in the table:\n{stdout}");
    assert!(stdout.contains("- interrupted (Ctrl-C): the table holds the runs finished before"), "{stdout}");

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["groups"][0]["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(std::fs::read_to_string(dir.join("count")).unwrap().trim(), "2", "no third boot after Ctrl-C");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_qemu_is_skipped_in_one_line() {
    let dir = std::env::temp_dir().join(format!("bench-no-qemu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("empty-path")).unwrap();
    let vmm = dir.join("fake-vmm.sh");
    // Shell builtins only: PATH holds nothing.
    std::fs::write(&vmm, "#!/bin/sh\necho 'MINIVIRT-GUEST-READY kernel=fake uptime=0.1'\n").unwrap();
    std::fs::set_permissions(&vmm, std::fs::Permissions::from_mode(0o755)).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["boot", "--runs", "1", "--qemu", "--vmm"])
        .arg(&vmm)
        .env("PATH", dir.join("empty-path"))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(
        skipped,
        ["bench: skipped QEMU: qemu-system-x86_64 is not on PATH; install it with `apt-get install qemu-system-x86`"]
    );
    assert!(stdout.contains("\n| minivirt stage08 | 1 | ") && !stdout.contains("| QEMU"), "{stdout}");
    assert!(stdout.contains("- skipped: QEMU: qemu-system-x86_64 is not on PATH"), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}
