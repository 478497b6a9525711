//! The non-interactive mode, for scripts and graders: answers from a file or from stdin, marked
//! exactly as in the session, then a summary.
//!
//! The input is one answer per line, `STAGE.ID = ANSWER`:
//!
//! ```text
//! # stage 1
//! 1.serial-port = 0x3f8      # a short answer (numbers in any base where the question says so)
//! 1.exit-kind = b            # a single choice: its key
//! 1.unsafe-parts = a, c      # a multiple choice: every key, in any order ("ac" works too)
//! 1.entry-order = c, a, b    # an ordering: every key, in the right order ("cab" works too)
//! 1.exit-kind = c            # the same question again: the second attempt, if the first was wrong
//! ```
//!
//! Blank lines and `#` comments are ignored (a `#` starts a comment at the start of a line or
//! after whitespace, so `C#` is an answer). A wrong answer is final unless the same question
//! comes again later in the input: that line is its second and last attempt, as a retry is in
//! the session. Further lines for it are reported and ignored. Questions not in the input stay
//! as they were.

use crate::bank::{AnswerSpec, Bank, Question};
use crate::context::Context;
use crate::marking::{self, Response};
use crate::progress::{ProgressError, Record};
use crate::report;
use crate::session::MAX_ATTEMPTS;
use colored::Colorize;
use std::collections::BTreeMap;

/// Errors in the answers.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A line is not `STAGE.ID = ANSWER` or names no question.
    #[error("{source_name}:{line}: {message}")]
    Line {
        /// Where the answers came from.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Progress could not be saved.
    #[error(transparent)]
    Progress(#[from] ProgressError),
}

/// One parsed answer line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerLine {
    /// 1-based line number.
    pub line: usize,
    /// Stage number.
    pub stage: u32,
    /// Question id.
    pub id: String,
    /// The answer as written.
    pub answer: String,
}

/// Parses the answers; `source_name` is used in messages.
///
/// # Errors
/// [`BatchError::Line`] for a line that is not `STAGE.ID = ANSWER`.
pub fn parse(source_name: &str, text: &str) -> Result<Vec<AnswerLine>, BatchError> {
    let mut answers = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let error = |message: String| BatchError::Line { source_name: source_name.into(), line, message };
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        let (key, answer) =
            content.split_once('=').ok_or_else(|| error(format!("expected `STAGE.ID = ANSWER`, got `{content}`")))?;
        let (stage, id) = key
            .trim()
            .split_once('.')
            .and_then(|(s, id)| Some((s.trim().parse::<u32>().ok()?, id.trim())))
            .filter(|(_, id)| !id.is_empty())
            .ok_or_else(|| error(format!("`{}` is not STAGE.ID, e.g. `1.serial-port`", key.trim())))?;
        answers.push(AnswerLine { line, stage, id: id.to_string(), answer: answer.trim().to_string() });
    }
    Ok(answers)
}

/// A line without its `#` comment (one starting the line or after whitespace).
fn strip_comment(line: &str) -> &str {
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        if c == '#' && previous.is_whitespace() {
            return &line[..i];
        }
        previous = c;
    }
    line
}

/// The response an answer line stands for.
fn response(question: &Question, answer: &str) -> Response {
    match &question.answer {
        AnswerSpec::Choices { .. } => Response::Choices(marking::parse_choice_keys(answer)),
        AnswerSpec::Order { .. } => Response::Choices(marking::parse_key_sequence(answer)),
        AnswerSpec::Text { .. } => Response::Text(answer.to_string()),
    }
}

/// Marks `answers` for the banks in `indices`, records them, and returns the text to print.
///
/// A question's first answer in the input starts it afresh (attempt 1), whatever was recorded
/// before: a grader's run is about this input.
///
/// # Errors
/// [`BatchError::Line`] for an answer to a question that does not exist.
pub fn run(ctx: &mut Context, indices: &[usize], source_name: &str, text: &str) -> Result<String, BatchError> {
    let answers = parse(source_name, text)?;
    let mut out = String::new();
    let mut seen: BTreeMap<String, Record> = BTreeMap::new();
    let mut remaining: BTreeMap<(u32, String), usize> = BTreeMap::new();
    for answer in &answers {
        *remaining.entry((answer.stage, answer.id.clone())).or_default() += 1;
    }
    for answer in answers {
        let left = remaining.get_mut(&(answer.stage, answer.id.clone())).map_or(0, |n| {
            *n -= 1;
            *n
        });
        let line_error =
            |message: String| BatchError::Line { source_name: source_name.into(), line: answer.line, message };
        let bank_index = ctx.banks.iter().position(|b| b.stage == answer.stage);
        let Some(bank_index) = bank_index else {
            return Err(line_error(format!("there is no stage {}", answer.stage)));
        };
        if !indices.contains(&bank_index) {
            continue;
        }
        let bank: &Bank = &ctx.banks[bank_index];
        let Some(question) = bank.questions.iter().find(|q| q.id == answer.id) else {
            return Err(line_error(format!("stage {} has no question '{}'", answer.stage, answer.id)));
        };
        let key = bank.key(question);
        let mut record = seen.get(&key).cloned().unwrap_or_default();
        if record.answered {
            out.push_str(&format!("{key:<28} {}\n", ctx.t("(already marked; ignored)", "（已判分，忽略）").dimmed()));
            continue;
        }
        record.attempts += 1;
        record.correct = marking::is_correct(question, &response(question, &answer.answer));
        // Without a retry later in the input, a wrong answer is final.
        record.answered = record.correct || record.attempts >= MAX_ATTEMPTS || left == 0;
        let verdict = match (record.correct, record.answered) {
            (true, _) => ctx.t("✓ right", "✓ 正确").green().to_string(),
            (false, false) => ctx.t("✗ wrong, one more try", "✗ 错误，可再试一次").red().to_string(),
            (false, true) => format!(
                "{} {}",
                ctx.t("✗ wrong; answer:", "✗ 错误；答案：").red(),
                marking::expected(question, ctx.lang)
            ),
        };
        out.push_str(&format!("{key:<28} {verdict}  ({})\n", question.file.dimmed()));
        ctx.store.record(&key, record.clone())?;
        seen.insert(key, record);
    }
    let report = report::report(ctx, indices);
    out.push('\n');
    for s in &report.stages {
        out.push_str(&format!(
            "{} {} {:<11} {}/{} {}, {}/{} {}\n",
            ctx.t("stage", "阶段"),
            s.stage,
            s.name,
            s.correct,
            s.questions,
            ctx.t("right", "答对"),
            s.answered,
            s.questions,
            ctx.t("answered", "已答")
        ));
    }
    out.push_str(&format!(
        "{}: {}/{} {} ({:.0}%)\n",
        ctx.t("total", "合计"),
        report.total.correct,
        report.total.questions,
        ctx.t("right", "答对"),
        report.total.score * 100.0
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_comments_and_line_numbers() {
        let text = "# header\n\n1.port = 0x3f8  # hex\n 2.slots=a, c\n3.x = C#\n";
        let answers = parse("in", text).unwrap();
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[0], AnswerLine { line: 3, stage: 1, id: "port".into(), answer: "0x3f8".into() });
        assert_eq!((answers[1].stage, answers[1].answer.as_str()), (2, "a, c"));
        assert_eq!(answers[2].answer, "C#");
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let err = parse("answers.txt", "1.port = 1\nport = 2\n").unwrap_err().to_string();
        assert!(err.starts_with("answers.txt:2:"), "{err}");
        assert!(parse("in", "no equals sign").is_err());
    }
}
