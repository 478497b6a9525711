//! `grade diff` on a small tree of two stages: the READMEs' generated diffs are written, found
//! up to date, and found stale once a stage's `main.rs` changes.

use grade::stage_diff::{self, StageDiffError};
use std::path::{Path, PathBuf};
use std::process::Command;

const README: &str = "# Stage\n\n## Diff to previous\n\n<!-- diff:begin -->\n<!-- diff:end -->\n\nEnd.\n";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Stage 1 prints a line; stage 2 adds a `bus` module and calls it from `main`.
fn two_stages() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    write(&root.join("stages/01-hello/src/lib.rs"), "//! One.\n");
    write(&root.join("stages/01-hello/src/main.rs"), "fn main() {\n    println!(\"hello\");\n}\n");
    write(&root.join("stages/02-bus/src/lib.rs"), "//! Two.\npub mod bus;\n");
    write(&root.join("stages/02-bus/src/bus.rs"), "//! A bus.\npub use stage01::Thing;\n");
    write(
        &root.join("stages/02-bus/src/main.rs"),
        "fn main() {\n    println!(\"hello\");\n    stage02::bus::run();\n}\n",
    );
    for stage in ["01-hello", "02-bus"] {
        write(&root.join("stages").join(stage).join("README.md"), README);
    }
    repo
}

fn readme(repo: &Path, stage: &str) -> String {
    std::fs::read_to_string(repo.join("stages").join(stage).join("README.md")).unwrap()
}

fn relative(repo: &Path, paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.into_iter().map(|p| p.strip_prefix(repo).unwrap().to_path_buf()).collect()
}

#[test]
fn written_readmes_pass_the_check_until_a_main_rs_changes() {
    let repo = two_stages();
    let root = repo.path();
    // Fresh READMEs have empty blocks: both are stale.
    let stale = relative(root, stage_diff::check_readmes(root, &[]).unwrap());
    assert_eq!(stale, [PathBuf::from("stages/01-hello/README.md"), PathBuf::from("stages/02-bus/README.md")]);

    assert_eq!(stage_diff::write_readmes(root, &[]).unwrap().len(), 2);
    assert_eq!(stage_diff::check_readmes(root, &[]).unwrap(), Vec::<PathBuf>::new());
    // Writing again changes nothing.
    assert_eq!(stage_diff::write_readmes(root, &[]).unwrap(), Vec::<PathBuf>::new());

    let first = readme(root, "01-hello");
    assert!(first.contains("<!-- diff:begin -->\n```diff\nStage 1 (stages/01-hello) is the first stage"), "{first}");
    let second = readme(root, "02-bus");
    for expected in [
        "## Diff to previous\n\n<!-- diff:begin -->\n```diff\nstage 2 (stages/02-bus) over stage 1 (stages/01-hello)\n",
        "+ new: bus.rs\n  same name in stage 1: lib.rs, main.rs\n",
        "+pub mod bus;\n",
        "  bus.rs: pub use stage01::Thing;\n",
        "<details open><summary>main.rs against stage 1's (+1 -0 lines)</summary>\n\n```diff\n",
        "     println!(\"hello\");\n+    stage02::bus::run();\n }\n```\n\n</details>\n<!-- diff:end -->\n\nEnd.\n",
    ] {
        assert!(second.contains(expected), "missing {expected:?} in:\n{second}");
    }

    // A hand edit of stage 2's recipe makes its README stale, and only its README.
    let main_rs = root.join("stages/02-bus/src/main.rs");
    let text = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, text.replace("run()", "run_twice()")).unwrap();
    let stale = relative(root, stage_diff::check_readmes(root, &[]).unwrap());
    assert_eq!(stale, [PathBuf::from("stages/02-bus/README.md")]);
    assert_eq!(stage_diff::check_readmes(root, &[1]).unwrap(), Vec::<PathBuf>::new());
    // A change in stage 1 shows in stage 2's diff too.
    stage_diff::write_readmes(root, &[]).unwrap();
    write(&root.join("stages/01-hello/src/main.rs"), "fn main() {}\n");
    let stale = relative(root, stage_diff::check_readmes(root, &[]).unwrap());
    assert_eq!(stale, [PathBuf::from("stages/02-bus/README.md")]);
}

#[test]
fn a_readme_without_markers_or_a_missing_stage_is_an_error() {
    let repo = two_stages();
    let root = repo.path();
    write(&root.join("stages/02-bus/README.md"), "# Stage 2\n");
    let err = stage_diff::check_readmes(root, &[]).unwrap_err();
    assert!(matches!(&err, StageDiffError::NoMarkers(path) if path.ends_with("stages/02-bus/README.md")), "{err}");

    let err = stage_diff::check_readmes(root, &[3]).unwrap_err();
    assert_eq!(err.to_string(), "there is no stage 3 (no folder stages/03-*)");

    std::fs::remove_file(root.join("stages/01-hello/README.md")).unwrap();
    let err = stage_diff::check_readmes(root, &[1]).unwrap_err();
    assert!(matches!(&err, StageDiffError::Io { path, .. } if path.ends_with("stages/01-hello/README.md")), "{err}");
}

#[test]
fn the_command_exits_1_on_a_stale_readme_and_0_after_write() {
    let repo = two_stages();
    let grade = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_grade"))
            .args(["diff", "--repo"])
            .arg(repo.path())
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = grade(&["--check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("stages/02-bus/README.md: the generated diff is stale\n"), "{out}");
    assert!(out.contains("cargo run -p grade -- diff --write"), "{out}");

    assert_eq!(grade(&["--write"]).0, Some(0));
    let (code, out) = grade(&["--check"]);
    assert_eq!((code, out.as_str()), (Some(0), "stage READMEs: generated diffs up to date\n"));

    // Printing a stage gives the text that is in its README.
    let (code, out) = grade(&["--stage", "2"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("stage 2 (stages/02-bus) over stage 1 (stages/01-hello)\n"), "{out}");
    let (summary, main_rs) = out.split_once("\nmain.rs against stage 1's (+1 -0 lines):\n").unwrap();
    let text = readme(repo.path(), "02-bus");
    assert!(text.contains(summary) && text.contains(main_rs), "{out}");
}
