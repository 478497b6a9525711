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

/// Runs `qa lint` on a copy of the repository in which `edit` changed stage `stage`'s bank.
fn lint_edited_bank(stage: u32, edit: impl Fn(&str) -> String) -> String {
    let tree = tempfile::tempdir().unwrap();
    copy_repo(tree.path());
    let bank = tree.path().join(format!("qa/banks/stage{stage:02}.toml"));
    let source = std::fs::read_to_string(&bank).unwrap();
    let edited = edit(&source);
    assert_ne!(edited, source, "the edit changes the bank");
    std::fs::write(&bank, edited).unwrap();
    let out = qa().args(["lint", "--repo", tree.path().to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success(), "lint must fail");
    text(&out.stdout)
}

#[test]
fn an_answer_in_its_own_hint_is_reported() {
    // guest-phys-addr accepts 0x1000; a hint saying 4096 gives it away.
    let out =
        lint_edited_bank(1, |s| s.replacen("the constant CODE_ADDRESS.\"", "the constant CODE_ADDRESS, 4096.\"", 1));
    assert!(out.contains("question 'guest-phys-addr': its hint_en gives the answer away ('0x1000')"), "{out}");
}

#[test]
fn an_excerpt_reaching_into_a_solution_region_is_reported() {
    // Stage 2's translate() is an exercise; quote it through a marker around its region.
    let tree = tempfile::tempdir().unwrap();
    copy_repo(tree.path());
    let memory = tree.path().join("stages/02-memory/src/memory.rs");
    let source = std::fs::read_to_string(&memory).unwrap();
    let begin = source.lines().find(|l| l.contains("lab:begin solution stage2-translate")).unwrap().to_string();
    let edited = source.replacen(&begin, &format!("    // qa:begin stage2-translate\n{begin}"), 1);
    let edited = edited.replacen("    // lab:end\n", "    // lab:end\n    // qa:end stage2-translate\n", 1);
    std::fs::write(&memory, edited).unwrap();
    let bank = tree.path().join("qa/banks/stage02.toml");
    let text_before = std::fs::read_to_string(&bank).unwrap();
    std::fs::write(&bank, text_before.replacen("marker = \"stage2-host-range\"", "marker = \"stage2-translate\"", 1))
        .unwrap();
    let out = qa().args(["lint", "--repo", tree.path().to_str().unwrap()]).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("question 'translate-across': excerpt stage2-translate"), "{stdout}");
    assert!(stdout.contains("reaches into the solution region"), "{stdout}");
}

#[test]
fn right_answers_that_are_too_often_the_longest_choice_are_reported() {
    // Make stage 3's right answers the longest choice everywhere.
    let out = lint_edited_bank(3, |s| {
        let bank: toml::Value = toml::from_str(s).unwrap();
        let mut edited = s.to_string();
        for q in questions(&bank) {
            let (Some(right), Some(choices)) = (q.get("answer").and_then(|a| a.as_str()), q.get("choices")) else {
                continue;
            };
            let choice = choices.as_array().unwrap().iter().find(|c| c["key"].as_str() == Some(right)).unwrap();
            let en = choice["en"].as_str().unwrap();
            let old = format!("en = {}", toml::Value::from(en));
            let new = format!("en = {}", toml::Value::from(format!("{en}, as the code and the manuals say at length")));
            edited = edited.replacen(&old, &new, 1);
        }
        edited
    });
    assert!(
        out.contains("qa/banks/stage03.toml: the right answer is the strictly longest choice (en) in 7 of 7"),
        "{out}"
    );
}

#[test]
fn an_ordering_must_list_every_item_once() {
    let out = lint_edited_bank(1, |s| {
        s.replacen("answer = [\"a\", \"b\", \"c\", \"d\", \"e\"]", "answer = [\"a\", \"b\", \"c\", \"d\", \"d\"]", 1)
    });
    assert!(out.contains("question 'out-life': an ordering's answer lists every item key once"), "{out}");
}

#[test]
fn every_stage_has_concept_questions() {
    for stage in 1..=7 {
        let concept = questions(&bank(stage)).iter().filter(|q| q.get("concept").is_some()).count();
        assert!(concept >= 2, "stage {stage} has {concept} concept questions");
    }
}
