//! The repository as files: listing it, finding its solution regions, writing a handout.

use crate::regions::{self, Region, RegionError};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors from reading a tree or writing a handout.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The solution markers are wrong.
    #[error(transparent)]
    Region(#[from] RegionError),
    /// A selected stage or exercise does not exist.
    #[error("{0}")]
    Selection(String),
    /// The handout would overwrite the tree it comes from.
    #[error("the handout directory {0} is the repository itself")]
    OutIsRepo(PathBuf),
}

/// Plausible wrong answers to each exercise (`grade/mutants/<exercise>/<mutant>.rs`, see
/// `grade/README.md`). Each is the solution with one mistake, so handouts leave them out.
pub const MUTANTS_DIR: &str = "grade/mutants";

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| TreeError::Io { path: path.to_path_buf(), source }
}

/// The files of the repository at `repo`, relative to it: what git tracks plus untracked files
/// it does not ignore, or (outside git) everything but `.git`, `target` and `labs/guest/out`.
pub fn list_files(repo: &Path) -> Result<Vec<PathBuf>, TreeError> {
    // Only at the top of a work tree: a handout inside another tree's ignored target/ is not
    // that tree.
    let git = match is_git_top_level(repo) {
        true => Command::new("git")
            .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
            .current_dir(repo)
            .output()
            .ok(),
        false => None,
    };
    let mut files: Vec<PathBuf> = match git {
        Some(out) if out.status.success() => out
            .stdout
            .split(|&b| b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
            .filter(|path| repo.join(path).is_file())
            .collect(),
        _ => {
            let mut files = Vec::new();
            walk(repo, Path::new(""), &mut files)?;
            files
        }
    };
    files.sort();
    files.dedup();
    Ok(files)
}

fn is_git_top_level(repo: &Path) -> bool {
    let Ok(out) = Command::new("git").args(["rev-parse", "--show-toplevel"]).current_dir(repo).output() else {
        return false;
    };
    let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success() && top.canonicalize().ok() == repo.canonicalize().ok()
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), TreeError> {
    let full = root.join(dir);
    for entry in std::fs::read_dir(&full).map_err(io_error(&full))? {
        let entry = entry.map_err(io_error(&full))?;
        let relative = dir.join(entry.file_name());
        let skip = [".git", "target", "labs/guest/out"].iter().any(|s| relative == Path::new(s));
        let kind = entry.file_type().map_err(io_error(&full))?;
        if skip {
            continue;
        } else if kind.is_dir() {
            walk(root, &relative, files)?;
        } else if root.join(&relative).is_file() {
            files.push(relative);
        }
    }
    Ok(())
}

/// The Rust sources of the stages (where solution regions live), relative path → text.
pub fn stage_sources(repo: &Path, files: &[PathBuf]) -> Result<BTreeMap<PathBuf, String>, TreeError> {
    let mut sources = BTreeMap::new();
    for file in files.iter().filter(|f| f.starts_with("stages") && f.extension().is_some_and(|e| e == "rs")) {
        let path = repo.join(file);
        sources.insert(file.clone(), std::fs::read_to_string(&path).map_err(io_error(&path))?);
    }
    Ok(sources)
}

/// Every solution region of the repository at `repo`, by stage, file and line.
pub fn exercises(repo: &Path) -> Result<Vec<Region>, TreeError> {
    let files = list_files(repo)?;
    Ok(regions::parse_tree(&stage_sources(repo, &files)?)?)
}

/// Which exercises a handout stubs: those of `stages` and those named in `names`; all of them
/// when both are empty.
pub fn select<'a>(all: &'a [Region], stages: &[u32], names: &[String]) -> Result<Vec<&'a Region>, TreeError> {
    for name in names {
        if !all.iter().any(|r| &r.name == name) {
            let known: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
            return Err(TreeError::Selection(format!("no exercise '{name}' (there are: {})", known.join(", "))));
        }
    }
    for stage in stages {
        if !all.iter().any(|r| r.stage == *stage) {
            return Err(TreeError::Selection(format!("stage {stage} has no exercises")));
        }
    }
    let everything = stages.is_empty() && names.is_empty();
    Ok(all.iter().filter(|r| everything || stages.contains(&r.stage) || names.contains(&r.name)).collect())
}

/// Files a handout carries that the tree does not: GitHub Classroom's workflow (path in the
/// handout, contents). They replace a file of the tree at the same path.
pub const HANDOUT_EXTRAS: &[(&str, &str)] = &[(crate::classroom::WORKFLOW_PATH, crate::classroom::WORKFLOW)];

/// What a handout wrote.
#[derive(Debug, Default)]
pub struct HandoutSummary {
    /// Files in the handout.
    pub files: usize,
    /// Files written (new or changed) by this call.
    pub written: usize,
    /// The exercises stubbed.
    pub stubbed: Vec<String>,
}

/// Writes to `out` a copy of the repository at `repo` (without [`MUTANTS_DIR`]) in which the
/// regions named in `stub` are replaced by stubs, plus the [`HANDOUT_EXTRAS`]. Files whose
/// content is already right are not touched, so writing handouts again and again into one
/// directory rebuilds only what changed.
pub fn write_handout(repo: &Path, out: &Path, stub: &[String]) -> Result<HandoutSummary, TreeError> {
    write_handout_with(repo, out, stub, &BTreeMap::new())
}

/// [`write_handout`], except that each file named in `replace` (a path relative to the tree)
/// gets the text given there instead: a mutant in place of a solution (see [`crate::mutants`]).
pub fn write_handout_with(
    repo: &Path,
    out: &Path,
    stub: &[String],
    replace: &BTreeMap<PathBuf, String>,
) -> Result<HandoutSummary, TreeError> {
    let repo_abs = repo.canonicalize().map_err(io_error(repo))?;
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    if out.canonicalize().map_err(io_error(out))? == repo_abs {
        return Err(TreeError::OutIsRepo(out.to_path_buf()));
    }
    let mut files = list_files(repo)?;
    files.retain(|file| !file.starts_with(MUTANTS_DIR));
    files.retain(|file| !HANDOUT_EXTRAS.iter().any(|(path, _)| file == Path::new(path)));
    let sources = stage_sources(repo, &files)?;
    let all = regions::parse_tree(&sources)?;
    let mut summary = HandoutSummary { files: files.len() + HANDOUT_EXTRAS.len(), ..Default::default() };
    for (path, contents) in HANDOUT_EXTRAS {
        let target = out.join(path);
        if std::fs::read(&target).ok().as_deref() != Some(contents.as_bytes()) {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            std::fs::write(&target, contents).map_err(io_error(&target))?;
            summary.written += 1;
        }
    }
    for file in &files {
        let in_file: Vec<Region> = all.iter().filter(|r| &r.file == file).cloned().collect();
        let source = repo.join(file);
        let contents = if let Some(text) = replace.get(file) {
            text.clone().into_bytes()
        } else if in_file.iter().any(|r| stub.contains(&r.name)) {
            let text = &sources[file];
            regions::stub_file(text, &in_file, &|r| stub.contains(&r.name))?.into_bytes()
        } else {
            std::fs::read(&source).map_err(io_error(&source))?
        };
        let target = out.join(file);
        if std::fs::read(&target).ok().as_deref() != Some(&contents[..]) {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            std::fs::write(&target, &contents).map_err(io_error(&target))?;
            copy_permissions(&source, &target)?;
            summary.written += 1;
        }
    }
    summary.stubbed = all.iter().filter(|r| stub.contains(&r.name)).map(|r| r.name.clone()).collect();
    Ok(summary)
}

/// Keeps scripts executable.
fn copy_permissions(from: &Path, to: &Path) -> Result<(), TreeError> {
    let permissions = std::fs::metadata(from).map_err(io_error(from))?.permissions();
    std::fs::set_permissions(to, permissions).map_err(io_error(to))
}
