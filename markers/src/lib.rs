//! Regions of the stage sources marked by comments, for the two tools that point into the code:
//!
//! - [`excerpt`]: quiz excerpts, `// qa:begin NAME` … `// qa:end NAME`, which `qa` shows
//!   with their line numbers;
//! - [`solution`]: the students' exercises, `// lab:begin solution NAME "MESSAGE"` …
//!   `// lab:end`, whose function bodies `grade` replaces with `todo!()` stubs in the handout.
//!
//! Both are found by [`markers`]: a marker is a comment line `// TAG:WORD ARGS`. A marker moves
//! with the code it marks, unlike a line range, and both tools fail loudly, naming file and
//! line, when one is lost, doubled or left open.
//!
//! # Resources
//! - `qa/README.md` ("Code markers") and `grade/README.md` ("Solution regions and stubs"): the
//!   conventions.
//! - [`syn`](https://docs.rs/syn/2): the Rust parser [`solution`] finds function bodies with.
#![deny(missing_docs)]

pub mod excerpt;
#[cfg(feature = "solution")]
mod functions;
#[cfg(feature = "solution")]
pub mod solution;

/// One marker comment: a line that holds only a `//` comment starting with `TAG:WORD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker<'a> {
    /// 1-based line number.
    pub line: usize,
    /// `TAG:WORD`, e.g. `qa:begin` or `lab:end`.
    pub keyword: &'a str,
    /// The rest of the line after the keyword, without surrounding whitespace.
    pub args: &'a str,
}

/// Every marker comment of `tag` (`qa`, `lab`) in `text`, in line order.
///
/// Only whole comment lines count: `let s = "// qa:begin x";` and `/// qa:begin x` (a doc
/// comment, which rustdoc would show) are not markers.
pub fn markers<'a>(text: &'a str, tag: &str) -> Vec<Marker<'a>> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let comment = line.trim_start().strip_prefix("//")?.trim_start();
            let word = comment.strip_prefix(tag)?.strip_prefix(':')?;
            let word_end = word.find(char::is_whitespace).unwrap_or(word.len());
            let keyword = &comment[..tag.len() + 1 + word_end];
            Some(Marker { line: index + 1, keyword, args: word[word_end..].trim() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_a_comment_line_with_the_tag() {
        let text = "fn a() {}\n    // qa:begin loop\n//lab:end\n// lab:begin solution x \"do it\"  \n";
        assert_eq!(markers(text, "qa"), [Marker { line: 2, keyword: "qa:begin", args: "loop" }]);
        assert_eq!(
            markers(text, "lab"),
            [
                Marker { line: 3, keyword: "lab:end", args: "" },
                Marker { line: 4, keyword: "lab:begin", args: "solution x \"do it\"" },
            ]
        );
    }

    #[test]
    fn strings_code_and_doc_comments_are_not_markers() {
        let text = "let s = \"// qa:begin a\";\nx(); // qa:begin b\n/// qa:begin c\n// qa-begin d\n// qaz:begin e\n";
        assert_eq!(markers(text, "qa"), []);
    }
}
