//! `grade` on stage 1 (fast, no guest): full marks on the full tree, 0 on a handout that stubs
//! stage 1's exercise; both JSON documents validate against grade/schema/results.schema.json.

use grade::grading::{grade, GradeOptions, StageStatus, Status};
use grade::{report, tree};
use std::path::PathBuf;
use std::process::Command;

fn schema() -> jsonschema::Validator {
    let path = checkpoints::repo_root().join("grade/schema/results.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).expect("the schema is a valid draft 2020-12 schema")
}

fn assert_valid(json: &str) {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let errors: Vec<String> = schema().iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "the results do not match the schema:\n{}\n{json}", errors.join("\n"));
}

#[test]
fn full_tree_gets_full_marks_and_a_stage1_handout_gets_zero() {
    checkpoints::require_kvm();
    let repo = checkpoints::repo_root();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    // A target directory per tree: both put their binary at debug/stage01.
    let target = tmp.join("grade-target");
    let json_file = tmp.join("grade-stage1.json");

    // The command line, on the full tree.
    let out = Command::new(env!("CARGO_BIN_EXE_grade"))
        .args(["--stage", "1", "--json"])
        .arg(&json_file)
        .arg("--target-dir")
        .arg(&target)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "grade failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l == "Score: 15/15"), "{stdout}");
    assert!(stdout.contains("hello / prints HELLO, WORLD!"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "no colour when stdout is not a terminal");
    let json = std::fs::read_to_string(&json_file).unwrap();
    assert_valid(&json);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["points"], serde_json::json!({"earned": 15, "possible": 15}));
    assert_eq!(value["status"], "pass");

    // A handout with stage 1's exercise stubbed: 0 points, and the failure says why.
    let handout = tmp.join("handout-stage1");
    tree::write_handout(&repo, &handout, &["stage1-exit-handling".to_string()]).unwrap();
    let report = grade(&GradeOptions {
        repo: handout.clone(),
        stages: vec![1],
        target_dir: tmp.join("grade-handout-target"),
        checkpoints_dir: handout.join("tests/checkpoints"),
        stop_at_first_failure: false,
        progress: false,
    });
    assert_eq!(report.stages[0].status, StageStatus::Graded);
    assert_eq!((report.points.earned, report.points.possible), (0, 15), "{}", report::table(&report, false));
    let hello = report.stages[0].checks.iter().find(|c| c.check == "prints HELLO, WORLD!").unwrap();
    assert_eq!(hello.status, Status::Fail);
    assert_eq!(hello.expected, "(?m)^HELLO, WORLD!$");
    assert!(hello.output_excerpt.contains("stage 1 exercise stage1-exit-handling"), "{}", hello.output_excerpt);
    let table = report::table(&report, false);
    assert!(table.contains("expected: /(?m)^HELLO, WORLD!$/"), "{table}");
    assert!(table.contains("Score: 0/15"), "{table}");
    // The error path does not reach the stub: it still passes (it is worth 0 points).
    assert!(report.stages[0].checks.iter().any(|c| c.checkpoint == "bad flag" && c.status == Status::Pass));
    let json = report::json(&report);
    assert_valid(&json);
    assert!(json.contains("\"status\": \"fail\""));
}

#[test]
fn a_stage_without_checkpoints_is_reported_not_failed() {
    let repo = checkpoints::repo_root();
    let empty = tempfile::tempdir().unwrap();
    let report = grade(&GradeOptions {
        repo: repo.clone(),
        stages: vec![1],
        target_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("unused"),
        checkpoints_dir: empty.path().to_path_buf(),
        stop_at_first_failure: false,
        progress: false,
    });
    assert_eq!(report.stages[0].status, StageStatus::NoCheckpoints);
    assert_eq!((report.points.earned, report.points.possible), (0, 0));
    assert!(report.stages[0].message.contains("stage01.toml"));
    assert_valid(&report::json(&report));
}

#[test]
fn a_target_directory_serves_one_tree_only() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.join("claimed-target");
    let _ = std::fs::remove_dir_all(&target);
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("grade-tree.txt"), format!("{}\n", other.path().display())).unwrap();
    let err = grade::grading::build_stage(&checkpoints::repo_root(), &target, 1).unwrap_err();
    assert!(err.0.contains("give") && err.0.contains("a target directory of its own"), "{}", err.0);
}
