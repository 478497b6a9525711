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
//!
//! And it looks for answers a student could get without understanding:
//! - an excerpt may not reach into an exercise's solution region (`// lab:begin solution` …
//!   `// lab:end`, see `grade/README.md`): the handout replaces that code with a stub that states
//!   the exercise's instructions, and the `lab:begin` line states them in the full tree;
//! - a typed answer may not appear in its own prompt or hint (as text, or for a numeric question
//!   as a number in any base or with a KiB/MiB/GiB unit);
//! - the right answer of a single-answer question may be the strictly longest choice in at most
//!   a third of a stage's questions, in either language (by chance it would be about a quarter;
//!   authors tend to make the right answer the most careful, so the longest).

use crate::bank::{self, AnswerSpec, Bank, Choice, Kind};
use crate::markers;
use crate::marking::{normalise, parse_number};
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

/// What `qa lint` found.
#[derive(Debug, Default)]
pub struct LintReport {
    /// The problems; none means all is well.
    pub problems: Vec<Problem>,
    /// What each bank that could be read holds, by stage.
    pub stages: Vec<StageStats>,
}

impl LintReport {
    /// How many questions were checked.
    pub fn checked(&self) -> usize {
        self.stages.iter().map(|s| s.questions).sum()
    }
}

/// Lints every bank under `repo`.
pub fn lint(repo: &Path) -> LintReport {
    let mut problems = Vec::new();
    let mut all_stats = Vec::new();
    let files = match bank::bank_files(repo) {
        Ok(files) => files,
        Err(e) => {
            problems.push(Problem { file: bank::BANK_DIR.into(), line: None, message: e.to_string() });
            return LintReport { problems, stages: all_stats };
        }
    };
    if files.is_empty() {
        problems.push(Problem { file: bank::BANK_DIR.into(), line: None, message: "no question banks".into() });
    }
    let mut stages = BTreeSet::new();
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
        lint_bank(repo, &shown, &bank, &mut problems);
        let stats = StageStats::of(&bank);
        lint_longest_answers(&shown, &stats, &mut problems);
        all_stats.push(stats);
    }
    lint_stray_markers(repo, &mut problems);
    all_stats.sort_by_key(|s| s.stage);
    LintReport { problems, stages: all_stats }
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
            AnswerSpec::Order { choices, answer } => {
                let mut keys: Vec<&str> = choices.iter().map(|c| c.key.as_str()).collect();
                let mut order: Vec<&str> = answer.iter().map(String::as_str).collect();
                if choices.len() < 3 {
                    add(at, format!("question '{id}': an ordering needs at least three items"));
                }
                if choices.iter().any(|c| c.text.incomplete()) {
                    add(at, format!("question '{id}': every item needs both en and zh"));
                }
                keys.sort_unstable();
                order.sort_unstable();
                if keys != order || keys.windows(2).any(|w| w[0] == w[1]) {
                    add(at, format!("question '{id}': an ordering's answer lists every item key once, in order; got {answer:?} for {keys:?}"));
                }
            }
            AnswerSpec::Text { accept, numeric } => {
                if matches!(q.kind, Kind::Single | Kind::Multiple | Kind::Order) {
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
        if let AnswerSpec::Text { accept, numeric } = &q.answer {
            for (field, text) in [("prompt", &q.prompt), ("hint", &q.hint)] {
                for (lang, text) in [("en", &text.en), ("zh", &text.zh)] {
                    if let Some(given) = accept.iter().find(|a| gives_away(text, a, *numeric)) {
                        add(at, format!("question '{id}': its {field}_{lang} gives the answer away ('{given}')"));
                    }
                }
            }
        }
        match &q.marker {
            Some(name) => match markers::find(repo, &q.file, name) {
                Ok(excerpt) => {
                    let text = std::fs::read_to_string(repo.join(&q.file)).unwrap_or_default();
                    // The excerpt with its marker lines, 1-based.
                    let (first, last) = (excerpt.first_line - 1, excerpt.last_line() + 1);
                    for (begin, end) in solution_regions(&text).into_iter().filter(|&(b, e)| b <= last && e >= first) {
                        add(
                            at,
                            format!(
                                "question '{id}': excerpt {name} ({}:{first}-{last}) reaches into the solution region at lines {begin}-{end}, whose `lab:begin` line and handout stub state the exercise: quote code outside it, or ask without an excerpt",
                                q.file
                            ),
                        );
                    }
                }
                Err(e) => add(at, format!("question '{id}': {e}")),
            },
            None if q.kind == Kind::Code => add(at, format!("question '{id}' reads code but names no `marker`")),
            None => {}
        }
    }
}

/// Fails a bank whose right answers are too often the strictly longest choice (see the module doc).
fn lint_longest_answers(shown: &Path, stats: &StageStats, problems: &mut Vec<Problem>) {
    for (lang, longest) in [("en", &stats.longest_en), ("zh", &stats.longest_zh)] {
        if longest.len() * 3 > stats.single_answer {
            problems.push(problem(
                shown,
                None,
                format!(
                    "the right answer is the strictly longest choice ({lang}) in {} of {} single-answer questions; at most a third may be: {}",
                    longest.len(),
                    stats.single_answer,
                    longest.join(", ")
                ),
            ));
        }
    }
}

/// What a bank holds, for the summary of `qa lint` and its rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageStats {
    /// The stage.
    pub stage: u32,
    /// Questions in the bank.
    pub questions: usize,
    /// Questions on the course's concepts (they name a `concept`).
    pub concept: usize,
    /// Single-answer choice questions.
    pub single_answer: usize,
    /// Ids of those whose right answer is the strictly longest choice in English.
    pub longest_en: Vec<String>,
    /// The same in Chinese.
    pub longest_zh: Vec<String>,
}

impl StageStats {
    /// Counts what `bank` holds.
    pub fn of(bank: &Bank) -> StageStats {
        let mut stats = StageStats { stage: bank.stage, questions: bank.questions.len(), ..Default::default() };
        for q in &bank.questions {
            stats.concept += usize::from(q.concept.is_some());
            let AnswerSpec::Choices { choices, answer, multiple: false } = &q.answer else { continue };
            let Some(right) = choices.iter().find(|c| answer.first() == Some(&c.key)) else { continue };
            stats.single_answer += 1;
            let strictly_longest = |length: &dyn Fn(&Choice) -> usize| {
                choices.iter().filter(|c| c.key != right.key).all(|c| length(c) < length(right))
            };
            if strictly_longest(&|c| c.text.en.trim().chars().count()) {
                stats.longest_en.push(q.id.clone());
            }
            if strictly_longest(&|c| c.text.zh.trim().chars().count()) {
                stats.longest_zh.push(q.id.clone());
            }
        }
        stats
    }
}

impl std::fmt::Display for StageStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage {}: {} questions ({} concept, {} on the code); right answer longest in {}/{} (en), {}/{} (zh)",
            self.stage,
            self.questions,
            self.concept,
            self.questions - self.concept,
            self.longest_en.len(),
            self.single_answer,
            self.longest_zh.len(),
            self.single_answer
        )
    }
}

/// Whether `text` (a prompt or hint) contains the accepted answer `answer`: as a number of the
/// same value for a numeric question (`0x3f8`, `1016`, `3 GiB`), else as the same word or
/// words — letters and digits compared without the punctuation between them, so `H, d, r, S`
/// gives away `HdrS`.
fn gives_away(text: &str, answer: &str, numeric: bool) -> bool {
    let text = normalise(text);
    let answer = normalise(answer);
    if answer.is_empty() {
        return false;
    }
    if numeric {
        let Some(value) = parse_number(&answer) else { return false };
        return numbers_in(&text).contains(&value);
    }
    let squash = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    let (text_squashed, answer_squashed) = (squash(&text), squash(&answer));
    if answer_squashed.chars().count() >= 3 {
        return text_squashed.contains(&answer_squashed);
    }
    // A short answer ("I", "4") counts only as a word of its own.
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric() && c != '_').collect();
    words.iter().any(|w| *w == answer || (!answer_squashed.is_empty() && *w == answer_squashed))
}

/// The numbers written in `text`: each word that parses as a number in any base, and, when a
/// unit follows (`3 GiB`, `640 KiB`), that number of bytes too.
fn numbers_in(text: &str) -> Vec<u128> {
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric() && c != '_').filter(|w| !w.is_empty()).collect();
    let mut numbers = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let Some(value) = parse_number(word) else { continue };
        numbers.push(value);
        let shift = match words.get(i + 1).copied() {
            Some("kib" | "kb" | "k") => 10,
            Some("mib" | "mb" | "m") => 20,
            Some("gib" | "gb" | "g") => 30,
            Some("tib" | "tb" | "t") => 40,
            _ => continue,
        };
        numbers.push(value << shift);
    }
    numbers
}

/// The solution regions of a source file, as 1-based (begin, end) lines of their
/// `// lab:begin` and `// lab:end` markers, found by the marker scanner `grade` uses too.
/// `grade` owns the format and checks it; this only needs to know where the regions are.
fn solution_regions(text: &str) -> Vec<(usize, usize)> {
    let mut regions = Vec::new();
    let mut open = None;
    for marker in source_markers::markers(text, "lab") {
        match marker.keyword {
            "lab:begin" => open = Some(marker.line),
            "lab:end" => regions.extend(open.take().map(|begin| (begin, marker.line))),
            _ => {}
        }
    }
    regions
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::parse;

    #[test]
    fn an_answer_in_its_own_prompt_or_hint_is_found_in_any_spelling() {
        assert!(gives_away("Which exception vector (int 0x80)?", "0x80", true));
        assert!(gives_away("It is 128 in decimal.", "0x80", true));
        assert!(gives_away("3 GiB; the constant is MMIO_HOLE_START.", "0xc0000000", true));
        assert!(gives_away("Header Signature: H, d, r, S.", "HdrS", false));
        assert!(gives_away("the byte I", "I", false));
        assert!(!gives_away("Which character does \"MINI\" give at offset 1?", "I", false));
        assert!(!gives_away("The legacy window from 640 KiB to 1 MiB is not RAM.", "261760", true));
        assert!(!gives_away("Look for SERIAL_PORT.", "0x3f8", true));
        assert!(!gives_away("stage 4, IRQ 5", "4x", false));
    }

    #[test]
    fn numbers_are_read_with_their_units() {
        assert_eq!(numbers_in("640 kib and 0x10_0000, 3 gib"), [640, 640 << 10, 0x10_0000, 3, 3 << 30]);
        assert!(numbers_in("no numbers here").is_empty());
    }

    #[test]
    fn solution_regions_are_found_by_their_markers() {
        let text = "a\n// lab:begin solution stage1-x \"do x\"\nfn x() {}\n    // lab:end\n// lab:end\n";
        assert_eq!(solution_regions(text), [(2, 4)]);
    }

    #[test]
    fn a_bank_that_always_makes_the_right_answer_longest_is_refused() {
        let question = |id: &str, right: &str| {
            let choice = |k: &str, text: &str| {
                format!("[[question.choices]]\nkey = \"{k}\"\nen = \"{text}\"\nzh = \"{text}\"\n")
            };
            let texts = ["short", "also short", "a much longer right answer"];
            let mut q = format!("[[question]]\nid = \"{id}\"\nkind = \"single\"\nfile = \"f\"\nanswer = \"{right}\"\n");
            for (k, text) in ["a", "b", "c"].iter().zip(texts) {
                q += &choice(k, text);
            }
            q
        };
        let bank = |rights: &[&str]| {
            let questions: String = rights.iter().enumerate().map(|(i, r)| question(&format!("q{i}"), r)).collect();
            parse(Path::new("b.toml"), &format!("stage = 1\nname = \"n\"\ndir = \"d\"\nbinary = \"b\"\n{questions}"))
                .unwrap()
        };
        // c, the longest, is right in 1 of 3: allowed.
        let mut problems = Vec::new();
        let stats = StageStats::of(&bank(&["c", "a", "b"]));
        assert_eq!((stats.longest_en.clone(), stats.single_answer), (vec!["q0".to_string()], 3));
        lint_longest_answers(Path::new("b.toml"), &stats, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        // In 2 of 3: refused, in both languages, naming the questions.
        lint_longest_answers(Path::new("b.toml"), &StageStats::of(&bank(&["c", "c", "b"])), &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("in 2 of 3") && problems[0].message.contains("q0, q1"), "{problems:?}");
    }
}
