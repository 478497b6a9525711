//! `qa lint`: every bank is well-formed and every question still matches the code.
//!
//! CI runs it (through `qa/tests/lint.rs`), so moving or deleting the code a question quotes
//! fails the build instead of silently showing students the wrong lines. It checks:
//! - the TOML and its schema (file and line of the first problem of a file);
//! - one bank per stage, with a unique stage number, a title and an introduction in both
//!   languages, and an existing stage directory;
//! - each question: a unique id, prompt, hint and explanation in both languages, an existing
//!   `file`; choices with unique keys and the answer among them (exactly one for a single
//!   choice); accepted answers for a short answer, numbers if `numeric`; an excerpt for a
//!   code-reading question;
//! - each marker resolves to exactly one region in the named file;
//! - every `qa:begin` in the stage sources has its `qa:end` (a stray marker is a typo).

use crate::bank::{self, AnswerSpec, Bank, Kind};
use crate::markers;
use crate::marking::parse_number;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One problem, as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in (relative to the repository root).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Lints every bank under `repo`; returns the problems found (none means all is well) and how
/// many questions were checked.
pub fn lint(repo: &Path) -> (Vec<Problem>, usize) {
    let mut problems = Vec::new();
    let files = match bank::bank_files(repo) {
        Ok(files) => files,
        Err(e) => {
            problems.push(Problem { file: bank::BANK_DIR.into(), line: None, message: e.to_string() });
            return (problems, 0);
        }
    };
    if files.is_empty() {
        problems.push(Problem { file: bank::BANK_DIR.into(), line: None, message: "no question banks".into() });
    }
    let mut stages = BTreeSet::new();
    let mut checked = 0;
    for path in files {
        let shown = path.strip_prefix(repo).unwrap_or(&path).to_path_buf();
        let bank = match bank::load(&path, &shown) {
            Ok(bank) => bank,
            Err(e) => {
                let (line, message) = match e {
                    bank::BankError::Parse { line, message, .. } => (Some(line), message),
                    other => (None, other.to_string()),
                };
                problems.push(Problem { file: shown.display().to_string(), line, message });
                continue;
            }
        };
        if !stages.insert(bank.stage) {
            problems.push(problem(&shown, None, format!("stage {} has another bank too", bank.stage)));
        }
        checked += bank.questions.len();
        lint_bank(repo, &shown, &bank, &mut problems);
    }
    lint_stray_markers(repo, &mut problems);
    (problems, checked)
}

fn problem(file: &Path, line: Option<usize>, message: String) -> Problem {
    Problem { file: file.display().to_string(), line, message }
}

fn lint_bank(repo: &Path, shown: &Path, bank: &Bank, problems: &mut Vec<Problem>) {
    let mut add = |line: Option<usize>, message: String| problems.push(problem(shown, line, message));
    if bank.title.incomplete() {
        add(None, "the stage title needs both title_en and title_zh".into());
    }
    if bank.intro.incomplete() {
        add(None, "the stage introduction needs both intro_en and intro_zh".into());
    }
    if !repo.join(&bank.dir).is_dir() {
        add(None, format!("stage directory {} does not exist", bank.dir));
    }
    if bank.questions.is_empty() {
        add(None, "the bank has no questions".into());
    }
    let mut ids = BTreeSet::new();
    for q in &bank.questions {
        let at = Some(q.line);
        let id = &q.id;
        if !ids.insert(id.as_str()) {
            add(at, format!("question id '{id}' is used twice"));
        }
        for (field, text) in [("prompt", &q.prompt), ("hint", &q.hint), ("explain", &q.explain)] {
            if text.incomplete() {
                add(at, format!("question '{id}' needs both {field}_en and {field}_zh"));
            }
        }
        if !repo.join(&q.file).is_file() {
            add(at, format!("question '{id}': file {} does not exist", q.file));
        }
        match &q.answer {
            AnswerSpec::Choices { choices, answer, multiple } => {
                let keys: Vec<&str> = choices.iter().map(|c| c.key.as_str()).collect();
                let unique: BTreeSet<&str> = keys.iter().copied().collect();
                if unique.len() != keys.len() {
                    add(at, format!("question '{id}': choice keys {keys:?} are not unique"));
                }
                if choices.len() < 2 {
                    add(at, format!("question '{id}' needs at least two choices"));
                }
                if choices.iter().any(|c| c.text.incomplete()) {
                    add(at, format!("question '{id}': every choice needs both en and zh"));
                }
                for key in answer.iter().filter(|k| !unique.contains(k.as_str())) {
                    add(at, format!("question '{id}': answer '{key}' is not among its choices {keys:?}"));
                }
                if answer.is_empty() || (!multiple && answer.len() != 1) {
                    add(at, format!("question '{id}': a single choice has exactly one answer, got {answer:?}"));
                }
            }
            AnswerSpec::Text { accept, numeric } => {
                if matches!(q.kind, Kind::Single | Kind::Multiple) {
                    add(at, format!("question '{id}' is a choice question without choices"));
                }
                if accept.iter().all(|a| a.trim().is_empty()) {
                    add(at, format!("question '{id}' accepts no answer: add `accept = [...]` or choices"));
                }
                for a in accept.iter().filter(|a| *numeric && parse_number(a).is_none()) {
                    add(at, format!("question '{id}' is numeric but accepts '{a}', which is not a number"));
                }
            }
        }
        match &q.marker {
            Some(name) => {
                if let Err(e) = markers::find(repo, &q.file, name) {
                    add(at, format!("question '{id}': {e}"));
                }
            }
            None if q.kind == Kind::Code => add(at, format!("question '{id}' reads code but names no `marker`")),
            None => {}
        }
    }
}

/// Every `.rs` file under `stages/`.
fn stage_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            stage_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn lint_stray_markers(repo: &Path, problems: &mut Vec<Problem>) {
    let mut files = Vec::new();
    stage_sources(&repo.join("stages"), &mut files);
    files.sort();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let shown = path.strip_prefix(repo).unwrap_or(&path).display().to_string();
        let begins = markers::scan(&text, markers::BEGIN);
        let ends = markers::scan(&text, markers::END);
        let mut seen = BTreeSet::new();
        for (name, line) in &begins {
            if !seen.insert(name) {
                continue;
            }
            if let Err(e) = markers::find_in(&shown, &text, name) {
                problems.push(Problem { file: shown.clone(), line: Some(*line), message: e.to_string() });
            }
        }
        for (name, line) in ends.iter().filter(|(n, _)| !begins.iter().any(|(b, _)| b == n)) {
            problems.push(Problem {
                file: shown.clone(),
                line: Some(*line),
                message: format!("`{} {name}` has no `{} {name}`", markers::END, markers::BEGIN),
            });
        }
    }
}
