//! A real interactive session in a pseudo-terminal: answer some of stage 1's questions (right,
//! wrong then right, wrong twice, right after a hint), press Ctrl-C, start again, and find the
//! progress resumed at the next question, its choices in the same order as before. The test
//! reads each menu as a person does: the session shows the choices in an order of its own.

mod common;
use common::*;
use expectrl::{Regex, Session};
use std::time::Duration;

/// Show-cursor and hide-cursor escape sequences (dialoguer hides the cursor in menus).
const SHOW_CURSOR: &str = "\x1b[?25h";
const HIDE_CURSOR: &str = "\x1b[?25l";

fn spawn(state: &std::path::Path) -> Session {
    let mut command = qa();
    command
        .args(["--stage", "1", "--lang", "en", "--no-color"])
        .env("QA_STATE_DIR", state)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    let mut session = Session::spawn(command).expect("spawn qa in a pty");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
}

/// Sends keys one at a time, as a person types, once the prompt is up.
fn keys(session: &mut Session, keys: &str) {
    std::thread::sleep(Duration::from_millis(150));
    for c in keys.chars() {
        session.send(c.to_string()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything the session printed until `needle` (inclusive).
fn expect(session: &mut Session, needle: &str) -> String {
    match session.expect(needle) {
        Ok(found) => format!("{}{}", text(found.before()), text(found.as_bytes())),
        Err(e) => panic!("waiting for {needle:?}: {e}"),
    }
}

/// The choices' texts in English, in bank order (none for a typed answer).
fn choice_texts(question: &toml::Value) -> Vec<String> {
    let choices = question.get("choices").and_then(|c| c.as_array());
    choices.map_or(Vec::new(), |c| c.iter().map(|c| c["en"].as_str().unwrap().to_string()).collect())
}

/// Reads the menu the session draws after "Your answer": for each choice in bank order, its
/// position on the screen (the session shuffles them and labels them a, b, c… as shown).
fn menu(session: &mut Session, question: &toml::Value) -> Vec<usize> {
    let texts = choice_texts(question);
    let alternatives: Vec<String> = texts.iter().map(|t| regex::escape(t)).collect();
    let item = format!("[a-z]\\) (?:{})", alternatives.join("|"));
    let whole = format!("(?s){item}(?:.*?{item}){{{}}}", texts.len() - 1);
    let found = session.expect(Regex(whole.as_str())).unwrap_or_else(|e| panic!("the menu of {question}: {e}"));
    let drawn = text(found.get(0).unwrap());
    let labelled = regex::Regex::new(&format!("([a-z])\\) ({})", alternatives.join("|"))).unwrap();
    let mut positions = vec![usize::MAX; texts.len()];
    for caps in labelled.captures_iter(&drawn) {
        let index = texts.iter().position(|t| t == &caps[2]).unwrap();
        positions[index] = usize::from(caps[1].as_bytes()[0] - b'a');
    }
    assert!(!positions.contains(&usize::MAX), "every choice is in the menu:\n{drawn}");
    positions
}

/// The keys that give `answer` (bank keys, as in an answers file) at the prompt of
/// `question`, whose menu shows choice i at `positions[i]`: a typed line, or menu moves.
fn answer_keys(question: &toml::Value, answer: &str, positions: &[usize]) -> String {
    let Some(choices) = question.get("choices").and_then(|c| c.as_array()) else {
        return format!("{answer}\r");
    };
    let wanted: Vec<usize> = answer
        .split(',')
        .map(|key| positions[choices.iter().position(|c| c["key"].as_str() == Some(key)).unwrap()])
        .collect();
    if question.get("answer").is_some_and(|a| a.is_array()) {
        // MultiSelect: walk down the list, toggling with Space.
        let mut keys = String::new();
        for shown in 0..choices.len() {
            if wanted.contains(&shown) {
                keys.push(' ');
            }
            if shown + 1 < choices.len() {
                keys.push('j');
            }
        }
        keys + "\r"
    } else {
        "j".repeat(wanted[0]) + "\r"
    }
}

/// Waits for the question's prompt, reads its menu if it has one, and answers; returns where
/// the menu showed each choice.
fn give(session: &mut Session, question: &toml::Value, answer: &str) -> Vec<usize> {
    expect(session, "Your answer");
    let positions = if question.get("choices").is_some() { menu(session, question) } else { Vec::new() };
    keys(session, &answer_keys(question, answer, &positions));
    positions
}

#[test]
fn a_pty_session_is_marked_interrupted_and_resumed() {
    let state = tempfile::tempdir().unwrap();
    let questions = questions(&bank(1));
    let total = questions.len();
    // What this test walks through: choices first, a typed answer to get wrong, a menu to get
    // wrong twice, a typed answer with a hint, and a menu to come back to.
    let has_menu = |i: usize| questions[i].get("choices").is_some();
    assert!(has_menu(0) && !has_menu(1) && has_menu(2) && !has_menu(3) && has_menu(4), "stage 1's first questions");

    let mut session = spawn(state.path());
    let welcome = expect(&mut session, "Phase 1");
    assert!(welcome.contains(&format!(" 0/{total}")), "the stage list shows no progress yet:\n{welcome}");

    // Question 1: right at once.
    expect(&mut session, &format!("[Stage 1.1/{total}]"));
    give(&mut session, &questions[0], &right_answer(&questions[0]));
    expect(&mut session, "✓ Right.");
    expect(&mut session, "→ Read:");

    // Question 2: wrong, then right on the retry.
    expect(&mut session, &format!("[Stage 1.2/{total}]"));
    give(&mut session, &questions[1], &wrong_answer(&questions[1]));
    expect(&mut session, "✗ Not right. One more try.");
    give(&mut session, &questions[1], &right_answer(&questions[1]));
    expect(&mut session, "✓ Right.");

    // Question 3: wrong twice; the answer and the explanation are shown, in the same order as
    // the menu (the retry shows the same order).
    expect(&mut session, &format!("[Stage 1.3/{total}]"));
    let first = give(&mut session, &questions[2], &wrong_answer(&questions[2]));
    expect(&mut session, "One more try.");
    let second = give(&mut session, &questions[2], &wrong_answer(&questions[2]));
    assert_eq!(first, second, "a retry shows the choices in the same order");
    let right = &right_answer(&questions[2]);
    let right_index = questions[2]["choices"].as_array().unwrap().iter().position(|c| c["key"].as_str() == Some(right));
    let label = char::from(b'a' + first[right_index.unwrap()] as u8);
    let verdict = expect(&mut session, "Why:");
    assert!(
        verdict.contains(&format!("✗ Wrong. The answer: {label}) ")),
        "the answer as the menu labelled it:\n{verdict}"
    );

    // Question 4: ask for the hint first, then answer right.
    expect(&mut session, &format!("[Stage 1.4/{total}]"));
    expect(&mut session, "Your answer");
    keys(&mut session, "?\r");
    expect(&mut session, "Hint:");
    give(&mut session, &questions[3], &right_answer(&questions[3]));
    expect(&mut session, "✓ Right.");

    // Question 5: note the order of its menu, then Ctrl-C at the prompt.
    expect(&mut session, &format!("[Stage 1.5/{total}]"));
    expect(&mut session, "Your answer");
    let before = menu(&mut session, &questions[4]);
    keys(&mut session, "\x03");
    let tail = expect(&mut session, "Interrupted; progress saved.");
    let status = session.get_process().wait().unwrap();
    assert!(format!("{status:?}").contains("130"), "exit code 130 after Ctrl-C: {status:?}");
    // The cursor is visible again: a show-cursor sequence follows the last hide.
    let last_hide = tail.rfind(HIDE_CURSOR);
    let last_show = tail.rfind(SHOW_CURSOR);
    assert!(last_show.is_some() && last_show > last_hide, "cursor left hidden:\n{tail:?}");

    // The progress file has what was answered.
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("progress.json")).unwrap()).unwrap();
    let record = |q: &toml::Value| progress["questions"][format!("1.{}", q["id"].as_str().unwrap())].clone();
    assert_eq!(record(&questions[0])["attempts"], 1);
    assert_eq!(
        (record(&questions[1])["correct"].as_bool(), record(&questions[1])["attempts"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(record(&questions[2])["correct"], false);
    assert_eq!(record(&questions[3])["hint_used"], true);
    assert!(record(&questions[4]).is_null(), "the interrupted question is not recorded");
    assert!(progress["seed"].is_u64(), "the student's choice order is kept: {progress}");

    // Start again: 4 answered, 3 right, and the session resumes at question 5, whose choices
    // come in the same order as before.
    let mut session = spawn(state.path());
    let welcome = expect(&mut session, "Phase 1");
    assert!(welcome.contains(&format!(" 4/{total}")) && welcome.contains("✓3"), "progress resumed:\n{welcome}");
    let next = expect(&mut session, "Your answer");
    assert!(next.contains(&format!("[Stage 1.5/{total}]")), "resumes at question 5:\n{next}");
    assert!(!next.contains(&format!("[Stage 1.1/{total}]")), "answered questions are not asked again");
    assert_eq!(menu(&mut session, &questions[4]), before, "a resumed question keeps its order");
    // Quit cleanly this time: `q` in a menu.
    keys(&mut session, "q");
    expect(&mut session, "Progress saved");
    let status = session.get_process().wait().unwrap();
    assert!(format!("{status:?}").contains(", 0)"), "clean exit after quitting: {status:?}");
}

#[test]
fn the_end_of_a_phase_offers_a_live_run_and_copes_with_a_missing_binary() {
    // A copy of the tree in which stage 7 has no binary yet.
    let tree = tempfile::tempdir().unwrap();
    copy_repo(tree.path());
    let _ = std::fs::remove_file(tree.path().join("stages/07-edu/src/main.rs"));
    let repo = tree.path().to_str().unwrap();
    let state = tempfile::tempdir().unwrap();

    // Everything but the last question answered already, by the non-interactive mode.
    let questions = questions(&bank(7));
    let (last, rest) = questions.split_last().unwrap();
    let answers: String =
        rest.iter().map(|q| format!("7.{} = {}\n", q["id"].as_str().unwrap(), right_answer(q))).collect();
    assert!(run(state.path(), &["--repo", repo], &answers).status.success());

    let mut command = qa();
    command
        .args(["--stage", "7", "--lang", "en", "--no-color", "--repo", repo])
        .env("QA_STATE_DIR", state.path())
        .env("TERM", "xterm");
    let mut session = Session::spawn(command).unwrap();
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    expect(&mut session, &format!("[Stage 7.{}/{}]", questions.len(), questions.len()));
    give(&mut session, last, &right_answer(last));
    expect(&mut session, "✓ Right.");
    expect(&mut session, "Run this stage live now");
    keys(&mut session, "y\r");
    expect(&mut session, "stage07");
    expect(&mut session, "does not exist yet");
    // The phase's end: the last phase of all, or (with later stages' banks) "Phase done".
    session
        .expect(Regex("That was the last phase|Phase done"))
        .unwrap_or_else(|e| panic!("waiting for the end of the phase: {e}"));
    let status = session.get_process().wait().unwrap();
    assert!(format!("{status:?}").contains(", 0)"), "{status:?}");
}

#[test]
fn an_ordering_is_answered_by_typing_the_labels_it_shows() {
    // Everything in stage 1 but its ordering answered already, by the non-interactive mode.
    let state = tempfile::tempdir().unwrap();
    let questions = questions(&bank(1));
    let (index, order) = questions.iter().enumerate().find(|(_, q)| q["kind"].as_str() == Some("order")).unwrap();
    let answers: String = questions
        .iter()
        .filter(|q| q["id"] != order["id"])
        .map(|q| format!("1.{} = {}\n", q["id"].as_str().unwrap(), right_answer(q)))
        .collect();
    assert!(run(state.path(), &[], &answers).status.success());

    let mut session = spawn(state.path());
    expect(&mut session, &format!("[Stage 1.{}/{}]", index + 1, questions.len()));
    // The items come before the prompt, shuffled and labelled a, b, c… as shown.
    let shown = expect(&mut session, "Your answer");
    let texts = choice_texts(order);
    let alternatives: Vec<String> = texts.iter().map(|t| regex::escape(t)).collect();
    let labelled = regex::Regex::new(&format!("([a-z])\\) ({})", alternatives.join("|"))).unwrap();
    let label_of = |text: &str| labelled.captures_iter(&shown).find(|c| &c[2] == text).map(|c| c[1].to_string());
    let items = order["choices"].as_array().unwrap();
    let typed: Vec<String> = right_answer(order)
        .split(',')
        .map(|key| {
            let choice = items.iter().find(|c| c["key"].as_str() == Some(key)).unwrap();
            label_of(choice["en"].as_str().unwrap()).unwrap_or_else(|| panic!("every item is listed:\n{shown}"))
        })
        .collect();
    keys(&mut session, &format!("{}\r", typed.join(" ")));
    expect(&mut session, "✓ Right.");
}
