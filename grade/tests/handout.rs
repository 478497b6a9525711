//! A handout of the real tree: every region stubbed, nothing else changed, and it still builds.

use grade::tree;
use std::path::{Path, PathBuf};
use std::process::Command;

fn work_dir() -> PathBuf {
    // One fixed place under target/tmp: a second run rewrites only what changed, and cargo
    // rebuilds only that.
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

#[test]
fn the_handout_stubs_every_region_and_still_builds() {
    let repo = checkpoints::repo_root();
    let out = work_dir().join("handout-all");
    let all = tree::exercises(&repo).unwrap();
    assert!(all.len() >= 10, "only {} exercises", all.len());
    let names: Vec<String> = all.iter().map(|r| r.name.clone()).collect();
    let summary = tree::write_handout(&repo, &out, &names).unwrap();
    assert_eq!(summary.stubbed, names);
    let copied = tree::list_files(&repo).unwrap().iter().filter(|f| !f.starts_with(tree::MUTANTS_DIR)).count();
    assert_eq!(summary.files, copied + tree::HANDOUT_EXTRAS.len(), "every file but the mutants, and the extras");

    for region in &all {
        let text = std::fs::read_to_string(out.join(&region.file)).unwrap();
        for function in &region.functions {
            let stub = format!("todo!(\"stage {} exercise {} (fn {function}): ", region.stage, region.name);
            assert!(text.contains(&stub), "{}: no stub for {function}", region.file.display());
        }
        // The markers stay, so that students see where to work.
        assert!(text.contains(&format!("// lab:begin solution {}", region.name)));
    }
    // Files without regions are copied byte for byte.
    for file in ["Cargo.toml", "tests/checkpoints/stage01.toml", "stages/01-hello/src/main.rs"] {
        assert_eq!(std::fs::read(repo.join(file)).unwrap(), std::fs::read(out.join(file)).unwrap(), "{file}");
    }
    // The stubbed tree parses as the same set of regions (the markers survive the stubbing).
    assert_eq!(tree::exercises(&out).unwrap().len(), all.len());

    let status = cargo_check(&out, &work_dir().join("handout-target"));
    assert!(status, "the handout does not build: see cargo's output above");
}

fn cargo_check(tree: &Path, target: &Path) -> bool {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .args(["check", "--workspace", "--all-targets", "--quiet", "--target-dir"])
        .arg(target)
        .current_dir(tree)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_handout_for_one_stage_stubs_only_that_stage() {
    let repo = checkpoints::repo_root();
    let all = tree::exercises(&repo).unwrap();
    let chosen = tree::select(&all, &[1], &[]).unwrap();
    assert_eq!(chosen.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["stage1-exit-handling"]);
    let err = tree::select(&all, &[], &["stage9-nothing".to_string()]).unwrap_err();
    assert!(err.to_string().starts_with("no exercise 'stage9-nothing' (there are: stage1-exit-handling, "), "{err}");

    let out = tempfile::tempdir().unwrap();
    let summary = tree::write_handout(&repo, out.path(), &["stage1-exit-handling".to_string()]).unwrap();
    assert_eq!(summary.stubbed, ["stage1-exit-handling"]);
    let lib = std::fs::read_to_string(out.path().join("stages/01-hello/src/lib.rs")).unwrap();
    assert!(lib.contains("todo!(\"stage 1 exercise stage1-exit-handling (fn handle_exit): "));
    assert!(
        repo.join(tree::MUTANTS_DIR).is_dir() && !out.path().join(tree::MUTANTS_DIR).exists(),
        "no mutants in a handout: each is nearly the solution"
    );
    let memory = "stages/02-memory/src/memory.rs";
    assert_eq!(std::fs::read(repo.join(memory)).unwrap(), std::fs::read(out.path().join(memory)).unwrap());
    // Writing the same handout again touches nothing.
    let again = tree::write_handout(&repo, out.path(), &["stage1-exit-handling".to_string()]).unwrap();
    assert_eq!(again.written, 0);
    // A handout over the tree itself is refused.
    assert!(matches!(tree::write_handout(&repo, &repo, &[]), Err(tree::TreeError::OutIsRepo(_))));
}
