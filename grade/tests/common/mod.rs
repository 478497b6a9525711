//! Shared by the tests that grade submissions: schemas, small stage-1-only trees, and a
//! target directory with stage 1's dependencies already compiled.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A schema of `grade/schema/`, compiled.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = checkpoints::repo_root().join("grade/schema").join(name);
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Panics with every violation when `value` does not match the schema `name`.
pub fn assert_valid(name: &str, value: &serde_json::Value) {
    let errors: Vec<String> =
        schema(name).iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "does not match {name}:\n{}\n{value:#}", errors.join("\n"));
}

/// Writes to `dest` a copy of this tree with only stage 1 (and the harness it dev-depends on):
/// a small submission that builds in seconds and needs no guest.
pub fn stage1_tree(dest: &Path) {
    let repo = checkpoints::repo_root();
    let files = grade::tree::list_files(&repo).unwrap();
    let keep =
        |f: &&PathBuf| f.starts_with("stages/01-hello") || f.starts_with("tests") || f == &Path::new("Cargo.lock");
    for file in files.iter().filter(keep) {
        let to = dest.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(file), &to).unwrap();
    }
    let manifest = std::fs::read_to_string(repo.join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").expect("the workspace lists its members");
    let end = start + manifest[start..].find(']').unwrap() + 1;
    let manifest = format!("{}members = [\"stages/01-hello\", \"tests\"]{}", &manifest[..start], &manifest[end..]);
    std::fs::write(dest.join("Cargo.toml"), manifest).unwrap();
}

/// Replaces stage 1's `main.rs` in the tree at `tree`.
pub fn replace_stage1_main(tree: &Path, source: &str) {
    std::fs::write(tree.join("stages/01-hello/src/main.rs"), source).unwrap();
}

/// A target directory in which a stage-1 tree's dependencies are compiled, built once.
fn warm_target() -> &'static Path {
    static WARM: OnceLock<PathBuf> = OnceLock::new();
    WARM.get_or_init(|| {
        let warm = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("warm-stage1");
        let tree = warm.join("tree");
        if !tree.join("Cargo.toml").exists() {
            stage1_tree(&tree);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "stage01", "--bins", "--target-dir"])
            .arg(warm.join("target"))
            .current_dir(&tree)
            .status()
            .unwrap();
        assert!(status.success(), "the warm stage-1 build failed");
        warm.join("target")
    })
}

/// Fills the target directory `dest` with stage 1's compiled dependencies, so that grading a
/// submission there compiles only its own crates. Only a build cache: cargo rebuilds whatever
/// differs, and the grader claims the directory for the tree it builds as usual.
pub fn seed_target(dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    let status = Command::new("cp").arg("-a").arg(warm_target().join(".")).arg(dest).status().unwrap();
    assert!(status.success(), "cannot copy the warm target into {}", dest.display());
}

/// A stage-1 `main.rs` that does not compile.
pub const BROKEN_MAIN: &str = "fn main() {\n    let answer: u32 = \"forty-two\";\n}\n";
