//! `grade autograder`: a ready Gradescope autograder, to be zipped and uploaded.
//!
//! ```text
//! DIR/setup.sh          installs Rust, the guest's packages; builds the grader (once, as root)
//! DIR/run_autograder    grades /autograder/submission, writes /autograder/results/results.json
//! DIR/checkpoints/      the instructor's stageNN.toml: what is graded, whatever a student edits
//! DIR/minivirt/         the handout (every exercise stubbed): the grader's source, the guest
//! ```
//!
//! The scripts are `grade/templates/setup.sh` and `grade/templates/run_autograder`, with the
//! stages, toolchain, time limit and guest packages filled in.
//!
//! # Resources
//! - Gradescope, "Autograder Specifications" (the zip, `/autograder/source`, `submission`,
//!   `results/results.json`): <https://gradescope-autograders.readthedocs.io/en/latest/specs/>
//! - Gradescope, "Troubleshooting" (the overall timeout: 10 minutes by default, at most 40):
//!   <https://gradescope-autograders.readthedocs.io/en/latest/troubleshooting/>

use crate::tree::{self, TreeError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const SETUP: &str = include_str!("../templates/setup.sh");
const RUN: &str = include_str!("../templates/run_autograder");

/// What to write.
#[derive(Debug, Clone)]
pub struct AutograderOptions {
    /// The instructor's tree (the handout is made from it).
    pub repo: PathBuf,
    /// Where the instructor's checkpoint files are.
    pub checkpoints_dir: PathBuf,
    /// The stages to grade (each must have a checkpoint file).
    pub stages: Vec<u32>,
    /// Where to write the autograder.
    pub out: PathBuf,
    /// The Rust toolchain rustup installs (`stable`, `1.95.0`).
    pub toolchain: String,
    /// Seconds grading may take before run_autograder stops it and says so.
    pub time_limit: u64,
}

/// Writes the autograder; returns the files written at its top (the handout aside).
///
/// # Errors
///
/// When a stage has no checkpoint file, the toolchain name is not a plain word, or a file
/// cannot be read or written.
pub fn write_autograder(options: &AutograderOptions) -> Result<Vec<PathBuf>, TreeError> {
    if options.toolchain.is_empty()
        || !options.toolchain.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(TreeError::Selection(format!("'{}' is not a toolchain name", options.toolchain)));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TreeError::Io { path, source }
    };
    let checkpoints = options.out.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).map_err(io(&checkpoints))?;
    let mut written = Vec::new();
    for &stage in &options.stages {
        let from = checkpoints::stage_file(&options.checkpoints_dir, stage);
        if !from.is_file() {
            return Err(TreeError::Selection(format!("stage {stage} has no checkpoint file {}", from.display())));
        }
        let to = checkpoints::stage_file(&checkpoints, stage);
        std::fs::copy(&from, &to).map_err(io(&from))?;
        written.push(to);
    }

    let stages: Vec<String> = options.stages.iter().map(|s| format!("--stage {s}")).collect();
    let build_script = options.repo.join("labs/guest/build.sh");
    let build_text = std::fs::read_to_string(&build_script).map_err(io(&build_script))?;
    let fill = |template: &str| {
        template
            .replace("@STAGES@", &stages.join(" "))
            .replace("@TOOLCHAIN@", &options.toolchain)
            .replace("@TIME_LIMIT@", &options.time_limit.to_string())
            .replace("@GUEST_PACKAGES@", &guest_packages(&build_text).join(" "))
    };
    for (name, template) in [("setup.sh", SETUP), ("run_autograder", RUN)] {
        let path = options.out.join(name);
        std::fs::write(&path, fill(template)).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io(&path))?;
        written.push(path);
    }

    let all: Vec<String> = tree::exercises(&options.repo)?.into_iter().map(|r| r.name).collect();
    tree::write_handout(&options.repo, &options.out.join("minivirt"), &all)?;
    Ok(written)
}

/// The packages of the `PACKAGES=(...)` array in `labs/guest/build.sh` that are plain Debian
/// package names (a `$VARIABLE` in it is left to build.sh, which installs what it misses).
pub fn guest_packages(build_script: &str) -> Vec<String> {
    let Some(start) = build_script.find("\nPACKAGES=(") else { return Vec::new() };
    let list = &build_script[start + "\nPACKAGES=(".len()..];
    let list = &list[..list.find(')').unwrap_or(0)];
    list.split_whitespace()
        .filter(|word| {
            word.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c))
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_packages_are_read_from_build_sh() {
        let text = std::fs::read_to_string(checkpoints::repo_root().join("labs/guest/build.sh")).unwrap();
        let packages = guest_packages(&text);
        for needed in ["busybox-static", "e2fsprogs", "cpio", "flex", "bison"] {
            assert!(packages.iter().any(|p| p == needed), "{needed} not in {packages:?}");
        }
        let odd = "x\nPACKAGES=(\"$LINUX_PKG\" gcc lib+x\n  bc) # done\n";
        assert_eq!(guest_packages(odd), ["gcc", "lib+x", "bc"]);
    }
}
