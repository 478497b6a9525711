//! Quiz excerpts: `// qa:begin NAME` … `// qa:end NAME` in the real source.
//!
//! The course this replaces showed code by fixed line ranges, which silently showed the wrong
//! lines once the code moved. A marker moves with the code, and `qa lint` fails when one is
//! lost, so an excerpt is always the code it was written for. Excerpts may overlap and may sit
//! inside or around a solution region: each pairs only with its own name.

use std::path::Path;

/// The comment that opens a region.
pub const BEGIN: &str = "qa:begin";
/// The comment that closes a region.
pub const END: &str = "qa:end";

/// Why a marker does not resolve.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MarkerError {
    /// The file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The source file.
        file: String,
        /// Why.
        reason: String,
    },
    /// No `qa:begin NAME` in the file.
    #[error("{file}: no `{BEGIN} {name}` marker")]
    Missing {
        /// The source file.
        file: String,
        /// The marker name.
        name: String,
    },
    /// More than one `qa:begin NAME`.
    #[error("{file}: `{BEGIN} {name}` appears {count} times (lines {lines:?}); a marker must be unique")]
    Duplicate {
        /// The source file.
        file: String,
        /// The marker name.
        name: String,
        /// How many.
        count: usize,
        /// Where.
        lines: Vec<usize>,
    },
    /// A begin without its end (or an end before its begin, or twice).
    #[error("{file}:{line}: `{BEGIN} {name}` has no single matching `{END} {name}` after it")]
    Unterminated {
        /// The source file.
        file: String,
        /// The marker name.
        name: String,
        /// Line of the begin marker.
        line: usize,
    },
}

/// The lines of a marked region, without the marker lines themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    /// The file, relative to the repository root.
    pub file: String,
    /// 1-based line number of the first excerpt line.
    pub first_line: usize,
    /// The lines, with their common indentation removed.
    pub lines: Vec<String>,
}

impl Excerpt {
    /// 1-based line number of the last excerpt line.
    pub fn last_line(&self) -> usize {
        self.first_line + self.lines.len().saturating_sub(1)
    }
}

/// Every `(name, line)` of `keyword` markers (`qa:begin`, `qa:end`) in `text`.
pub fn scan(text: &str, keyword: &str) -> Vec<(String, usize)> {
    let tag = keyword.split(':').next().unwrap_or(keyword);
    crate::markers(text, tag)
        .into_iter()
        .filter(|marker| marker.keyword == keyword)
        .filter_map(|marker| Some((marker.args.split_whitespace().next()?.to_string(), marker.line)))
        .collect()
}

/// Finds region `name` in `text` (the contents of `file`).
///
/// # Errors
/// [`MarkerError::Missing`], [`MarkerError::Duplicate`] or [`MarkerError::Unterminated`].
pub fn find_in(file: &str, text: &str, name: &str) -> Result<Excerpt, MarkerError> {
    let begins: Vec<usize> = scan(text, BEGIN).into_iter().filter(|(n, _)| n == name).map(|(_, l)| l).collect();
    let ends: Vec<usize> = scan(text, END).into_iter().filter(|(n, _)| n == name).map(|(_, l)| l).collect();
    let begin = match begins.as_slice() {
        [] => return Err(MarkerError::Missing { file: file.into(), name: name.into() }),
        [one] => *one,
        many => {
            return Err(MarkerError::Duplicate {
                file: file.into(),
                name: name.into(),
                count: many.len(),
                lines: many.to_vec(),
            })
        }
    };
    let end = match ends.as_slice() {
        [end] if *end > begin => *end,
        _ => return Err(MarkerError::Unterminated { file: file.into(), name: name.into(), line: begin }),
    };
    let raw: Vec<&str> = text.lines().skip(begin).take(end - begin - 1).collect();
    let indent = raw.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let lines = raw.iter().map(|l| l.get(indent..).unwrap_or("").trim_end().to_string()).collect();
    Ok(Excerpt { file: file.into(), first_line: begin + 1, lines })
}

/// Reads `file` under `repo` and finds region `name` in it.
///
/// # Errors
/// [`MarkerError::Read`], or as [`find_in`].
pub fn find(repo: &Path, file: &str, name: &str) -> Result<Excerpt, MarkerError> {
    let text = std::fs::read_to_string(repo.join(file))
        .map_err(|e| MarkerError::Read { file: file.into(), reason: e.to_string() })?;
    find_in(file, &text, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str =
        "fn a() {}\n    // qa:begin loop\n    loop {\n        run();\n    }\n    // qa:end loop\n// qa:begin open\nx\n";

    #[test]
    fn a_region_is_found_dedented_with_its_line_numbers() {
        let excerpt = find_in("lib.rs", SOURCE, "loop").unwrap();
        assert_eq!(excerpt.first_line, 3);
        assert_eq!(excerpt.last_line(), 5);
        assert_eq!(excerpt.lines, ["loop {", "    run();", "}"]);
    }

    #[test]
    fn missing_duplicate_and_unterminated_markers_are_errors() {
        assert!(matches!(find_in("f", SOURCE, "nope"), Err(MarkerError::Missing { .. })));
        assert!(matches!(find_in("f", SOURCE, "open"), Err(MarkerError::Unterminated { line: 7, .. })));
        let twice = format!("{SOURCE}// qa:begin loop\n// qa:end loop\n");
        assert!(matches!(find_in("f", &twice, "loop"), Err(MarkerError::Duplicate { count: 2, .. })));
    }

    #[test]
    fn only_whole_marker_comments_count() {
        let text = "let s = \"qa:begin fake\";\n// qa:beginning x\n// qa:begin\n// qa:begin real\n// qa:end real\n";
        assert_eq!(scan(text, BEGIN), [("real".to_string(), 4)]);
        assert_eq!(scan(text, END), [("real".to_string(), 5)]);
    }
}
