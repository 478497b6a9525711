//! Mutants on a small stage-1 tree: one the checkpoints catch, one they do not (it survives,
//! and both `grade mutants` and `grade author-check` name it), and mutant files that break the
//! format or name no exercise (a clear error naming the file).

mod common;

use std::path::Path;
use std::process::{Command, Output};

const EXERCISE: &str = "stage1-exit-handling";

/// Stage 1's solution, with `replace` applied: the lines between its markers, as a mutant file.
fn mutant_file(sentence: &str, replace: (&str, &str)) -> String {
    let lib = std::fs::read_to_string(checkpoints::repo_root().join("stages/01-hello/src/lib.rs")).unwrap();
    let lines: Vec<&str> = lib.split_inclusive('\n').collect();
    let begin = lines.iter().position(|l| l.contains(&format!("lab:begin solution {EXERCISE} "))).unwrap();
    let end = begin + lines[begin..].iter().position(|l| l.trim() == "// lab:end").unwrap();
    let body = lines[begin + 1..end].concat();
    assert!(body.contains(replace.0), "stage 1's solution has no `{}`", replace.0);
    format!("// mutant: {sentence}\n{}", body.replacen(replace.0, replace.1, 1))
}

fn write_mutant(tree: &Path, folder: &str, name: &str, text: &str) {
    let dir = tree.join(grade::tree::MUTANTS_DIR).join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

fn grade(args: &[&str], tree: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grade")).args(args).arg("--repo").arg(tree).env("NO_COLOR", "1").output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_caught_mutant_is_named_with_its_check_and_a_survivor_fails_the_run() {
    checkpoints::require_kvm();
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("submission");
    common::stage1_tree(&tree);
    write_mutant(
        &tree,
        EXERCISE,
        "lower-case.rs",
        &mutant_file("Lower-cases instead of upper-casing.", ("to_ascii_uppercase()", "to_ascii_lowercase()")),
    );
    // The same bytes through another call: no check can tell, so it survives.
    write_mutant(
        &tree,
        EXERCISE,
        "survivor.rs",
        &mutant_file(
            "Upper-cases a copy byte by byte (the same output: it survives).",
            ("&data.to_ascii_uppercase()", "&data.iter().map(u8::to_ascii_uppercase).collect::<Vec<u8>>()"),
        ),
    );
    let work = tmp.path().join("work");
    common::seed_target(&work.join("target"));

    let listed = grade(&["mutants", "--list"], &tree);
    assert!(listed.status.success(), "{}", text(&listed));
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "| exercise | mutant | mistake |\n|---|---|---|\n\
         | stage1-exit-handling | lower-case | Lower-cases instead of upper-casing. |\n\
         | stage1-exit-handling | survivor | Upper-cases a copy byte by byte (the same output: it survives). |\n"
    );

    let work_dir = work.to_str().unwrap();
    let out = grade(&["mutants", "--stage", "1", "--work-dir", work_dir], &tree);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a survivor fails the run:\n{}", text(&out));
    let rows: Vec<Vec<&str>> =
        stdout.lines().filter(|l| l.starts_with("| stage1")).map(|l| l.split(" | ").collect()).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!(rows[0][1], "lower-case");
    assert!(rows[0][3].starts_with("hello / "), "caught by the first checkpoint's check: {stdout}");
    assert_eq!((rows[1][1], rows[1][3]), ("survivor", "SURVIVED"), "{stdout}");
    assert!(stdout.contains("1 of 2 mutants caught"), "{stdout}");
    // The tree that was graded is left as the last mutant wrote it; the source is untouched.
    let written = std::fs::read_to_string(work.join("tree/stages/01-hello/src/lib.rs")).unwrap();
    assert!(written.contains("map(u8::to_ascii_uppercase)"));
    assert!(!std::fs::read_to_string(tree.join("stages/01-hello/src/lib.rs")).unwrap().contains("map(u8::"));

    // The author check's step 4 says the same, and names the survivor's file.
    let out = grade(&["author-check", "--skip-full-tree", "--work-dir", work_dir], &tree);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(
            "mutant stage1-exit-handling/lower-case (\"Lower-cases instead of upper-casing.\"): caught by 'hello / "
        ),
        "{all}"
    );
    let problems: Vec<&str> = all.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(problems.len(), 1, "{all}");
    assert!(
        problems[0].contains("mutant stage1-exit-handling/survivor")
            && problems[0].contains("SURVIVES")
            && problems[0].contains("grade/mutants/stage1-exit-handling/survivor.rs"),
        "{all}"
    );
    // --no-mutants skips step 4.
    let out = grade(&["author-check", "--skip-full-tree", "--no-mutants", "--work-dir", work_dir], &tree);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_malformed_mutant_or_an_unknown_exercise_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("submission");
    common::stage1_tree(&tree);

    write_mutant(&tree, EXERCISE, "no-line.rs", "pub fn handle_exit() {}\n");
    let out = grade(&["mutants", "--list"], &tree);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("grade: grade/mutants/stage1-exit-handling/no-line.rs: no `// mutant:` line first"),
        "{stderr}"
    );
    // The author check reads the mutants before it builds anything.
    let out =
        grade(&["author-check", "--skip-full-tree", "--work-dir", tmp.path().join("work").to_str().unwrap()], &tree);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-line.rs: no `// mutant:` line first"), "{}", text(&out));
    assert!(!tmp.path().join("work/tree").exists(), "nothing written before the mutants are read");

    std::fs::remove_file(tree.join(grade::tree::MUTANTS_DIR).join(EXERCISE).join("no-line.rs")).unwrap();
    write_mutant(&tree, "stage1-typo", "x.rs", "// mutant: Something.\nfn x() {}\n");
    let out = grade(&["mutants", "--list"], &tree);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("grade: grade/mutants/stage1-typo/x.rs: there is no exercise 'stage1-typo' (there are: stage1-exit-handling)"),
        "{stderr}"
    );
}
