//! `grade batch` on a small class of stage-1 submissions, two at a time: one that is right, one
//! that does not build, one whose stage 1 floods its output forever, writes to "home" and links
//! to a file outside its folder, and one that is not a folder but a link. Each costs only its
//! own points, and the gradebook (CSV and JSON) says what happened to each.

mod common;

use common::{assert_valid, replace_stage1_main, seed_target, stage1_tree, BROKEN_MAIN};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

/// A stage 1 that leaves a file in `$HOME`, then prints forever.
const FLOOD_MAIN: &str = r#"use std::io::Write;

fn main() {
    let home = std::env::var("HOME").unwrap_or_default();
    let _ = std::fs::write(format!("{home}/minivirt-batch-escape.txt"), "written by a submission\n");
    let mut out = std::io::stdout().lock();
    loop {
        if out.write_all(b"flood flood flood flood flood flood flood\n").is_err() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
"#;

/// The instructor's checkpoints for the test: stage 1's, with every run stopped after 8 s
/// (stage 1 answers at once; only the flood runs that long).
fn quick_checkpoints(dir: &Path) {
    let text = std::fs::read_to_string(checkpoints::repo_root().join("tests/checkpoints/stage01.toml")).unwrap();
    let timeout = regex::Regex::new(r"(?m)^timeout = \d+$").unwrap();
    assert!(timeout.is_match(&text), "stage 1's checkpoints have timeouts");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("stage01.toml"), timeout.replace_all(&text, "timeout = 8").as_ref()).unwrap();
}

#[test]
fn a_bad_submission_costs_only_its_own_points() {
    checkpoints::require_kvm();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let class = tmp.path().join("class");
    let out = tmp.path().join("gradebook");
    let checkpoint_dir = tmp.path().join("checkpoints");
    quick_checkpoints(&checkpoint_dir);

    stage1_tree(&class.join("ada"));
    stage1_tree(&class.join("bob"));
    replace_stage1_main(&class.join("bob"), BROKEN_MAIN);
    let eve = class.join("eve");
    stage1_tree(&eve);
    replace_stage1_main(&eve, FLOOD_MAIN);
    let secret = tmp.path().join("instructor-notes.txt");
    std::fs::write(&secret, "the answers\n").unwrap();
    symlink(&secret, eve.join("stages/01-hello/src/notes.txt")).unwrap();
    symlink(class.join("ada"), class.join("mallory")).unwrap();
    // Stage 1's dependencies compiled in each work folder's target directory beforehand (a
    // build cache only), so that the test spends its time grading, not compiling clap.
    for name in ["ada", "bob", "eve"] {
        seed_target(&out.join("work").join(name).join("target"));
    }

    let run = Command::new(env!("CARGO_BIN_EXE_grade"))
        .arg("batch")
        .arg(&class)
        .args(["--jobs", "2", "--timeout", "600", "--out"])
        .arg(&out)
        .arg("--checkpoints")
        .arg(&checkpoint_dir)
        .env_remove(checkpoints::KVM_DEVICE_VAR)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));

    let csv = std::fs::read_to_string(out.join("gradebook.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "submission,status,stage 1,total,possible,message",
            "ada,graded,15,15,15,",
            "bob,build failed,0,0,15,stage 1 did not build",
            "eve,graded,0,0,15,",
            "mallory,error,0,0,15,not a folder (a symbolic link is not followed): not graded",
        ],
        "{csv}"
    );

    let gradebook: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("gradebook.json")).unwrap()).unwrap();
    assert_valid("gradebook.schema.json", &gradebook);
    assert_eq!(gradebook["possible"], 15);
    let rows = gradebook["submissions"].as_array().unwrap();
    let status: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["graded", "build_failed", "graded", "error"]);
    // Each graded submission's own results, in the format of `grade --json`.
    for row in &rows[..3] {
        let results = out.join(row["results"].as_str().unwrap());
        let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
        assert_valid("results.schema.json", &value);
        assert_eq!(value["points"], row["points"]);
    }

    // The flood: every run stopped at its timeout, and what was kept of it is bounded.
    let eve_work = out.join("work/eve");
    let results = std::fs::read_to_string(eve_work.join("results.json")).unwrap();
    assert!(results.contains("timed out after 8 s"), "{results}");
    assert!(results.len() < 200_000, "the results keep an excerpt, not the flood: {} bytes", results.len());
    assert!(std::fs::metadata(eve_work.join("grade.log")).unwrap().len() < 1_000_000);
    // What it wrote to "home" stayed in its work folder.
    assert!(eve_work.join("home/minivirt-batch-escape.txt").exists());
    let real_home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap();
    assert!(!real_home.join("minivirt-batch-escape.txt").exists(), "it wrote into the grader's home");
    // The link out of its folder was not followed when it was copied.
    assert!(std::fs::symlink_metadata(eve_work.join("tree/stages/01-hello/src/notes.txt")).is_err());
    assert!(std::fs::read_to_string(eve_work.join("grade.log")).unwrap().contains("not copied"));
    // And the others were graded as if it were not there.
    assert!(stdout.contains("ada"), "{stdout}");
}
