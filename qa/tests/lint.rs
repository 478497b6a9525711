//! `qa lint` over the real banks (CI runs this through `cargo test --workspace`), and proof that
//! it fails when code a question quotes loses its marker.

mod common;
use common::*;

#[test]
fn every_bank_lints_clean() {
    let output = qa().args(["lint"]).output().unwrap();
    assert!(output.status.success(), "qa lint found problems:\n{}{}", text(&output.stdout), text(&output.stderr));
}

#[test]
fn every_stage_has_a_bilingual_bank_of_at_least_eight_questions_of_every_kind() {
    for stage in 1..=7 {
        let bank = bank(stage);
        assert_eq!(bank["stage"].as_integer(), Some(i64::from(stage)));
        let questions = questions(&bank);
        assert!(questions.len() >= 8, "stage {stage} has {} questions", questions.len());
        for q in &questions {
            for field in ["prompt_en", "prompt_zh", "hint_en", "hint_zh", "explain_en", "explain_zh"] {
                assert!(q.get(field).and_then(|v| v.as_str()).is_some_and(|s| !s.is_empty()), "stage {stage} {q}");
            }
        }
        let kinds: Vec<&str> = questions.iter().map(|q| q["kind"].as_str().unwrap()).collect();
        for kind in ["single", "short", "code"] {
            assert!(kinds.contains(&kind), "stage {stage} has no {kind} question");
        }
        let several = questions.iter().filter(|q| q.get("answer").is_some_and(|a| a.is_array())).count();
        assert!(several >= 1, "stage {stage} has no question with several right answers");
        let code = kinds.iter().filter(|k| **k == "code").count();
        assert!(code >= 3, "stage {stage} has only {code} code-reading questions");
    }
}

#[test]
fn lint_fails_naming_the_marker_when_one_is_removed_from_the_code() {
    let tree = tempfile::tempdir().unwrap();
    copy_repo(tree.path());
    let repo = tree.path().to_str().unwrap();
    let clean = qa().args(["lint", "--repo", repo]).output().unwrap();
    assert!(clean.status.success(), "the copy should lint clean:\n{}", text(&clean.stdout));

    // Someone edits stage 1 and drops the line `// qa:begin stage1-exit-loop`.
    let lib = tree.path().join("stages/01-hello/src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let edited: String =
        source.lines().filter(|l| !l.contains("qa:begin stage1-exit-loop")).map(|l| format!("{l}\n")).collect();
    assert_ne!(edited, source, "the marker is in stage 1");
    std::fs::write(&lib, edited).unwrap();

    let broken = qa().args(["lint", "--repo", repo]).output().unwrap();
    let out = text(&broken.stdout);
    assert!(!broken.status.success(), "lint must fail:\n{out}");
    assert!(out.contains("qa/banks/stage01.toml:"), "names the bank and line:\n{out}");
    assert!(
        out.contains("stages/01-hello/src/lib.rs") && out.contains("stage1-exit-loop"),
        "names file and marker:\n{out}"
    );
    // The orphaned end marker is reported too.
    assert!(out.contains("`qa:end stage1-exit-loop` has no `qa:begin stage1-exit-loop`"), "{out}");
}

#[test]
fn lint_reports_a_malformed_bank_with_file_and_line() {
    let tree = tempfile::tempdir().unwrap();
    copy_repo(tree.path());
    let bank = tree.path().join("qa/banks/stage02.toml");
    let text_before = std::fs::read_to_string(&bank).unwrap();
    // Line 4 is `stage = 2`; make it a string.
    let broken: String = text_before.replacen("stage = 2", "stage = \"two\"", 1);
    std::fs::write(&bank, broken).unwrap();
    let line = text_before.lines().position(|l| l == "stage = 2").unwrap() + 1;

    let out = qa().args(["lint", "--repo", tree.path().to_str().unwrap()]).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains(&format!("qa/banks/stage02.toml:{line}:")), "{stdout}");

    // The runner refuses to start on it with the same pointer, and no panic.
    let state = tempfile::tempdir().unwrap();
    let out = qa()
        .args(["--list", "--repo", tree.path().to_str().unwrap()])
        .env("QA_STATE_DIR", state.path())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("qa/banks/stage02.toml:{line}:")), "{stderr}");
}

#[test]
fn a_wrong_choice_answer_key_is_reported() {
    let tree = tempfile::tempdir().unwrap();
    copy_repo(tree.path());
    let bank = tree.path().join("qa/banks/stage01.toml");
    let source = std::fs::read_to_string(&bank).unwrap();
    std::fs::write(&bank, source.replacen("answer = \"a\"", "answer = \"z\"", 1)).unwrap();
    let out = qa().args(["lint", "--repo", tree.path().to_str().unwrap()]).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("answer 'z' is not among its choices"), "{stdout}");
}
