//! The non-interactive mode: answers on stdin or from a file, marked as in the session, a
//! summary, progress recorded, and `qa report --json`.

mod common;
use common::*;

#[test]
fn answers_on_stdin_are_marked_recorded_and_reported() {
    let state = tempfile::tempdir().unwrap();
    let questions = questions(&bank(1));
    let (q0, q1, q2) = (&questions[0], &questions[1], &questions[2]);
    let id = |q: &toml::Value| format!("1.{}", q["id"].as_str().unwrap());
    let answers = format!(
        "# a grader's file\n{} = {}\n{} = {}\n{} = {}\n{} = {}\n",
        id(q0),
        right_answer(q0),
        id(q1),
        wrong_answer(q1),
        id(q1),
        right_answer(q1),
        id(q2),
        wrong_answer(q2),
    );
    let out = run(state.path(), &["--lang", "en", "--no-color"], &answers);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with(&id(q0)) && lines[0].contains("✓ right"), "{stdout}");
    assert!(lines[1].contains("✗ wrong, one more try"), "{stdout}");
    assert!(lines[2].contains("✓ right"), "{stdout}");
    assert!(lines[3].contains("✗ wrong; answer:"), "a wrong answer with no retry is final:\n{stdout}");
    assert!(stdout.contains("stage 1 hello"), "{stdout}");

    let out = run(state.path(), &["report", "--json"], "");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stage1 = &report["stages"][0];
    assert_eq!(stage1["stage"], 1);
    assert_eq!(stage1["answered"], 3);
    assert_eq!(stage1["correct"], 2);
    assert_eq!(stage1["first_try"], 1);
    assert_eq!(report["stages"].as_array().unwrap().len(), 8);
    assert_eq!(report["total"]["correct"], 2);

    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("progress.json")).unwrap()).unwrap();
    let record = &progress["questions"][id(q1)];
    assert_eq!(
        (record["answered"].as_bool(), record["correct"].as_bool(), record["attempts"].as_u64()),
        (Some(true), Some(true), Some(2))
    );
}

#[test]
fn answers_from_a_file_in_chinese_with_numbers_in_any_base() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("answers.txt");
    // 1.guest-phys-addr accepts 0x1000; 4096 is the same number.
    std::fs::write(&file, "1.guest-phys-addr = 4096\n").unwrap();
    let out =
        run(state.path(), &["--answers", file.to_str().unwrap(), "--lang", "zh", "--no-color", "--stage", "1"], "");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("1.guest-phys-addr") && stdout.contains("✓ 正确"), "{stdout}");
    let total = questions(&bank(1)).len();
    assert!(stdout.contains(&format!("合计: 1/{total}")), "{stdout}");
}

#[test]
fn an_ordering_is_answered_with_the_banks_keys_in_order() {
    let state = tempfile::tempdir().unwrap();
    let questions = questions(&bank(1));
    let order = questions.iter().find(|q| q["kind"].as_str() == Some("order")).expect("stage 1 has an ordering");
    let id = format!("1.{}", order["id"].as_str().unwrap());
    let answers = format!("{id} = {}\n{id} = {}\n", wrong_answer(order), right_answer(order).replace(',', " → "));
    let out = run(state.path(), &["--lang", "en", "--no-color"], &answers);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with(&id) && lines[0].contains("✗ wrong, one more try"), "{stdout}");
    assert!(lines[1].starts_with(&id) && lines[1].contains("✓ right"), "{stdout}");
}

#[test]
fn an_unknown_question_names_the_line() {
    let state = tempfile::tempdir().unwrap();
    let out = run(state.path(), &[], "1.guest-phys-addr = 0x1000\n\n1.no-such-question = a\n");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("<stdin>:3:") && stderr.contains("no-such-question"), "{stderr}");
}

#[test]
fn a_corrupt_progress_file_is_set_aside_not_a_crash() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("progress.json"), "{\"questions\": {\"1.x\": tru").unwrap();
    let out = run(state.path(), &["--list", "--no-color"], "");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("corrupt") && stderr.contains("progress.json.corrupt-"), "{stderr}");
    assert!(text(&out.stdout).contains(&format!(" 0/{}", questions(&bank(1)).len())), "starts afresh");
    let aside = std::fs::read_dir(state.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("progress.json.corrupt-"));
    assert!(aside, "the bad file is kept for inspection");
}

#[test]
fn reset_forgets_one_stage_only() {
    let state = tempfile::tempdir().unwrap();
    let q1 = &questions(&bank(1))[0];
    let q2 = &questions(&bank(2))[0];
    let answers = format!(
        "1.{} = {}\n2.{} = {}\n",
        q1["id"].as_str().unwrap(),
        right_answer(q1),
        q2["id"].as_str().unwrap(),
        right_answer(q2)
    );
    assert!(run(state.path(), &[], &answers).status.success());
    assert!(run(state.path(), &["--reset", "--stage", "1"], "").status.success());
    let out = run(state.path(), &["report", "--json"], "");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["stages"][0]["answered"].as_u64(), report["stages"][1]["answered"].as_u64()),
        (Some(0), Some(1))
    );
}
