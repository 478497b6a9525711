//! `grade autograder` end to end: the generated `run_autograder` runs here, in a folder laid
//! out as Gradescope's `/autograder` (`MINIVIRT_AUTOGRADER` points it there), against a
//! stage-1 submission that builds, the same with KVM hidden, one that does not build, and an
//! empty one. Each time it must write `results/results.json` in Gradescope's shape.

mod common;

use common::{assert_valid, replace_stage1_main, seed_target, stage1_tree, BROKEN_MAIN};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_grade")).args(args).output().unwrap()
}

/// Runs the autograder in `root` (as Gradescope runs `/autograder/run_autograder`) and returns
/// the results it wrote, checked against Gradescope's shape.
fn run_autograder(root: &Path, kvm_device: Option<&str>) -> serde_json::Value {
    let results = root.join("results/results.json");
    let mut command = Command::new(root.join("source/run_autograder"));
    command
        .current_dir(root)
        .env("MINIVIRT_AUTOGRADER", root)
        .env("MINIVIRT_GRADE", env!("CARGO_BIN_EXE_grade"))
        .env_remove("CARGO_TARGET_DIR");
    match kvm_device {
        Some(device) => command.env(checkpoints::KVM_DEVICE_VAR, device),
        None => command.env_remove(checkpoints::KVM_DEVICE_VAR),
    };
    let out = command.output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "run_autograder exits 0 whatever happens:\n{log}");
    let text = std::fs::read_to_string(&results).unwrap_or_else(|e| panic!("no results.json ({e}):\n{log}"));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_valid("gradescope-results.schema.json", &value);
    value
}

fn tests_of(results: &serde_json::Value) -> &Vec<serde_json::Value> {
    results["tests"].as_array().unwrap()
}

fn submit(root: &Path, tree: impl FnOnce(&Path)) {
    let submission = root.join("submission");
    if submission.exists() {
        std::fs::remove_dir_all(&submission).unwrap();
    }
    std::fs::create_dir_all(&submission).unwrap();
    tree(&submission);
}

#[test]
fn the_autograder_always_writes_results_json() {
    checkpoints::require_kvm();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let written = tmp.path().join("written");
    let out = cli(&["autograder", "--out", written.to_str().unwrap(), "--stage", "1", "--time-limit", "400"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // What goes into the zip.
    let repo = checkpoints::repo_root();
    let setup = std::fs::read_to_string(written.join("setup.sh")).unwrap();
    for needed in ["TOOLCHAIN=stable", "busybox-static", "e2fsprogs", "https://sh.rustup.rs", "STAGES=(--stage 1)"] {
        assert!(setup.contains(needed), "setup.sh lacks {needed}");
    }
    let run = std::fs::read_to_string(written.join("run_autograder")).unwrap();
    for placeholder in ["@STAGES@", "@TOOLCHAIN@", "@TIME_LIMIT@", "@GUEST_PACKAGES@"] {
        assert!(!setup.contains(placeholder) && !run.contains(placeholder), "{placeholder} is filled");
    }
    assert!(run.contains("TIME_LIMIT=400") && run.contains("STAGES=(--stage 1)"), "{run}");
    for script in ["setup.sh", "run_autograder"] {
        let path = written.join(script);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o111, 0o111, "{script} is executable");
        let syntax = Command::new("bash").arg("-n").arg(&path).status().unwrap();
        assert!(syntax.success(), "{script} is valid bash");
    }
    assert_eq!(
        std::fs::read(written.join("checkpoints/stage01.toml")).unwrap(),
        std::fs::read(repo.join("tests/checkpoints/stage01.toml")).unwrap()
    );
    assert!(!written.join("checkpoints/stage02.toml").exists(), "only the stages asked for");
    let lib = std::fs::read_to_string(written.join("minivirt/stages/01-hello/src/lib.rs")).unwrap();
    assert!(lib.contains("todo!(\"stage 1 exercise stage1-exit-handling"), "the grader's source is the handout");

    // Gradescope's layout: the zip's contents in source/, the submission beside it. The work
    // folder's target directory gets stage 1's dependencies, as setup.sh's warm-up build would.
    let root = tmp.path().join("autograder");
    std::fs::create_dir_all(&root).unwrap();
    let copied = Command::new("cp").arg("-a").arg(&written).arg(root.join("source")).status().unwrap();
    assert!(copied.success());
    seed_target(&root.join("work/target"));

    // 1. A submission that builds: full marks.
    submit(&root, stage1_tree);
    let results = run_autograder(&root, None);
    assert_eq!(results["score"], 15, "{results:#}");
    assert!(tests_of(&results).iter().all(|t| t["status"] == "passed"), "{results:#}");
    assert!(results["output"].as_str().unwrap().contains("Score: 15/15"));

    // 2. The same in a container without /dev/kvm: every KVM check says so, the other one runs.
    let results = run_autograder(&root, Some("/nonexistent/kvm"));
    assert_eq!(results["score"], 0, "{results:#}");
    for test in tests_of(&results) {
        let name = test["name"].as_str().unwrap();
        let output = test["output"].as_str().unwrap();
        if name.starts_with("stage 1: bad flag") {
            assert_eq!(test["status"], "passed", "{name} needs no KVM");
        } else {
            assert_eq!(test["status"], "failed");
            assert!(output.contains("needs KVM, and /nonexistent/kvm cannot be opened"), "{name}: {output}");
        }
    }
    let summary = results["output"].as_str().unwrap();
    assert!(summary.contains("checks could not run: each needs KVM"), "{summary}");

    // 3. A submission that does not build: every check fails with the compiler's error.
    submit(&root, |tree| {
        stage1_tree(tree);
        replace_stage1_main(tree, BROKEN_MAIN);
    });
    let results = run_autograder(&root, None);
    assert_eq!(results["score"], 0);
    assert_eq!(tests_of(&results).len(), 6, "every check of the instructor's checkpoints: {results:#}");
    for test in tests_of(&results) {
        let output = test["output"].as_str().unwrap();
        assert_eq!(test["status"], "failed");
        assert!(output.contains("`cargo build -p stage01 --bins` failed"), "{output}");
        assert!(output.contains("error[E0308]: mismatched types"), "the compiler's error: {output}");
    }

    // 4. Nothing usable submitted: still results, and why.
    submit(&root, |tree| std::fs::write(tree.join("notes.txt"), "I ran out of time\n").unwrap());
    let results = run_autograder(&root, None);
    assert_eq!(results["score"], 0);
    let first = tests_of(&results)[0]["output"].as_str().unwrap();
    assert!(first.contains("`cargo build -p stage01 --bins` failed"), "{first}");
    assert!(first.contains("Cargo.toml"), "cargo says what is missing: {first}");
}

#[test]
fn a_grader_that_cannot_run_still_leaves_results() {
    let tmp = tempfile::tempdir().unwrap();
    let written = tmp.path().join("source");
    let out = cli(&["autograder", "--out", written.to_str().unwrap(), "--stage", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = tmp.path();
    let out = Command::new(root.join("source/run_autograder"))
        .env("MINIVIRT_AUTOGRADER", root)
        .env("MINIVIRT_GRADE", PathBuf::from("/nonexistent/grade"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("results/results.json")).unwrap()).unwrap();
    assert_valid("gradescope-results.schema.json", &results);
    assert_eq!(results["score"], 0);
    assert!(results["output"].as_str().unwrap().contains("The grader could not run (exit status 127)"), "{results}");
}
