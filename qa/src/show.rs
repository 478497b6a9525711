//! How things look on the terminal: excerpts with line numbers and a little colour, questions,
//! verdicts. Colour comes from `colored`, which honours `NO_COLOR`; `--no-color` turns it off too.

use crate::bank::{Bank, Question};
use crate::i18n::Lang;
use crate::markers::Excerpt;
use colored::Colorize;

/// Rust keywords worth a colour in an excerpt.
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "else", "enum", "false", "fn", "for", "if", "impl", "in", "let", "loop",
    "match", "mut", "pub", "return", "self", "Self", "struct", "true", "unsafe", "use", "where", "while", "Some",
    "None", "Ok", "Err",
];

/// One line of Rust, lightly highlighted: comments dim, keywords bold magenta, numbers cyan,
/// string literals yellow. A lexer would be exact; this is enough to read by.
pub fn highlight(line: &str) -> String {
    let (code, comment) = match find_comment(line) {
        Some(at) => (&line[..at], Some(&line[at..])),
        None => (line, None),
    };
    let mut out = String::new();
    let mut word = String::new();
    let mut in_string = false;
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        let shown = if KEYWORDS.contains(&word.as_str()) {
            word.magenta().bold().to_string()
        } else if word.starts_with(|c: char| c.is_ascii_digit()) {
            word.cyan().to_string()
        } else {
            word.clone()
        };
        out.push_str(&shown);
        word.clear();
    };
    let mut string = String::new();
    for c in code.chars() {
        if in_string {
            string.push(c);
            if c == '"' && !string.ends_with("\\\"") {
                out.push_str(&string.yellow().to_string());
                string.clear();
                in_string = false;
            }
        } else if c == '"' {
            flush(&mut word, &mut out);
            in_string = true;
            string.push(c);
        } else if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out.push_str(&string.yellow().to_string());
    if let Some(comment) = comment {
        out.push_str(&comment.green().dimmed().to_string());
    }
    out
}

/// Where a `//` comment starts, outside string literals.
fn find_comment(line: &str) -> Option<usize> {
    let mut in_string = false;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' if previous != '\\' => in_string = !in_string,
            '/' if !in_string && line[i..].starts_with("//") => return Some(i),
            _ => {}
        }
        previous = c;
    }
    None
}

/// An excerpt as shown: a header with the file and lines, then numbered lines.
pub fn excerpt(excerpt: &Excerpt) -> String {
    let width = excerpt.last_line().to_string().len();
    let header = format!("── {}:{}-{} ", excerpt.file, excerpt.first_line, excerpt.last_line());
    let mut out = format!("{}\n", header.blue().bold());
    for (i, line) in excerpt.lines.iter().enumerate() {
        let number = format!("{:>width$} │", excerpt.first_line + i);
        out.push_str(&format!("{} {}\n", number.dimmed(), highlight(line)));
    }
    out
}

/// Where to read more: the file, and the line of the excerpt when there is one.
pub fn pointer(question: &Question, excerpt: Option<&Excerpt>) -> String {
    match excerpt {
        Some(e) => format!("{}:{}", question.file, e.first_line),
        None => question.file.clone(),
    }
}

/// The heading of a question: its number and kind. The question itself follows the excerpt.
pub fn question_heading(bank: &Bank, index: usize, question: &Question, lang: Lang) -> String {
    let position = format!("[{} {}.{}/{}]", lang.pick("Stage", "阶段"), bank.stage, index + 1, bank.questions.len());
    format!("{} {}", position.bold(), question.kind.label(lang).cyan())
}

/// A progress bar like `████░░░░ 3/8 ✓2`.
pub fn progress_bar(answered: usize, correct: usize, total: usize) -> String {
    const WIDTH: usize = 10;
    let filled = (answered * WIDTH).checked_div(total).unwrap_or(0);
    let bar = format!("{}{}", "█".repeat(filled).green(), "░".repeat(WIDTH - filled).dimmed());
    format!("{bar} {answered:>2}/{total:<2} ✓{correct}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_in_strings_are_not_comments() {
        assert_eq!(find_comment(r#"let s = "http://x"; // yes"#), Some(20));
        assert_eq!(find_comment("a / b"), None);
    }

    #[test]
    fn highlighting_without_colour_keeps_the_text() {
        colored::control::set_override(false);
        let line = r#"let x = "a\"b" + 0x3f8; // c"#;
        assert_eq!(highlight(line), line);
    }
}
