//! JUnit XML, the report format GitLab, Jenkins and most CI systems read: one `testsuite` per
//! stage, one `testcase` per check; a check that failed has a `failure` (an `error` when it
//! could not run: a build error, no KVM; `skipped` when it was not run) whose `message` says
//! why and whose text holds the pattern expected and the relevant output. Points are
//! `properties`: `points.earned` and `points.possible` on each suite and each test case.
//!
//! XML 1.0 cannot hold most control characters, even escaped, and a program's output may have
//! any (terminal colours are `ESC [`): those become `U+FFFD`.
//!
//! # Resources
//! - The JUnit XML elements and attributes GitLab reads ("JUnit XML format specification"; it
//!   shows `classname` as the suite and the failure's text, not its `message`, so the text
//!   repeats the message): <https://docs.gitlab.com/ci/testing/unit_test_reports/>
//! - XML 1.0, Char: <https://www.w3.org/TR/xml/#charsets>

use crate::grading::{CheckRow, Points, Report, StageResult, Status};
use crate::report::failure_text;
use std::fmt::Write as _;

/// The report as a JUnit XML document.
pub fn junit_xml(report: &Report) -> String {
    let rows: Vec<&CheckRow> = report.stages.iter().flat_map(|s| &s.checks).collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"minivirt grade\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        rows.len(),
        count(&rows, Status::Fail),
        count(&rows, Status::Error),
        count(&rows, Status::Skipped),
        report.seconds
    );
    for stage in &report.stages {
        suite(&mut out, stage);
    }
    out.push_str("</testsuites>\n");
    out
}

fn count(rows: &[&CheckRow], status: Status) -> usize {
    rows.iter().filter(|r| r.status == status).count()
}

fn suite(out: &mut String, stage: &StageResult) {
    let rows: Vec<&CheckRow> = stage.checks.iter().collect();
    // One run's seconds count once, however many checks it has.
    let mut time = stage.build_seconds;
    let mut seen = Vec::new();
    for row in &rows {
        if !seen.contains(&&row.checkpoint) {
            seen.push(&row.checkpoint);
            time += row.seconds;
        }
    }
    let _ = writeln!(
        out,
        "  <testsuite name=\"stage {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
        stage.stage,
        rows.len(),
        count(&rows, Status::Fail),
        count(&rows, Status::Error),
        count(&rows, Status::Skipped),
    );
    properties(out, "    ", stage.points, &[("status", &format!("{:?}", stage.status).to_lowercase())]);
    for row in rows {
        case(out, row);
    }
    out.push_str("  </testsuite>\n");
}

fn properties(out: &mut String, indent: &str, points: Points, extra: &[(&str, &str)]) {
    let _ = writeln!(out, "{indent}<properties>");
    let _ = writeln!(out, "{indent}  <property name=\"points.earned\" value=\"{}\"/>", points.earned);
    let _ = writeln!(out, "{indent}  <property name=\"points.possible\" value=\"{}\"/>", points.possible);
    for (name, value) in extra {
        let _ = writeln!(out, "{indent}  <property name=\"{}\" value=\"{}\"/>", escape(name), escape(value));
    }
    let _ = writeln!(out, "{indent}</properties>");
}

fn case(out: &mut String, row: &CheckRow) {
    let _ = writeln!(
        out,
        "    <testcase name=\"{}\" classname=\"minivirt.stage{:02}.{}\" time=\"{:.3}\">",
        escape(&format!("{} / {}", row.checkpoint, row.check)),
        row.stage,
        escape(&row.checkpoint),
        row.seconds
    );
    properties(out, "      ", row.points, &[]);
    let element = match row.status {
        Status::Pass => None,
        Status::Fail => Some("failure"),
        Status::Error => Some("error"),
        Status::Skipped => Some("skipped"),
    };
    if let Some(element) = element {
        let message = if row.message.is_empty() { "failed" } else { row.message.as_str() };
        let _ = writeln!(
            out,
            "      <{element} message=\"{}\" type=\"{element}\">{}</{element}>",
            escape(message),
            escape_text(&failure_text(row))
        );
    }
    out.push_str("    </testcase>\n");
}

/// An attribute value: see [`escape_text`]; line breaks and tabs too become character
/// references, because a parser turns literal ones in an attribute into spaces.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => push_escaped(&mut out, c),
        }
    }
    out
}

/// Element text: the five XML escapes, `\r` as a character reference (a parser would turn
/// `\r\n` into `\n`), and the characters XML 1.0 cannot hold replaced by `U+FFFD`.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&apos;"),
        '\r' => out.push_str("&#13;"),
        '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_cannot_break_the_document() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("\x1b[31mred\x1b[0m\n"), "\u{fffd}[31mred\u{fffd}[0m&#10;");
        assert_eq!(escape("\u{0}é"), "\u{fffd}é");
        assert_eq!(escape_text("a\n\tb\r\n<"), "a\n\tb&#13;\n&lt;");
    }
}
