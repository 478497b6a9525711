//! Solution regions: the parts of a stage that are the students' exercises.
//!
//! A region is a run of whole lines between two marker comments:
//!
//! ```text
//! // lab:begin solution stage5-uart-iir "compute IIR from the pending, enabled interrupts"
//! /// doc comments, consts, impl blocks, functions...
//! // lab:end
//! ```
//!
//! In the handout, the body of every function inside a region becomes
//! `todo!("stage 5 exercise stage5-uart-iir (fn NAME): MESSAGE; see labs/stage05-serial.md")`.
//! Everything else — signatures, doc comments, constants, the markers themselves — stays, so
//! the handout compiles, its unit tests compile, and the stub fails at run time naming the
//! exercise. See `grade/README.md` for the convention.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The marker that opens a region.
pub const BEGIN_MARKER: &str = "// lab:begin";
/// The marker that closes a region.
pub const END_MARKER: &str = "// lab:end";

/// Errors in the markers of a source file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionError {
    /// A `lab:begin` inside another region.
    #[error("{file}:{line}: region '{name}' begins inside region '{outer}' (opened at line {outer_line}); regions do not nest")]
    Nested {
        /// The file.
        file: PathBuf,
        /// The inner begin line (1-based).
        line: usize,
        /// The inner region's name.
        name: String,
        /// The outer region's name.
        outer: String,
        /// The outer begin line.
        outer_line: usize,
    },
    /// A `lab:begin` without its `lab:end`.
    #[error("{file}:{line}: region '{name}' is never closed with `// lab:end`")]
    Unterminated {
        /// The file.
        file: PathBuf,
        /// The begin line.
        line: usize,
        /// The region's name.
        name: String,
    },
    /// A `lab:end` with no open region.
    #[error("{file}:{line}: `// lab:end` without a `// lab:begin` before it")]
    EndWithoutBegin {
        /// The file.
        file: PathBuf,
        /// The end line.
        line: usize,
    },
    /// Two regions with the same name.
    #[error("{file}:{line}: region '{name}' is defined twice (first at {first_file}:{first_line})")]
    Duplicate {
        /// The file of the second definition.
        file: PathBuf,
        /// Its begin line.
        line: usize,
        /// The name.
        name: String,
        /// The file of the first definition.
        first_file: PathBuf,
        /// Its begin line.
        first_line: usize,
    },
    /// A marker line that does not follow the syntax.
    #[error("{file}:{line}: bad marker: {reason} (expected `// lab:begin solution stageN-name \"message\"`)")]
    Malformed {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A region with no function body to replace.
    #[error("{file}:{line}: region '{name}' holds no function body to replace with a stub")]
    NoFunction {
        /// The file.
        file: PathBuf,
        /// The begin line.
        line: usize,
        /// The region's name.
        name: String,
    },
    /// Braces that do not balance inside a region.
    #[error("{file}:{line}: region '{name}': a function body's braces do not close inside the region")]
    Unbalanced {
        /// The file.
        file: PathBuf,
        /// The begin line.
        line: usize,
        /// The region's name.
        name: String,
    },
}

/// One solution region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The exercise's name, `stageN-what`.
    pub name: String,
    /// The stage it belongs to (N).
    pub stage: u32,
    /// The file, relative to the repository root.
    pub file: PathBuf,
    /// The line of `// lab:begin` (1-based).
    pub begin_line: usize,
    /// The line of `// lab:end` (1-based).
    pub end_line: usize,
    /// What the student has to do, from the begin marker (may be empty).
    pub message: String,
    /// The functions whose bodies the handout replaces.
    pub functions: Vec<String>,
}

impl Region {
    /// The lab text of the region's stage: `labs/stageNN-name.md`, from the stage folder
    /// `stages/NN-name` (or `labs/` when the file is not in a stage folder).
    pub fn lab_text(&self) -> String {
        match stage_folder(&self.file) {
            Some((_, folder)) => format!("labs/stage{folder}.md"),
            None => "labs/".to_string(),
        }
    }

    /// The message of the stub for function `function`.
    pub fn stub_message(&self, function: &str) -> String {
        let what =
            if self.message.is_empty() { format!("write the body of `{function}`") } else { self.message.clone() };
        format!("stage {} exercise {} (fn {function}): {what}; see {}", self.stage, self.name, self.lab_text())
    }
}

/// `stages/NN-name/...` → (NN, "NN-name").
fn stage_folder(file: &Path) -> Option<(u32, String)> {
    let mut parts = file.components().map(|c| c.as_os_str().to_string_lossy().into_owned());
    if parts.next()? != "stages" {
        return None;
    }
    let folder = parts.next()?;
    let number = folder.split('-').next()?.parse().ok()?;
    Some((number, folder))
}

/// Finds the regions of one file (`file` is its path relative to the repository, for messages
/// and the stage number; `text` its contents), and checks that each can be stubbed.
///
/// # Errors
/// The first [`RegionError`] in the file.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<Region>, RegionError> {
    let mut regions: Vec<Region> = Vec::new();
    let mut open: Option<Region> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(BEGIN_MARKER) {
            let (name, message) = parse_begin(rest).map_err(|reason| RegionError::Malformed {
                file: file.to_path_buf(),
                line: number,
                reason,
            })?;
            if let Some(outer) = &open {
                return Err(RegionError::Nested {
                    file: file.to_path_buf(),
                    line: number,
                    name,
                    outer: outer.name.clone(),
                    outer_line: outer.begin_line,
                });
            }
            let stage = stage_of(file, &name).map_err(|reason| RegionError::Malformed {
                file: file.to_path_buf(),
                line: number,
                reason,
            })?;
            open = Some(Region {
                name,
                stage,
                file: file.to_path_buf(),
                begin_line: number,
                end_line: 0,
                message,
                functions: Vec::new(),
            });
        } else if let Some(rest) = trimmed.strip_prefix(END_MARKER) {
            if !rest.trim().is_empty() {
                return Err(RegionError::Malformed {
                    file: file.to_path_buf(),
                    line: number,
                    reason: format!("unexpected text after `// lab:end`: '{}'", rest.trim()),
                });
            }
            let mut region =
                open.take().ok_or(RegionError::EndWithoutBegin { file: file.to_path_buf(), line: number })?;
            region.end_line = number;
            regions.push(region);
        } else if trimmed.starts_with("// lab:") {
            return Err(RegionError::Malformed {
                file: file.to_path_buf(),
                line: number,
                reason: "unknown `lab:` marker".to_string(),
            });
        }
    }
    if let Some(region) = open {
        return Err(RegionError::Unterminated { file: file.to_path_buf(), line: region.begin_line, name: region.name });
    }
    // Each region must have something to stub, and its braces must balance.
    let lines: Vec<&str> = text.lines().collect();
    for region in &mut regions {
        let inside = lines[region.begin_line..region.end_line - 1].join("\n");
        let (_, functions) = stub_functions(&inside, |_| String::new()).ok_or_else(|| RegionError::Unbalanced {
            file: file.to_path_buf(),
            line: region.begin_line,
            name: region.name.clone(),
        })?;
        if functions.is_empty() {
            return Err(RegionError::NoFunction {
                file: file.to_path_buf(),
                line: region.begin_line,
                name: region.name.clone(),
            });
        }
        region.functions = functions;
    }
    Ok(regions)
}

/// `solution NAME ["MESSAGE"]` → (NAME, MESSAGE).
fn parse_begin(rest: &str) -> Result<(String, String), String> {
    let rest = rest.trim();
    let rest = rest.strip_prefix("solution").ok_or("the kind of region must be `solution`")?;
    if !rest.starts_with(char::is_whitespace) {
        return Err("a name must follow `solution`".to_string());
    }
    let rest = rest.trim_start();
    let name_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (name, rest) = rest.split_at(name_end);
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!("'{name}' is not a name (lower-case letters, digits and '-')"));
    }
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok((name.to_string(), String::new()));
    }
    let message = rest
        .strip_prefix('"')
        .and_then(|m| m.strip_suffix('"'))
        .ok_or("the message must be in double quotes, at the end of the line")?;
    if message.contains('"') || message.contains('\\') {
        return Err("the message may not contain '\"' or '\\'".to_string());
    }
    Ok((name.to_string(), message.to_string()))
}

/// The stage of region `name` in `file`: `stageN-...`, which must agree with the folder.
fn stage_of(file: &Path, name: &str) -> Result<u32, String> {
    let from_name = name
        .strip_prefix("stage")
        .and_then(|rest| rest.split('-').next())
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| format!("the name '{name}' must start with `stageN-`"))?;
    match stage_folder(file) {
        Some((folder, _)) if folder != from_name => {
            Err(format!("'{name}' names stage {from_name}, but the file is in stage {folder}"))
        }
        _ => Ok(from_name),
    }
}

/// Finds the regions of every file of `files` (path relative to the repository → contents);
/// region names must be unique across all of them.
///
/// # Errors
/// The first [`RegionError`].
pub fn parse_tree(files: &BTreeMap<PathBuf, String>) -> Result<Vec<Region>, RegionError> {
    let mut all: Vec<Region> = Vec::new();
    for (file, text) in files {
        for region in parse_file(file, text)? {
            if let Some(first) = all.iter().find(|r| r.name == region.name) {
                return Err(RegionError::Duplicate {
                    file: region.file.clone(),
                    line: region.begin_line,
                    name: region.name.clone(),
                    first_file: first.file.clone(),
                    first_line: first.begin_line,
                });
            }
            all.push(region);
        }
    }
    all.sort_by(|a, b| (a.stage, &a.file, a.begin_line).cmp(&(b.stage, &b.file, b.begin_line)));
    Ok(all)
}

/// `text` (the whole file whose regions are `regions`) with the function bodies of the regions
/// named in `stub` replaced by stubs.
pub fn stub_file(text: &str, regions: &[Region], stub: &dyn Fn(&Region) -> bool) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len());
    let mut next = 0; // the next line (0-based) to copy
    for region in regions.iter().filter(|r| stub(r)) {
        // Copy up to and including the begin marker, stub the inside, keep the end marker.
        out.extend(lines[next..region.begin_line].iter().copied());
        let inside: String = lines[region.begin_line..region.end_line - 1].concat();
        let (stubbed, _) = stub_functions(&inside, |function| region.stub_message(function))
            .expect("parse_file checked that the region's braces balance");
        out += &stubbed;
        next = region.end_line - 1;
    }
    out.extend(lines[next..].iter().copied());
    out
}

/// Replaces the body of every function in `source` by `todo!(message(name))`; returns the new
/// text and the functions' names, or `None` if a body does not close.
pub fn stub_functions(source: &str, message: impl Fn(&str) -> String) -> Option<(String, Vec<String>)> {
    let tokens = tokenize(source);
    let mut out = String::with_capacity(source.len());
    let mut copied = 0; // bytes of `source` already handled
    let mut names = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_fn = tokens[i].text(source) == "fn" && tokens.get(i + 1).is_some_and(|t| t.kind == Kind::Ident);
        if !is_fn {
            i += 1;
            continue;
        }
        let name = tokens[i + 1].text(source).to_string();
        // The signature ends at the first `{` or `;` outside parentheses and brackets.
        let mut depth = 0i32;
        let mut j = i + 2;
        let open = loop {
            let token = tokens.get(j)?;
            match token.text(source) {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                ";" if depth == 0 => break None,
                "{" if depth == 0 => break Some(j),
                _ => {}
            }
            j += 1;
        };
        let Some(open) = open else {
            i = j + 1; // a declaration without a body (in a trait)
            continue;
        };
        let mut braces = 0i32;
        let mut close = open;
        loop {
            match tokens.get(close)?.text(source) {
                "{" => braces += 1,
                "}" => {
                    braces -= 1;
                    if braces == 0 {
                        break;
                    }
                }
                _ => {}
            }
            close += 1;
        }
        let fn_start = tokens[i].start;
        let line_start = source[..fn_start].rfind('\n').map_or(0, |n| n + 1);
        let indent: String = source[line_start..].chars().take_while(|c| *c == ' ' || *c == '\t').collect();
        out += &source[copied..tokens[open].start];
        let _ = write!(out, "{{\n{indent}    todo!(\"{}\")\n{indent}}}", escape_format(&message(&name)));
        copied = tokens[close].start + 1;
        names.push(name);
        i = close + 1;
    }
    out += &source[copied..];
    Some((out, names))
}

/// Makes `text` safe inside the format string of `todo!("...")`.
fn escape_format(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('{', "{{").replace('}', "}}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

impl Token {
    fn text(self, source: &str) -> &str {
        &source[self.start..self.end]
    }
}

/// Identifiers and punctuation of Rust source; comments, strings, characters, lifetimes and
/// numbers are skipped (enough to find `fn NAME ... { ... }` reliably).
fn tokenize(source: &str) -> Vec<Token> {
    let bytes = source.as_bytes();
    let ident_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied().unwrap_or(0);
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b'/' && next == b'/' {
            i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
        } else if b == b'/' && next == b'*' {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b == b'"' {
            i = skip_string(bytes, i + 1);
        } else if b == b'\'' {
            i = skip_quote(bytes, i);
        } else if b.is_ascii_digit() {
            while i < bytes.len() && (ident_byte(bytes[i]) || bytes[i] == b'.' && bytes.get(i + 1) != Some(&b'.')) {
                i += 1;
            }
        } else if ident_byte(b) {
            let start = i;
            while i < bytes.len() && ident_byte(bytes[i]) {
                i += 1;
            }
            let word = &source[start..i];
            let after = bytes.get(i).copied().unwrap_or(0);
            match (word, after) {
                // Raw strings r"..", r#".."#, br"..", cr"..".
                ("r" | "br" | "cr", b'"' | b'#') if raw_string_end(bytes, i).is_some() => {
                    i = raw_string_end(bytes, i).unwrap_or(bytes.len());
                }
                // Byte and C strings, byte characters.
                ("b" | "c", b'"') => i = skip_string(bytes, i + 1),
                ("b", b'\'') => i = skip_quote(bytes, i),
                _ => tokens.push(Token { kind: Kind::Ident, start, end: i }),
            }
        } else {
            tokens.push(Token { kind: Kind::Punct, start: i, end: i + 1 });
            i += 1;
        }
    }
    tokens
}

/// After the opening quote at `i - 1`: the index after the closing quote.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// At a `'`: skips a character literal or a lifetime.
fn skip_quote(bytes: &[u8], i: usize) -> usize {
    if bytes.get(i + 1) == Some(&b'\\') {
        // An escaped character: up to the closing quote.
        let mut j = i + 2;
        while j < bytes.len() && bytes[j] != b'\'' {
            j += 1;
        }
        return j + 1;
    }
    // One (UTF-8) character and a closing quote, or else a lifetime.
    let width = match bytes.get(i + 1) {
        Some(&b) if b < 0x80 => 1,
        Some(&b) if b >= 0xf0 => 4,
        Some(&b) if b >= 0xe0 => 3,
        Some(_) => 2,
        None => return bytes.len(),
    };
    if bytes.get(i + 1 + width) == Some(&b'\'') {
        return i + 2 + width;
    }
    let mut j = i + 1;
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    j
}

/// At `i`, after `r`/`br`/`cr`: `#`s, a quote, ..., a quote and as many `#`s. The index after.
fn raw_string_end(bytes: &[u8], i: usize) -> Option<usize> {
    let hashes = bytes[i..].iter().take_while(|&&b| b == b'#').count();
    if bytes.get(i + hashes) != Some(&b'"') {
        return None; // a raw identifier (r#type)
    }
    let mut j = i + hashes + 1;
    while j < bytes.len() {
        if bytes[j] == b'"' && bytes[j + 1..].iter().take(hashes).filter(|&&b| b == b'#').count() == hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Region>, RegionError> {
        parse_file(Path::new("stages/05-serial/src/uart.rs"), text)
    }

    const ONE: &str = "\
use x;
// lab:begin solution stage5-uart-iir \"compute IIR\"
/// Doc with fn in it and a { brace.
const K: u8 = 1;
fn iir(a: u8, f: fn(u8) -> u8) -> u8 {
    let s = \"}{\"; let c = '}'; let l: &'static str = r#\"fn x() {\"#;
    if a > K { f(a) } else { 0 }
}
impl Uart {
    pub(crate) fn read<'a>(&'a mut self) -> Result<u8, [u8; 2]> where Self: Sized { Ok(1) }
}
// lab:end
fn untouched() -> u8 { 3 }
";

    #[test]
    fn a_region_is_found_with_its_functions() {
        let regions = parse(ONE).unwrap();
        assert_eq!(regions.len(), 1);
        let r = &regions[0];
        assert_eq!((r.name.as_str(), r.stage, r.begin_line, r.end_line), ("stage5-uart-iir", 5, 2, 12));
        assert_eq!(r.message, "compute IIR");
        assert_eq!(r.functions, vec!["iir", "read"]);
        assert_eq!(r.lab_text(), "labs/stage05-serial.md");
    }

    #[test]
    fn stubs_replace_function_bodies_and_keep_everything_else() {
        let regions = parse(ONE).unwrap();
        let out = stub_file(ONE, &regions, &|_| true);
        let expected = "\
use x;
// lab:begin solution stage5-uart-iir \"compute IIR\"
/// Doc with fn in it and a { brace.
const K: u8 = 1;
fn iir(a: u8, f: fn(u8) -> u8) -> u8 {
    todo!(\"stage 5 exercise stage5-uart-iir (fn iir): compute IIR; see labs/stage05-serial.md\")
}
impl Uart {
    pub(crate) fn read<'a>(&'a mut self) -> Result<u8, [u8; 2]> where Self: Sized {
        todo!(\"stage 5 exercise stage5-uart-iir (fn read): compute IIR; see labs/stage05-serial.md\")
    }
}
// lab:end
fn untouched() -> u8 { 3 }
";
        assert_eq!(out, expected);
        assert_eq!(stub_file(ONE, &regions, &|_| false), ONE, "unselected regions stay");
    }

    #[test]
    fn without_a_message_the_stub_names_the_function() {
        let text = "// lab:begin solution stage1-up\nfn up(b: u8) -> u8 {\n    b\n}\n// lab:end\n";
        let regions = parse_file(Path::new("stages/01-hello/src/lib.rs"), text).unwrap();
        let out = stub_file(text, &regions, &|_| true);
        assert!(
            out.contains(
                "todo!(\"stage 1 exercise stage1-up (fn up): write the body of `up`; see labs/stage01-hello.md\")"
            ),
            "{out}"
        );
    }

    #[test]
    fn braces_in_messages_are_escaped_for_the_format_string() {
        assert_eq!(escape_format("a {b} \"c\""), "a {{b}} \\\"c\\\"");
    }

    #[test]
    fn nested_regions_are_an_error_naming_file_and_line() {
        let text = "// lab:begin solution stage5-a\nfn a() {}\n// lab:begin solution stage5-b\nfn b() {}\n// lab:end\n// lab:end\n";
        let err = parse(text).unwrap_err();
        assert!(matches!(err, RegionError::Nested { line: 3, outer_line: 1, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "stages/05-serial/src/uart.rs:3: region 'stage5-b' begins inside region 'stage5-a' (opened at line 1); regions do not nest"
        );
    }

    #[test]
    fn an_unterminated_region_is_an_error_naming_file_and_line() {
        let err = parse("\n// lab:begin solution stage5-a\nfn a() {}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "stages/05-serial/src/uart.rs:2: region 'stage5-a' is never closed with `// lab:end`"
        );
    }

    #[test]
    fn an_end_without_begin_is_an_error() {
        let err = parse("fn a() {}\n    // lab:end\n").unwrap_err();
        assert_eq!(err, RegionError::EndWithoutBegin { file: "stages/05-serial/src/uart.rs".into(), line: 2 });
    }

    #[test]
    fn duplicate_names_are_an_error_naming_both_places() {
        let mut files = BTreeMap::new();
        files.insert(
            PathBuf::from("stages/05-serial/src/a.rs"),
            "\n// lab:begin solution stage5-a\nfn a() {}\n// lab:end\n".to_string(),
        );
        files.insert(
            PathBuf::from("stages/05-serial/src/b.rs"),
            "// lab:begin solution stage5-a\nfn b() {}\n// lab:end\n".to_string(),
        );
        let err = parse_tree(&files).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stages/05-serial/src/b.rs:1: region 'stage5-a' is defined twice (first at stages/05-serial/src/a.rs:2)"
        );
    }

    #[test]
    fn malformed_markers_are_errors() {
        for (text, reason) in [
            ("// lab:begin hint stage5-a\nfn a() {}\n// lab:end\n", "`solution`"),
            ("// lab:begin solution Stage5\nfn a() {}\n// lab:end\n", "not a name"),
            ("// lab:begin solution stage5-a unquoted\nfn a() {}\n// lab:end\n", "double quotes"),
            ("// lab:begin solution stage4-a\nfn a() {}\n// lab:end\n", "is in stage 5"),
            ("// lab:begin solution x-a\nfn a() {}\n// lab:end\n", "`stageN-`"),
            ("// lab:begin solution stage5-a\nfn a() {}\n// lab:end now\n", "after"),
            ("// lab:bgein solution stage5-a\n", "unknown"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, RegionError::Malformed { line: _, .. }), "{text}: {err:?}");
            assert!(err.to_string().contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn a_region_without_a_function_is_an_error() {
        let err = parse("// lab:begin solution stage5-a\nconst A: u8 = 1;\nfn decl();\n// lab:end\n").unwrap_err();
        assert!(matches!(err, RegionError::NoFunction { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn a_body_that_does_not_close_inside_the_region_is_an_error() {
        let err = parse("// lab:begin solution stage5-a\nfn a() {\n// lab:end\n}\n").unwrap_err();
        assert!(matches!(err, RegionError::Unbalanced { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn lifetimes_chars_and_raw_identifiers_do_not_confuse_the_tokenizer() {
        let source = "fn f<'a>(x: &'a u8, r#type: u8) -> char { let q = '\\''; let b = b'{'; '{' }\nfn g() {}";
        let (out, names) = stub_functions(source, |n| format!("do {n}")).unwrap();
        assert_eq!(names, vec!["f", "g"]);
        assert_eq!(
            out,
            "fn f<'a>(x: &'a u8, r#type: u8) -> char {\n    todo!(\"do f\")\n}\nfn g() {\n    todo!(\"do g\")\n}"
        );
    }
}
