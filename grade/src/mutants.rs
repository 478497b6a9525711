//! Mutants: plausible wrong answers to each exercise, which its checkpoints must catch.
//!
//! `grade/mutants/<exercise>/<mutant>.rs` holds one mistake a student makes. Its first line is
//! `// mutant: <one sentence>`; the rest replaces the lines strictly between the exercise's
//! `// lab:begin solution <exercise>` line and its `// lab:end` line. [`run_mutant`] writes the
//! tree with that text in place of the solution (every other exercise solved), builds the
//! stage, and runs its checkpoints until the first lost point: the mutant is *caught* there, or
//! it *survives* with full marks, which means no checkpoint tests that mistake.
//!
//! Like the author check's stubs, every mutant is written into one directory and built with one
//! target directory, so each rebuilds only the crate whose file changed.

use crate::grading::{self, GradeOptions, StageStatus, Status};
use crate::regions::Region;
use crate::tree::{self, TreeError, MUTANTS_DIR};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the first line of a mutant file starts with.
pub const MUTANT_LINE: &str = "// mutant: ";

/// Errors from reading the mutants or writing a tree with one in place.
#[derive(Debug, thiserror::Error)]
pub enum MutantError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// A mutant file does not follow the format.
    #[error("{path}: {reason} (the first line must be `{MUTANT_LINE}<one sentence describing the mistake>`; see grade/README.md, \"Mutants\")")]
    Malformed {
        /// The file, relative to the tree.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A mutant's folder names no exercise of the tree.
    #[error("{path}: there is no exercise '{exercise}' (there are: {known})")]
    NoExercise {
        /// The file, relative to the tree.
        path: PathBuf,
        /// The folder's name.
        exercise: String,
        /// The exercises there are.
        known: String,
    },
    /// The tree's regions or files are wrong.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// One plausible wrong answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutant {
    /// The exercise it answers (its folder's name).
    pub exercise: String,
    /// Its name (the file name without `.rs`).
    pub name: String,
    /// The file, relative to the tree.
    pub path: PathBuf,
    /// The mistake, in one sentence (from the first line).
    pub description: String,
    /// The lines that replace the region's body.
    pub body: String,
}

/// Parses one mutant file: `path` is `grade/mutants/<exercise>/<name>.rs`, `text` its contents.
///
/// # Errors
/// [`MutantError::Malformed`] when the first line is not a `// mutant:` line with a sentence.
pub fn parse_mutant(path: &Path, text: &str) -> Result<Mutant, MutantError> {
    let malformed = |reason: &str| MutantError::Malformed { path: path.to_path_buf(), reason: reason.to_string() };
    let exercise = path.parent().and_then(Path::file_name).and_then(|n| n.to_str());
    let name = path.file_stem().and_then(|n| n.to_str());
    let (Some(exercise), Some(name)) = (exercise, name) else {
        return Err(malformed("not at grade/mutants/<exercise>/<mutant>.rs"));
    };
    let (first, body) = text.split_once('\n').unwrap_or((text, ""));
    let Some(description) = first.strip_prefix(MUTANT_LINE) else {
        return Err(malformed("no `// mutant:` line first"));
    };
    let description = description.trim();
    if description.is_empty() {
        return Err(malformed("the `// mutant:` line does not say what the mistake is"));
    }
    if body.contains("lab:begin") || body.contains("lab:end") {
        return Err(malformed("it holds a lab:begin or lab:end marker, but it replaces only what is between them"));
    }
    Ok(Mutant {
        exercise: exercise.to_string(),
        name: name.to_string(),
        path: path.to_path_buf(),
        description: description.to_string(),
        body: body.to_string(),
    })
}

/// Every mutant of the tree at `repo` (`grade/mutants/*/*.rs`), by exercise then name.
///
/// # Errors
/// A file that cannot be read, does not follow the format, or is in the folder of an exercise
/// the tree does not have: each names the file.
pub fn load_mutants(repo: &Path, exercises: &[Region]) -> Result<Vec<Mutant>, MutantError> {
    let root = repo.join(MUTANTS_DIR);
    let mut mutants = Vec::new();
    if !root.is_dir() {
        return Ok(mutants);
    }
    for folder in sorted_entries(&root)? {
        if !root.join(&folder).is_dir() {
            continue;
        }
        for file in sorted_entries(&root.join(&folder))? {
            let path = Path::new(MUTANTS_DIR).join(&folder).join(&file);
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let full = repo.join(&path);
            let text = std::fs::read_to_string(&full).map_err(|source| MutantError::Io { path: full, source })?;
            let mutant = parse_mutant(&path, &text)?;
            if !exercises.iter().any(|r| r.name == mutant.exercise) {
                let known: Vec<&str> = exercises.iter().map(|r| r.name.as_str()).collect();
                return Err(MutantError::NoExercise { path, exercise: mutant.exercise, known: known.join(", ") });
            }
            mutants.push(mutant);
        }
    }
    Ok(mutants)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, MutantError> {
    let io = |source| MutantError::Io { path: dir.to_path_buf(), source };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        names.push(PathBuf::from(entry.map_err(io)?.file_name()));
    }
    names.sort();
    Ok(names)
}

/// `text`, the file `region` is in, with the lines strictly between the region's markers
/// replaced by `body`.
pub fn apply(text: &str, region: &Region, body: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out: String = lines[..region.begin_line].concat();
    out.push_str(body);
    if !body.is_empty() && !body.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&lines[region.end_line - 1..].concat());
    out
}

/// Writes to `out` the tree at `repo` with `mutant` in place of its exercise's solution and
/// every other exercise solved (as [`tree::write_handout`] does: only changed files are written).
///
/// # Errors
/// When the tree cannot be read or written, or the mutant's exercise is not in it.
pub fn write_mutant_tree(repo: &Path, out: &Path, mutant: &Mutant) -> Result<(), MutantError> {
    let all = tree::exercises(repo)?;
    let Some(region) = all.iter().find(|r| r.name == mutant.exercise) else {
        let known: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
        return Err(MutantError::NoExercise {
            path: mutant.path.clone(),
            exercise: mutant.exercise.clone(),
            known: known.join(", "),
        });
    };
    let source = repo.join(&region.file);
    let text = std::fs::read_to_string(&source).map_err(|e| MutantError::Io { path: source, source: e })?;
    let replace = BTreeMap::from([(region.file.clone(), apply(&text, region, &mutant.body))]);
    tree::write_handout_with(repo, out, &[], &replace)?;
    Ok(())
}

/// What happened to a mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It lost points: the first check that lost them (`checkpoint / check`).
    Caught(String),
    /// It got full marks: no checkpoint tests this mistake.
    Survived,
    /// Its stage did not build (a mutant must compile): cargo's errors.
    BuildFailed(String),
    /// Its checkpoints could not run here (no KVM): why.
    NotRun(String),
}

impl Verdict {
    /// The "caught by" column of the mutants table.
    pub fn cell(&self) -> String {
        match self {
            Verdict::Caught(check) => check.clone(),
            Verdict::Survived => "SURVIVED".to_string(),
            Verdict::BuildFailed(_) => "DOES NOT BUILD".to_string(),
            Verdict::NotRun(why) => format!("NOT RUN ({why})"),
        }
    }
}

/// One mutant's run.
#[derive(Debug, Clone)]
pub struct MutantRun {
    /// Which mutant.
    pub mutant: Mutant,
    /// What happened.
    pub verdict: Verdict,
    /// Seconds: writing, building and running.
    pub seconds: f64,
}

/// Where mutants are written and built: `work_dir/tree` and `work_dir/target`.
#[derive(Debug, Clone)]
pub struct MutantWork {
    /// The tree the mutants come from (and whose checkpoints grade them).
    pub repo: PathBuf,
    /// Holds `tree/` and `target/`.
    pub work_dir: PathBuf,
}

/// Writes `mutant` into `work.work_dir/tree`, builds its stage (`stage`) and runs its
/// checkpoints until the first lost point.
///
/// # Errors
/// When the tree cannot be written; a mutant that does not build is a [`Verdict`].
pub fn run_mutant(work: &MutantWork, mutant: &Mutant, stage: u32) -> Result<MutantRun, MutantError> {
    let start = Instant::now();
    let tree_dir = work.work_dir.join("tree");
    write_mutant_tree(&work.repo, &tree_dir, mutant)?;
    let (_, verdict) =
        grade_variant(&tree_dir, stage, work.work_dir.join("target"), work.repo.join("tests/checkpoints"));
    Ok(MutantRun { mutant: mutant.clone(), verdict, seconds: start.elapsed().as_secs_f64() })
}

/// Grades `stage` of a variant tree — a stub or a mutant in place of a solution — stopping at
/// the first lost point, and says what became of the variant. A check that could not run for
/// want of KVM is not a lost point: the variant is then not run, never caught.
pub fn grade_variant(
    tree: &Path,
    stage: u32,
    target_dir: PathBuf,
    checkpoints_dir: PathBuf,
) -> (grading::StageResult, Verdict) {
    let result = grading::grade_stage(
        &GradeOptions {
            repo: tree.to_path_buf(),
            stages: vec![stage],
            target_dir,
            checkpoints_dir,
            stop_at_first_failure: true,
            progress: false,
        },
        stage,
    );
    let lost = |row: &&grading::CheckRow| {
        matches!(row.status, Status::Fail | Status::Error) && row.points.possible > 0 && !grading::lacked_kvm(row)
    };
    let verdict = if result.status == StageStatus::BuildFailed {
        let log = result.checks.first().map(|c| c.output_excerpt.clone()).unwrap_or_default();
        Verdict::BuildFailed(format!("{}\n{log}", result.message))
    } else if let Some(row) = result.checks.iter().find(lost) {
        Verdict::Caught(format!("{} / {}", row.checkpoint, row.check))
    } else if let Some(row) = result.checks.iter().find(|row| grading::lacked_kvm(row)) {
        Verdict::NotRun(row.message.clone())
    } else if result.status == StageStatus::NoCheckpoints {
        Verdict::NotRun(result.message.clone())
    } else {
        Verdict::Survived
    };
    (result, verdict)
}

/// The mutants as a Markdown table: exercise, mutant, the mistake, and (for runs) what caught
/// it and the seconds it took. `runs` without verdicts (`None`) gives the list.
pub fn markdown_table(mutants: &[Mutant], runs: Option<&[MutantRun]>) -> String {
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    match runs {
        Some(runs) => {
            out.push_str("| exercise | mutant | mistake | caught by | seconds |\n|---|---|---|---|---:|\n");
            for run in runs {
                let m = &run.mutant;
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {:.1} |\n",
                    m.exercise,
                    m.name,
                    cell(&m.description),
                    cell(&run.verdict.cell()),
                    run.seconds
                ));
            }
        }
        None => {
            out.push_str("| exercise | mutant | mistake |\n|---|---|---|\n");
            for m in mutants {
                out.push_str(&format!("| {} | {} | {} |\n", m.exercise, m.name, cell(&m.description)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Region {
        Region {
            name: "stage1-x".into(),
            stage: 1,
            file: "stages/01-hello/src/lib.rs".into(),
            begin_line: 2,
            end_line: 5,
            message: String::new(),
            functions: vec!["f".into()],
        }
    }

    const FILE: &str = "use x;\n// lab:begin solution stage1-x\nfn f() -> u8 {\n    1\n// lab:end\nfn g() {}\n";

    #[test]
    fn a_mutant_replaces_the_lines_between_the_markers() {
        let out = apply(FILE, &region(), "fn f() -> u8 {\n    2\n}\n");
        assert_eq!(out, "use x;\n// lab:begin solution stage1-x\nfn f() -> u8 {\n    2\n}\n// lab:end\nfn g() {}\n");
        let no_newline = apply(FILE, &region(), "fn f() -> u8 { 3 }");
        assert!(no_newline.contains("{ 3 }\n// lab:end\n"), "{no_newline}");
    }

    #[test]
    fn the_mutant_line_is_parsed_and_checked() {
        let path = Path::new("grade/mutants/stage1-x/off-by-one.rs");
        let mutant = parse_mutant(path, "// mutant: Counts one too many.\nfn f() {}\n").unwrap();
        assert_eq!((mutant.exercise.as_str(), mutant.name.as_str()), ("stage1-x", "off-by-one"));
        assert_eq!((mutant.description.as_str(), mutant.body.as_str()), ("Counts one too many.", "fn f() {}\n"));

        for (text, reason) in [
            ("fn f() {}\n", "no `// mutant:` line first"),
            ("// mutant:   \nfn f() {}\n", "does not say what the mistake is"),
            ("// mutant: x\n// lab:end\n", "lab:begin or lab:end marker"),
        ] {
            let err = parse_mutant(path, text).unwrap_err().to_string();
            assert!(err.starts_with("grade/mutants/stage1-x/off-by-one.rs: "), "{err}");
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn the_table_escapes_pipes_and_names_survivors() {
        let mutant = parse_mutant(Path::new("grade/mutants/stage1-x/m.rs"), "// mutant: a | b\n").unwrap();
        let runs = [MutantRun { mutant: mutant.clone(), verdict: Verdict::Survived, seconds: 1.5 }];
        let table = markdown_table(std::slice::from_ref(&mutant), Some(&runs));
        assert!(table.ends_with("| stage1-x | m | a \\| b | SURVIVED | 1.5 |\n"), "{table}");
        assert_eq!(markdown_table(&[mutant], None).lines().last(), Some("| stage1-x | m | a \\| b |"));
    }
}
