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
//!
//! The markers are found line by line ([`crate::markers`]); the functions inside a region by
//! parsing the whole file with `syn`, so only files with regions need to be valid Rust.

use crate::functions::{self, Function};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The comment that opens a region.
pub const BEGIN: &str = "lab:begin";
/// The comment that closes a region.
pub const END: &str = "lab:end";
/// The tag of the markers, as [`crate::markers`] takes it.
const TAG: &str = "lab";

/// Errors in the markers of a source file.
#[derive(Debug, thiserror::Error)]
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
    /// A function that begins inside a region and ends after it.
    #[error("{file}:{line}: region '{name}': a function body's braces do not close inside the region")]
    Unbalanced {
        /// The file.
        file: PathBuf,
        /// The begin line.
        line: usize,
        /// The region's name.
        name: String,
    },
    /// A file with regions that does not parse as Rust, so its functions cannot be found.
    #[error("{file}:{line}: cannot find the functions of the solution regions: {source}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// The line of the syntax error.
        line: usize,
        /// The syntax error.
        #[source]
        source: syn::Error,
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
    let mut regions = find_regions(file, text)?;
    if regions.is_empty() {
        return Ok(regions);
    }
    let functions = parse_functions(file, text)?;
    for region in &mut regions {
        region.functions = functions_of(region, &functions)?.iter().map(|f| f.name.clone()).collect();
    }
    Ok(regions)
}

/// The regions of one file as its markers give them, without their functions.
fn find_regions(file: &Path, text: &str) -> Result<Vec<Region>, RegionError> {
    let malformed = |line, reason| RegionError::Malformed { file: file.to_path_buf(), line, reason };
    let mut regions: Vec<Region> = Vec::new();
    let mut open: Option<Region> = None;
    for marker in crate::markers(text, TAG) {
        let line = marker.line;
        if marker.keyword == BEGIN {
            let (name, message) = parse_begin(marker.args).map_err(|reason| malformed(line, reason))?;
            if let Some(outer) = &open {
                return Err(RegionError::Nested {
                    file: file.to_path_buf(),
                    line,
                    name,
                    outer: outer.name.clone(),
                    outer_line: outer.begin_line,
                });
            }
            let stage = stage_of(file, &name).map_err(|reason| malformed(line, reason))?;
            open = Some(Region {
                name,
                stage,
                file: file.to_path_buf(),
                begin_line: line,
                end_line: 0,
                message,
                functions: Vec::new(),
            });
        } else if marker.keyword == END {
            if !marker.args.is_empty() {
                return Err(malformed(line, format!("unexpected text after `// {END}`: '{}'", marker.args)));
            }
            let mut region = open.take().ok_or(RegionError::EndWithoutBegin { file: file.to_path_buf(), line })?;
            region.end_line = line;
            regions.push(region);
        } else {
            return Err(malformed(line, format!("unknown `{TAG}:` marker")));
        }
    }
    if let Some(region) = open {
        return Err(RegionError::Unterminated { file: file.to_path_buf(), line: region.begin_line, name: region.name });
    }
    Ok(regions)
}

/// The functions of `text`, the contents of `file`.
fn parse_functions(file: &Path, text: &str) -> Result<Vec<Function>, RegionError> {
    functions::functions(text).map_err(|source| RegionError::Parse {
        file: file.to_path_buf(),
        line: source.span().start().line,
        source,
    })
}

/// The functions whose bodies the stub of `region` replaces: each whose `fn` is inside the
/// region (a doc comment or attribute may stand above the begin marker), except those nested in
/// another, which go with its body.
///
/// # Errors
/// [`RegionError::Unbalanced`] for a function that ends after the region,
/// [`RegionError::NoFunction`] when there is none.
fn functions_of<'a>(region: &Region, functions: &'a [Function]) -> Result<Vec<&'a Function>, RegionError> {
    let mut inside: Vec<&Function> = Vec::new();
    for function in functions.iter().filter(|f| region.begin_line < f.fn_line && f.fn_line < region.end_line) {
        if function.end_line >= region.end_line {
            return Err(RegionError::Unbalanced {
                file: region.file.clone(),
                line: region.begin_line,
                name: region.name.clone(),
            });
        }
        if inside.last().is_some_and(|outer| outer.body.end > function.body.start) {
            continue;
        }
        inside.push(function);
    }
    if inside.is_empty() {
        return Err(RegionError::NoFunction {
            file: region.file.clone(),
            line: region.begin_line,
            name: region.name.clone(),
        });
    }
    Ok(inside)
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
///
/// # Errors
/// As [`parse_file`], if `text` is not the text the regions were found in.
pub fn stub_file(text: &str, regions: &[Region], stub: &dyn Fn(&Region) -> bool) -> Result<String, RegionError> {
    let chosen: Vec<&Region> = regions.iter().filter(|r| stub(r)).collect();
    let Some(first) = chosen.first() else {
        return Ok(text.to_string());
    };
    let functions = parse_functions(&first.file, text)?;
    let mut stubs = Vec::new();
    for region in chosen {
        for function in functions_of(region, &functions)? {
            stubs.push((function, region.stub_message(&function.name)));
        }
    }
    stubs.sort_by_key(|(function, _)| function.body.start);
    Ok(functions::stub_bodies(text, &stubs))
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
        let out = stub_file(ONE, &regions, &|_| true).unwrap();
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
        assert_eq!(stub_file(ONE, &regions, &|_| false).unwrap(), ONE, "unselected regions stay");
    }

    #[test]
    fn without_a_message_the_stub_names_the_function() {
        let text = "// lab:begin solution stage1-up\nfn up(b: u8) -> u8 {\n    b\n}\n// lab:end\n";
        let regions = parse_file(Path::new("stages/01-hello/src/lib.rs"), text).unwrap();
        let out = stub_file(text, &regions, &|_| true).unwrap();
        assert!(
            out.contains(
                "todo!(\"stage 1 exercise stage1-up (fn up): write the body of `up`; see labs/stage01-hello.md\")"
            ),
            "{out}"
        );
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
        assert!(matches!(err, RegionError::EndWithoutBegin { line: 2, .. }), "{err:?}");
        assert_eq!(err.to_string(), "stages/05-serial/src/uart.rs:2: `// lab:end` without a `// lab:begin` before it");
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
    fn only_the_outer_of_nested_functions_is_stubbed_and_trait_declarations_are_kept() {
        let text = "\
// lab:begin solution stage5-a
trait Device {
    fn reset(&mut self);
    fn read(&self) -> u8 {
        fn helper() -> u8 { 1 }
        helper()
    }
}
// lab:end
";
        let regions = parse(text).unwrap();
        assert_eq!(regions[0].functions, vec!["read"]);
        let expected = "\
// lab:begin solution stage5-a
trait Device {
    fn reset(&mut self);
    fn read(&self) -> u8 {
        todo!(\"stage 5 exercise stage5-a (fn read): write the body of `read`; see labs/stage05-serial.md\")
    }
}
// lab:end
";
        assert_eq!(stub_file(text, &regions, &|_| true).unwrap(), expected);
    }

    #[test]
    fn a_doc_comment_above_the_begin_marker_does_not_take_the_function_out() {
        let text = "/// Doc.\n// lab:begin solution stage5-a\nfn a() -> u8 { 1 }\n// lab:end\n";
        assert_eq!(parse(text).unwrap()[0].functions, vec!["a"]);
    }

    #[test]
    fn a_file_with_regions_must_parse_and_one_without_need_not() {
        let err = parse("// lab:begin solution stage5-a\nfn a() {}\n// lab:end\nfn b( {}\n").unwrap_err();
        assert!(matches!(err, RegionError::Parse { line: 4, .. }), "{err:?}");
        assert!(err.to_string().starts_with("stages/05-serial/src/uart.rs:4: cannot find the functions"), "{err}");
        assert_eq!(parse("fn b( {}\n").unwrap(), []);
    }
}
