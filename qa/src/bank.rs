//! Question banks: one TOML file per stage in `qa/banks/`, written by course authors.
//!
//! A bank is data, not code, so that an instructor can add or fix a question without touching
//! Rust. Every text a student reads comes in both languages (`*_en`, `*_zh`); the file format
//! is described in `qa/README.md`. Loading only checks the shape; the bank linter (`qa lint`)
//! checks the meaning (answers among the choices, markers that resolve), so that one bad question
//! does not stop a student from using the others.

use crate::i18n::Lang;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Where the banks live, relative to the repository root.
pub const BANK_DIR: &str = "qa/banks";

/// What went wrong reading a bank. Every message names the file, and the line when there is one.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The bank file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the schema.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The bank file.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// What the TOML parser said.
        message: String,
    },
    /// The bank directory could not be listed.
    #[error("{path}: cannot list the question banks: {source}")]
    List {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A text in both languages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bilingual {
    /// English.
    pub en: String,
    /// Chinese.
    pub zh: String,
}

impl Bilingual {
    fn new(en: Option<String>, zh: Option<String>) -> Self {
        Bilingual { en: en.unwrap_or_default(), zh: zh.unwrap_or_default() }
    }

    /// The text in `lang`, falling back to the other language if that one is missing.
    pub fn get(&self, lang: Lang) -> &str {
        let (first, second) = match lang {
            Lang::En => (&self.en, &self.zh),
            Lang::Zh => (&self.zh, &self.en),
        };
        if first.trim().is_empty() {
            second.trim()
        } else {
            first.trim()
        }
    }

    /// Whether either language is missing.
    pub fn incomplete(&self) -> bool {
        self.en.trim().is_empty() || self.zh.trim().is_empty()
    }
}

/// The kinds of question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Pick one choice.
    Single,
    /// Pick every right choice.
    Multiple,
    /// Type a short answer.
    Short,
    /// Read an excerpt of the real source, then answer with choices or a short answer.
    Code,
    /// Put the items in order (steps of a protocol, stages of a boot): `answer` lists every
    /// key in the right order.
    Order,
}

impl Kind {
    /// How the kind is named to a student.
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Kind::Single, Lang::En) => "single choice",
            (Kind::Multiple, Lang::En) => "multiple choice",
            (Kind::Short, Lang::En) => "short answer",
            (Kind::Code, Lang::En) => "code reading",
            (Kind::Order, Lang::En) => "ordering",
            (Kind::Single, Lang::Zh) => "单选",
            (Kind::Multiple, Lang::Zh) => "多选",
            (Kind::Short, Lang::Zh) => "简答",
            (Kind::Code, Lang::Zh) => "读代码",
            (Kind::Order, Lang::Zh) => "排序",
        }
    }
}

/// One choice of a choice question.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The key the answer names it by ("a", "b", ...).
    pub key: String,
    /// Its text.
    pub text: Bilingual,
}

/// How a question is answered, whatever its kind.
#[derive(Debug, Clone)]
pub enum AnswerSpec {
    /// Choices, and the keys of the right ones (one for a single choice).
    Choices {
        /// The choices in the order shown.
        choices: Vec<Choice>,
        /// Keys of the right choices.
        answer: Vec<String>,
        /// Whether more than one may be picked.
        multiple: bool,
    },
    /// Items to put in order, and their keys in the right order (every key once).
    Order {
        /// The items in the order shown.
        choices: Vec<Choice>,
        /// Keys of the items in the right order.
        answer: Vec<String>,
    },
    /// A typed answer and the alternatives accepted.
    Text {
        /// Accepted answers (compared after normalisation by the runner's marking).
        accept: Vec<String>,
        /// Whether answers are numbers, accepted in any base.
        numeric: bool,
    },
}

/// One question, ready to ask.
#[derive(Debug, Clone)]
pub struct Question {
    /// Unique within its bank; progress is keyed by `stage.id`.
    pub id: String,
    /// 1-based line of the `id` in the bank, for messages.
    pub line: usize,
    /// Its kind.
    pub kind: Kind,
    /// The source file it is about, relative to the repository root.
    pub file: String,
    /// The marker of the excerpt to show, if any.
    pub marker: Option<String>,
    /// For a question on the course's concepts rather than on this code: the research question
    /// it serves (`"trap-and-emulate"`, `"epoll"`...).
    pub concept: Option<String>,
    /// The question.
    pub prompt: Bilingual,
    /// A hint, offered before answering.
    pub hint: Bilingual,
    /// Why the answer is what it is.
    pub explain: Bilingual,
    /// How it is answered.
    pub answer: AnswerSpec,
}

/// One stage's bank.
#[derive(Debug, Clone)]
pub struct Bank {
    /// Where it was read from.
    pub path: PathBuf,
    /// The stage number, 1 to 7.
    pub stage: u32,
    /// The stage's short name ("hello").
    pub name: String,
    /// The stage's crate directory, relative to the repository root.
    pub dir: String,
    /// The stage's binary (`cargo run --bin NAME`).
    pub binary: String,
    /// Arguments for the live run, if the binary needs some.
    pub run_args: Vec<String>,
    /// The title shown for the stage.
    pub title: Bilingual,
    /// What the stage adds, shown before its questions.
    pub intro: Bilingual,
    /// The questions, in order.
    pub questions: Vec<Question>,
}

impl Bank {
    /// The key progress uses for a question of this bank.
    pub fn key(&self, question: &Question) -> String {
        format!("{}.{}", self.stage, question.id)
    }
}

// The file format, as serde sees it. Flat `_en`/`_zh` fields keep a question readable top to
// bottom in the file; `Spanned` keeps positions for messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBank {
    stage: u32,
    name: String,
    dir: String,
    binary: String,
    #[serde(default)]
    run_args: Vec<String>,
    title_en: Option<String>,
    title_zh: Option<String>,
    intro_en: Option<String>,
    intro_zh: Option<String>,
    #[serde(default)]
    question: Vec<RawQuestion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    id: Spanned<String>,
    kind: Kind,
    file: String,
    marker: Option<String>,
    concept: Option<String>,
    prompt_en: Option<String>,
    prompt_zh: Option<String>,
    hint_en: Option<String>,
    hint_zh: Option<String>,
    explain_en: Option<String>,
    explain_zh: Option<String>,
    #[serde(default)]
    choices: Vec<RawChoice>,
    answer: Option<OneOrMany>,
    #[serde(default)]
    accept: Vec<String>,
    #[serde(default)]
    numeric: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChoice {
    key: String,
    en: Option<String>,
    zh: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses one bank from its text. `path` is only used in messages.
///
/// # Errors
/// [`BankError::Parse`] with the line of the problem: bad TOML, an unknown field, a wrong type,
/// or a choice question with `answer` missing.
pub fn parse(path: &Path, text: &str) -> Result<Bank, BankError> {
    let shown = path.display().to_string();
    let raw: RawBank = toml::from_str(text).map_err(|e| BankError::Parse {
        path: shown.clone(),
        line: e.span().map_or(1, |span| line_of(text, span.start)),
        message: e.message().trim().to_string(),
    })?;
    let mut questions = Vec::with_capacity(raw.question.len());
    for q in raw.question {
        let line = line_of(text, q.id.span().start);
        let parse_error = |message: String| BankError::Parse { path: shown.clone(), line, message };
        let has_choices = !q.choices.is_empty();
        let multiple = match q.kind {
            Kind::Multiple => true,
            Kind::Code => matches!(q.answer, Some(OneOrMany::Many(_))),
            _ => false,
        };
        let answer = if matches!(q.kind, Kind::Single | Kind::Multiple | Kind::Order)
            || (q.kind == Kind::Code && has_choices)
        {
            let keys = match q.answer {
                Some(OneOrMany::One(key)) => vec![key],
                Some(OneOrMany::Many(keys)) => keys,
                None => return Err(parse_error(format!("question '{}' has choices but no `answer`", q.id.get_ref()))),
            };
            let choices =
                q.choices.into_iter().map(|c| Choice { key: c.key, text: Bilingual::new(c.en, c.zh) }).collect();
            if q.kind == Kind::Order {
                AnswerSpec::Order { choices, answer: keys }
            } else {
                AnswerSpec::Choices { choices, answer: keys, multiple }
            }
        } else {
            AnswerSpec::Text { accept: q.accept, numeric: q.numeric }
        };
        questions.push(Question {
            id: q.id.into_inner(),
            line,
            kind: q.kind,
            file: q.file,
            marker: q.marker,
            concept: q.concept,
            prompt: Bilingual::new(q.prompt_en, q.prompt_zh),
            hint: Bilingual::new(q.hint_en, q.hint_zh),
            explain: Bilingual::new(q.explain_en, q.explain_zh),
            answer,
        });
    }
    Ok(Bank {
        path: path.to_path_buf(),
        stage: raw.stage,
        name: raw.name,
        dir: raw.dir,
        binary: raw.binary,
        run_args: raw.run_args,
        title: Bilingual::new(raw.title_en, raw.title_zh),
        intro: Bilingual::new(raw.intro_en, raw.intro_zh),
        questions,
    })
}

/// Reads one bank file.
///
/// # Errors
/// [`BankError::Read`] or [`BankError::Parse`].
pub fn load(path: &Path, shown_as: &Path) -> Result<Bank, BankError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| BankError::Read { path: shown_as.display().to_string(), source })?;
    let mut bank = parse(shown_as, &text)?;
    bank.path = path.to_path_buf();
    Ok(bank)
}

/// The bank files under `repo`, sorted by name.
///
/// # Errors
/// [`BankError::List`] when the directory cannot be read.
pub fn bank_files(repo: &Path) -> Result<Vec<PathBuf>, BankError> {
    let dir = repo.join(BANK_DIR);
    let entries =
        std::fs::read_dir(&dir).map_err(|source| BankError::List { path: dir.display().to_string(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every bank under `repo`, sorted by stage. Any error stops: the runner needs all banks
/// to be readable (the linter collects errors one by one instead).
///
/// # Errors
/// The first [`BankError`].
pub fn load_all(repo: &Path) -> Result<Vec<Bank>, BankError> {
    let mut banks = Vec::new();
    for path in bank_files(repo)? {
        let shown = path.strip_prefix(repo).unwrap_or(&path).to_path_buf();
        banks.push(load(&path, &shown)?);
    }
    banks.sort_by_key(|b| b.stage);
    Ok(banks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
stage = 1
name = "hello"
dir = "stages/01-hello"
binary = "stage01"
title_en = "Hello"
title_zh = "你好"

[[question]]
id = "port"
kind = "short"
file = "stages/01-hello/src/lib.rs"
prompt_en = "Which port?"
prompt_zh = "哪个端口？"
accept = ["0x3f8"]
numeric = true

[[question]]
id = "pick"
kind = "single"
file = "stages/01-hello/src/lib.rs"
answer = "b"
[[question.choices]]
key = "a"
en = "A"
zh = "甲"
[[question.choices]]
key = "b"
en = "B"
zh = "乙"
"#;

    #[test]
    fn a_good_bank_parses_with_lines() {
        let bank = parse(Path::new("b.toml"), GOOD).unwrap();
        assert_eq!(bank.questions.len(), 2);
        assert_eq!(bank.questions[0].line, 10);
        assert_eq!(bank.key(&bank.questions[1]), "1.pick");
        assert!(
            matches!(&bank.questions[1].answer, AnswerSpec::Choices { answer, multiple: false, .. } if answer == &["b"])
        );
        assert_eq!(bank.title.get(Lang::Zh), "你好");
    }

    #[test]
    fn an_ordering_keeps_its_answer_in_order() {
        let order =
            GOOD.replace("kind = \"single\"", "kind = \"order\"").replace("answer = \"b\"", "answer = [\"b\", \"a\"]");
        let bank = parse(Path::new("b.toml"), &order).unwrap();
        assert!(matches!(&bank.questions[1].answer, AnswerSpec::Order { answer, .. } if answer == &["b", "a"]));
        assert_eq!(bank.questions[1].kind.label(Lang::Zh), "排序");
    }

    #[test]
    fn malformed_toml_names_file_and_line() {
        let bad = GOOD.replace("kind = \"single\"", "kind = single");
        let err = parse(Path::new("qa/banks/stage01.toml"), &bad).unwrap_err().to_string();
        assert!(err.starts_with("qa/banks/stage01.toml:20:"), "{err}");
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused_with_a_line() {
        let bad = GOOD.replace("numeric = true", "numeric = true\nanwser = \"x\"");
        let err = parse(Path::new("b.toml"), &bad).unwrap_err().to_string();
        assert!(err.contains("b.toml:17:") && err.contains("anwser"), "{err}");
        let bad = GOOD.replace("kind = \"short\"", "kind = \"essay\"");
        assert!(parse(Path::new("b.toml"), &bad).unwrap_err().to_string().contains("b.toml:11:"));
    }

    #[test]
    fn a_choice_question_without_answer_is_refused() {
        let bad = GOOD.replace("answer = \"b\"\n", "");
        let err = parse(Path::new("b.toml"), &bad).unwrap_err().to_string();
        assert!(err.contains("b.toml:19:") && err.contains("pick"), "{err}");
    }
}
