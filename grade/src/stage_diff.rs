//! What a stage adds over the previous one, and the copy of it in each stage's README.
//!
//! Stage N is a crate that depends on stage N−1, so "what is new" is not a diff of two copies
//! of one tree (as in the RPi tutorials) but three things a reader can compare:
//! - the files under `src/`: new in stage N, with the same name as one of stage N−1 (`layout.rs`
//!   here extends the earlier one), and only in stage N−1 (they stay in that crate, used from
//!   there);
//! - the `pub mod` and `pub use` lines of `lib.rs`, new or kept, and the `pub use stageNN::…`
//!   re-exports of earlier stages anywhere under `src/`;
//! - a unified diff of `main.rs`, the recipe, against stage N−1's.
//!
//! Each stage's `README.md` embeds this text between [`BEGIN_MARKER`] and [`END_MARKER`];
//! [`check_readmes`] finds the stale ones and [`write_readmes`] regenerates them. Nothing here
//! is written by hand.
//!
//! # Resources
//! - RPi's generator: <https://github.com/rust-embedded/rust-raspberrypi-OS-tutorials/blob/master/utils/diff_tut_folders.bash>
//! - The unified diff format: <https://www.gnu.org/software/diffutils/manual/html_node/Unified-Format.html>

use similar::{Algorithm, ChangeTag, TextDiff};
use std::io;
use std::path::{Path, PathBuf};

/// The line before a README's generated diff.
pub const BEGIN_MARKER: &str = "<!-- diff:begin -->";
/// The line after a README's generated diff.
pub const END_MARKER: &str = "<!-- diff:end -->";
/// The command that rewrites stale READMEs, named in error messages.
pub const WRITE_COMMAND: &str = "cargo run -p grade -- diff --write";

/// Lines of unchanged context around each change of `main.rs`.
const CONTEXT_LINES: usize = 3;
/// The longest line of a wrapped list.
const WRAP_WIDTH: usize = 100;
/// A README shows a `main.rs` diff of at most this many lines unfolded.
pub const OPEN_DIFF_LINES: usize = 60;

/// Errors from reading the stages or their READMEs.
#[derive(Debug, thiserror::Error)]
pub enum StageDiffError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// No folder `stages/NN-*` for a requested stage.
    #[error("there is no stage {0} (no folder stages/{0:02}-*)")]
    NoStage(u32),
    /// A README lacks the markers its generated diff goes between.
    #[error("{}: no '{BEGIN_MARKER}' line followed by a '{END_MARKER}' line", .0.display())]
    NoMarkers(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StageDiffError + '_ {
    move |source| StageDiffError::Io { path: path.to_path_buf(), source }
}

/// One stage folder as the diff sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSources {
    /// The stage number N of `stages/NN-name`.
    pub number: u32,
    /// The folder relative to the repository, `/`-separated: `stages/03-vcpu`.
    pub dir: String,
    /// Every file under `src/`, relative to it, `/`-separated, sorted.
    pub files: Vec<String>,
    /// The text of `src/lib.rs` (empty when there is none).
    pub lib_rs: String,
    /// The text of `src/main.rs` (empty when there is none).
    pub main_rs: String,
    /// `pub use stageNN::…;` statements under `src/`, as (file, statement on one line).
    pub reexports: Vec<(String, String)>,
}

/// The stage folders of the repository at `repo`, as (number, folder name), by number.
pub fn stage_dirs(repo: &Path) -> Result<Vec<(u32, String)>, StageDiffError> {
    let stages = repo.join("stages");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&stages).map_err(io_error(&stages))? {
        let entry = entry.map_err(io_error(&stages))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let number = name.split_once('-').and_then(|(n, _)| n.parse::<u32>().ok());
        if let (Some(number), true) = (number, entry.path().is_dir()) {
            found.push((number, name));
        }
    }
    found.sort();
    Ok(found)
}

/// Reads stage `number` of the repository at `repo`.
pub fn read_stage(repo: &Path, number: u32) -> Result<StageSources, StageDiffError> {
    let (_, name) = stage_dirs(repo)?.into_iter().find(|(n, _)| *n == number).ok_or(StageDiffError::NoStage(number))?;
    let dir = format!("stages/{name}");
    let src = repo.join(&dir).join("src");
    let mut files = Vec::new();
    list_src(&src, "", &mut files)?;
    files.sort();
    let read = |file: &str| -> Result<String, StageDiffError> {
        let path = src.join(file);
        std::fs::read_to_string(&path).map_err(io_error(&path))
    };
    let mut reexports = Vec::new();
    for file in files.iter().filter(|f| f.ends_with(".rs")) {
        reexports.extend(stage_reexports(&read(file)?).into_iter().map(|s| (file.clone(), s)));
    }
    let optional = |file: &str| if files.iter().any(|f| f == file) { read(file) } else { Ok(String::new()) };
    Ok(StageSources { number, lib_rs: optional("lib.rs")?, main_rs: optional("main.rs")?, dir, files, reexports })
}

fn list_src(root: &Path, prefix: &str, files: &mut Vec<String>) -> Result<(), StageDiffError> {
    let dir = root.join(prefix);
    for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
        let entry = entry.map_err(io_error(&dir))?;
        let relative = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().map_err(io_error(&dir))?.is_dir() {
            list_src(root, &format!("{relative}/"), files)?;
        } else {
            files.push(relative);
        }
    }
    Ok(())
}

/// Statements that start with `prefix` in `text`, each joined onto one line up to its `;`.
fn statements(text: &str, prefixes: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if !prefixes.iter().any(|p| line.starts_with(p)) {
            continue;
        }
        let mut statement = line.to_string();
        while !statement.ends_with(';') {
            let Some(next) = lines.next() else { break };
            if !statement.ends_with(['{', '(']) && !next.starts_with(['}', ')']) {
                statement.push(' ');
            }
            statement.push_str(next);
        }
        found.push(statement.replace(",}", "}"));
    }
    found
}

/// The `pub use stageNN::…` statements of one source file: re-exports of an earlier stage.
fn stage_reexports(text: &str) -> Vec<String> {
    statements(text, &["pub use stage"])
}

/// The `pub mod` and `pub use` statements of a `lib.rs`.
fn lib_items(lib_rs: &str) -> Vec<String> {
    statements(lib_rs, &["pub mod ", "pub use "])
}

/// What a stage adds over the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageDiff {
    /// The stage number N.
    pub number: u32,
    /// The files, `lib.rs` items and re-exports; for the first stage, a sentence saying there is
    /// no previous stage.
    pub summary: String,
    /// `main.rs` against the previous stage's; `None` for the first stage.
    pub main_rs: Option<MainDiff>,
}

/// A unified diff of two stages' `main.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainDiff {
    /// The previous stage's number.
    pub previous: u32,
    /// The diff with its `---`/`+++` header; empty when the files are the same.
    pub text: String,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
}

impl StageDiff {
    /// The whole text, as `grade diff` prints it.
    pub fn text(&self) -> String {
        let Some(main) = &self.main_rs else { return self.summary.clone() };
        match main.text.is_empty() {
            true => format!("{}\nmain.rs: the same as stage {}'s\n", self.summary, main.previous),
            false => format!("{}\n{}:\n{}", self.summary, main.title(), main.text),
        }
    }

    /// What a README holds between its markers: the summary as a `diff` block, and the `main.rs`
    /// diff as another in a `<details>` element, open when it has at most [`OPEN_DIFF_LINES`]
    /// lines (a stage that rewrites `main.rs` folds it away).
    pub fn readme_block(&self) -> String {
        let mut block = fenced(&self.summary);
        if let Some(main) = &self.main_rs {
            if main.text.is_empty() {
                block += &format!("\n`main.rs` is the same as stage {}'s.\n", main.previous);
            } else {
                let open = if main.text.lines().count() <= OPEN_DIFF_LINES { " open" } else { "" };
                block += &format!("\n<details{open}><summary>{}</summary>\n\n", main.title());
                block += &fenced(&main.text);
                block += "\n</details>\n";
            }
        }
        block
    }
}

impl MainDiff {
    fn title(&self) -> String {
        format!("main.rs against stage {}'s (+{} -{} lines)", self.previous, self.added, self.removed)
    }
}

/// `text` as a fenced `diff` block, with a fence longer than any run of backticks inside.
fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}diff\n{text}{fence}\n")
}

/// What stage `current` adds over `previous` (`None` for the first stage). The summary's lines
/// start with `+` for what is new, as in a diff.
pub fn render(previous: Option<&StageSources>, current: &StageSources) -> StageDiff {
    let n = current.number;
    let Some(previous) = previous else {
        let summary =
            format!("Stage {n} ({}) is the first stage: there is no previous stage to diff against.\n", current.dir);
        return StageDiff { number: n, summary, main_rs: None };
    };
    let p = previous.number;
    let mut out = format!("stage {n} ({}) over stage {p} ({})\n", current.dir, previous.dir);

    out += "\nFiles under src/:\n";
    let (new_files, same_files): (Vec<&String>, Vec<&String>) =
        current.files.iter().partition(|f| !previous.files.contains(f));
    out += &wrapped("+ new: ", "+      ", &new_files);
    out += &wrapped(&format!("  same name in stage {p}: "), "    ", &same_files);
    let only_previous: Vec<&String> = previous.files.iter().filter(|f| !current.files.contains(f)).collect();
    out += &wrapped(&format!("  only in stage {p}, used from the stage{p:02} crate: "), "    ", &only_previous);

    out += &format!("\nlib.rs, pub mod and pub use lines (+ new in stage {n}):\n");
    let (old_items, new_items) = (lib_items(&previous.lib_rs), lib_items(&current.lib_rs));
    if new_items.is_empty() {
        out += "  (none)\n";
    }
    for item in &new_items {
        out += &format!("{}{item}\n", if old_items.contains(item) { ' ' } else { '+' });
    }
    let only_previous: Vec<&str> =
        old_items.iter().filter(|i| !new_items.contains(i)).map(|i| i.trim_end_matches(';')).collect();
    out += &wrapped(&format!("  only in stage {p}'s lib.rs: "), "    ", &only_previous);

    out += &format!("\nRe-exports of earlier stages in stage {n}:\n");
    if current.reexports.is_empty() {
        out += "  (none)\n";
    }
    for (file, statement) in &current.reexports {
        out += &format!("  {file}: {statement}\n");
    }

    StageDiff { number: n, summary: out, main_rs: Some(main_diff(previous, current)) }
}

fn main_diff(previous: &StageSources, current: &StageSources) -> MainDiff {
    let diff = TextDiff::configure().algorithm(Algorithm::Patience).diff_lines(&previous.main_rs, &current.main_rs);
    let count = |tag| diff.iter_all_changes().filter(|c| c.tag() == tag).count();
    let (added, removed) = (count(ChangeTag::Insert), count(ChangeTag::Delete));
    let mut text = String::new();
    if added + removed > 0 {
        let old = format!("{}/src/main.rs", previous.dir);
        let new = format!("{}/src/main.rs", current.dir);
        text = diff.unified_diff().context_radius(CONTEXT_LINES).header(&old, &new).to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    MainDiff { previous: previous.number, text, added, removed }
}

/// `label` and then `items`, comma-separated, in lines of at most [`WRAP_WIDTH`] characters
/// (continuation lines start with `indent`); nothing when there are no items.
fn wrapped<S: AsRef<str>>(label: &str, indent: &str, items: &[S]) -> String {
    let mut out = String::new();
    let mut line = label.to_string();
    for (i, item) in items.iter().enumerate() {
        let item = item.as_ref();
        let piece = if i + 1 < items.len() { format!("{item},") } else { item.to_string() };
        if i > 0 && line.len() + 1 + piece.len() > WRAP_WIDTH {
            out += &format!("{line}\n");
            line = format!("{indent}{piece}");
        } else {
            if i > 0 {
                line.push(' ');
            }
            line += &piece;
        }
    }
    if !items.is_empty() {
        out += &format!("{line}\n");
    }
    out
}

/// What stage `number` of the repository at `repo` adds over the stage before it.
pub fn stage_diff(repo: &Path, number: u32) -> Result<StageDiff, StageDiffError> {
    let current = read_stage(repo, number)?;
    let previous = stage_dirs(repo)?.into_iter().map(|(n, _)| n).filter(|&n| n < number).max();
    let previous = previous.map(|n| read_stage(repo, n)).transpose()?;
    Ok(render(previous.as_ref(), &current))
}

/// `readme` with the text between its markers replaced by `block`.
///
/// # Errors
/// [`StageDiffError::NoMarkers`] (naming `path`) when the markers are missing or out of order.
pub fn replace_block(readme: &str, block: &str, path: &Path) -> Result<String, StageDiffError> {
    let no_markers = || StageDiffError::NoMarkers(path.to_path_buf());
    let (_, inner) = marker_line(readme, BEGIN_MARKER, 0).ok_or_else(no_markers)?;
    let (end, _) = marker_line(readme, END_MARKER, inner).ok_or_else(no_markers)?;
    let newline = if readme[..inner].ends_with('\n') { "" } else { "\n" };
    Ok(format!("{}{newline}{block}{}", &readme[..inner], &readme[end..]))
}

/// Where the line that is exactly `marker` starts and ends (after its newline) in `text`, at or
/// after byte `from`.
fn marker_line(text: &str, marker: &str, from: usize) -> Option<(usize, usize)> {
    let mut offset = from;
    for line in text[from..].split_inclusive('\n') {
        if line.trim_end() == marker {
            return Some((offset, offset + line.len()));
        }
        offset += line.len();
    }
    None
}

/// The README of each stage in `stages` (every stage when empty), as (path, text, text it
/// should have).
fn expected_readmes(repo: &Path, stages: &[u32]) -> Result<Vec<(PathBuf, String, String)>, StageDiffError> {
    let dirs = stage_dirs(repo)?;
    if let Some(&missing) = stages.iter().find(|&&s| !dirs.iter().any(|(n, _)| *n == s)) {
        return Err(StageDiffError::NoStage(missing));
    }
    let mut readmes = Vec::new();
    for (number, name) in dirs {
        if !stages.is_empty() && !stages.contains(&number) {
            continue;
        }
        let path = repo.join("stages").join(&name).join("README.md");
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        let expected = replace_block(&text, &stage_diff(repo, number)?.readme_block(), &path)?;
        readmes.push((path, text, expected));
    }
    Ok(readmes)
}

/// The stage READMEs (of `stages`, or every stage when empty) whose generated diff is not what
/// the sources give now.
pub fn check_readmes(repo: &Path, stages: &[u32]) -> Result<Vec<PathBuf>, StageDiffError> {
    Ok(expected_readmes(repo, stages)?
        .into_iter()
        .filter(|(_, text, expected)| text != expected)
        .map(|r| r.0)
        .collect())
}

/// Regenerates the diff in the stage READMEs (of `stages`, or every stage when empty); returns
/// the ones that changed.
pub fn write_readmes(repo: &Path, stages: &[u32]) -> Result<Vec<PathBuf>, StageDiffError> {
    let mut written = Vec::new();
    for (path, text, expected) in expected_readmes(repo, stages)? {
        if text != expected {
            std::fs::write(&path, expected).map_err(io_error(&path))?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(number: u32, files: &[&str], lib_rs: &str, main_rs: &str) -> StageSources {
        StageSources {
            number,
            dir: format!("stages/{number:02}-x"),
            files: files.iter().map(|f| f.to_string()).collect(),
            lib_rs: lib_rs.into(),
            main_rs: main_rs.into(),
            reexports: stage_reexports(lib_rs).into_iter().map(|s| ("lib.rs".to_string(), s)).collect(),
        }
    }

    fn two_and_three() -> (StageSources, StageSources) {
        let previous = stage(
            2,
            &["bus.rs", "layout.rs", "lib.rs", "main.rs"],
            "//! Two.\npub mod bus;\npub mod layout;\n",
            "fn main() {\n    let vm = Vm::new();\n    run(vm);\n}\n",
        );
        let current = stage(
            3,
            &["layout.rs", "lib.rs", "main.rs", "vcpu/mod.rs"],
            "//! Three.\npub mod layout;\npub mod vcpu;\npub use stage02::bus::{\n    Bus,\n    BusDevice,\n};\n",
            "fn main() {\n    let vm = Vm::new();\n    let vcpu = Vcpu::new(&vm);\n    run(vm);\n}\n",
        );
        (previous, current)
    }

    const SUMMARY_2_TO_3: &str = "\
stage 3 (stages/03-x) over stage 2 (stages/02-x)

Files under src/:
+ new: vcpu/mod.rs
  same name in stage 2: layout.rs, lib.rs, main.rs
  only in stage 2, used from the stage02 crate: bus.rs

lib.rs, pub mod and pub use lines (+ new in stage 3):
 pub mod layout;
+pub mod vcpu;
+pub use stage02::bus::{Bus, BusDevice};
  only in stage 2's lib.rs: pub mod bus

Re-exports of earlier stages in stage 3:
  lib.rs: pub use stage02::bus::{Bus, BusDevice};
";

    const MAIN_2_TO_3: &str = "\
--- stages/02-x/src/main.rs
+++ stages/03-x/src/main.rs
@@ -1,4 +1,5 @@
 fn main() {
     let vm = Vm::new();
+    let vcpu = Vcpu::new(&vm);
     run(vm);
 }
";

    #[test]
    fn test_render_lists_files_lib_items_and_a_unified_diff_of_main() {
        let (previous, current) = two_and_three();
        let diff = render(Some(&previous), &current);
        assert_eq!(diff.summary, SUMMARY_2_TO_3);
        let main = diff.main_rs.clone().unwrap();
        assert_eq!((main.previous, main.added, main.removed), (2, 1, 0));
        assert_eq!(main.text, MAIN_2_TO_3);
        let title = "main.rs against stage 2's (+1 -0 lines)";
        assert_eq!(diff.text(), format!("{SUMMARY_2_TO_3}\n{title}:\n{MAIN_2_TO_3}"));
        assert_eq!(
            diff.readme_block(),
            format!(
                "```diff\n{SUMMARY_2_TO_3}```\n\n<details open><summary>{title}</summary>\n\n```diff\n{MAIN_2_TO_3}```\n\n</details>\n"
            )
        );
    }

    #[test]
    fn test_a_long_main_diff_is_folded_in_the_readme() {
        let (previous, mut current) = two_and_three();
        current.main_rs = (0..OPEN_DIFF_LINES).map(|i| format!("// line {i}\n")).collect();
        let block = render(Some(&previous), &current).readme_block();
        let title = format!("main.rs against stage 2's (+{OPEN_DIFF_LINES} -4 lines)");
        assert!(block.contains(&format!("\n<details><summary>{title}</summary>\n")), "{block}");
    }

    #[test]
    fn test_render_says_when_main_is_unchanged_and_there_are_no_items() {
        let previous = stage(6, &["main.rs"], "", "fn main() {}\n");
        let current = stage(7, &["main.rs"], "", "fn main() {}\n");
        let diff = render(Some(&previous), &current);
        assert!(diff.summary.contains("lib.rs, pub mod and pub use lines (+ new in stage 7):\n  (none)\n"), "{diff:?}");
        assert!(diff.summary.contains("Re-exports of earlier stages in stage 7:\n  (none)\n"), "{diff:?}");
        assert!(diff.text().ends_with("\nmain.rs: the same as stage 6's\n"), "{diff:?}");
        assert!(diff.readme_block().ends_with("```\n\n`main.rs` is the same as stage 6's.\n"), "{diff:?}");
    }

    #[test]
    fn test_render_of_the_first_stage_says_there_is_no_previous() {
        let first = stage(1, &["lib.rs", "main.rs"], "", "fn main() {}\n");
        let diff = render(None, &first);
        let sentence = "Stage 1 (stages/01-x) is the first stage: there is no previous stage to diff against.\n";
        assert_eq!(diff.text(), sentence);
        assert_eq!(diff.readme_block(), format!("```diff\n{sentence}```\n"));
    }

    #[test]
    fn test_wrapped_lists_break_before_the_width() {
        assert_eq!(wrapped::<&str>("Only: ", "  ", &[]), "");
        assert_eq!(wrapped("Only: ", "  ", &["a.rs", "b.rs"]), "Only: a.rs, b.rs\n");
        let names: Vec<String> = (0..30).map(|i| format!("file{i:02}.rs")).collect();
        let text = wrapped("+ new: ", "+      ", &names);
        assert!(text.lines().count() > 1, "{text}");
        assert!(text.lines().all(|line| line.len() <= WRAP_WIDTH), "{text}");
        assert!(text.lines().skip(1).all(|line| line.starts_with("+      file")), "{text}");
        assert_eq!(text.replace("\n+      ", " "), format!("+ new: {}\n", names.join(", ")));
    }

    #[test]
    fn test_fence_is_longer_than_backticks_inside() {
        assert_eq!(fenced("+a\n"), "```diff\n+a\n```\n");
        assert_eq!(fenced("+ `x` ````y\n"), "`````diff\n+ `x` ````y\n`````\n");
    }

    #[test]
    fn test_replace_block_keeps_everything_outside_the_markers() {
        let readme = "# S\n\n<!-- diff:begin -->\nold\nlines\n<!-- diff:end -->\ntail\n";
        let replaced = replace_block(readme, "new\n", Path::new("R.md")).unwrap();
        assert_eq!(replaced, "# S\n\n<!-- diff:begin -->\nnew\n<!-- diff:end -->\ntail\n");
        // Idempotent: replacing again with the same block changes nothing.
        assert_eq!(replace_block(&replaced, "new\n", Path::new("R.md")).unwrap(), replaced);
    }

    #[test]
    fn test_replace_block_without_markers_names_the_file() {
        for readme in ["# S\n", "<!-- diff:end -->\n<!-- diff:begin -->\n", "<!-- diff:begin -->\n"] {
            let err = replace_block(readme, "x\n", Path::new("stages/01-x/README.md")).unwrap_err();
            assert!(matches!(err, StageDiffError::NoMarkers(_)), "{readme:?}");
            assert!(err.to_string().starts_with("stages/01-x/README.md: no '<!-- diff:begin -->'"), "{err}");
        }
    }
}
