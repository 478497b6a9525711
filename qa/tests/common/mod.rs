//! Helpers shared by the integration tests: the binary, the repository, scratch copies of it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `qa` binary under test.
pub fn qa() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qa"));
    command.env_remove("NO_COLOR").env("LANG", "C.UTF-8");
    command
}

/// The real repository (the parent of this crate).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs `qa` with `args`, the state in `state`, and `stdin` as its (non-terminal) input.
pub fn run(state: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = qa()
        .args(args)
        .env("QA_STATE_DIR", state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Text of an output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Copies what `qa lint` reads — the banks and the stage sources — into `dest`.
pub fn copy_repo(dest: &Path) {
    copy_dir(&repo().join("qa/banks"), &dest.join("qa/banks"));
    copy_dir(&repo().join("stages"), &dest.join("stages"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_dir() {
            if name != "target" {
                copy_dir(&path, &to.join(name));
            }
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

/// One stage's bank, as TOML.
pub fn bank(stage: u32) -> toml::Value {
    let path = repo().join(format!("qa/banks/stage{stage:02}.toml"));
    toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The questions of a bank.
pub fn questions(bank: &toml::Value) -> Vec<toml::Value> {
    bank["question"].as_array().unwrap().clone()
}

/// A right answer to `question`, as the answers file writes it.
pub fn right_answer(question: &toml::Value) -> String {
    match question.get("answer") {
        Some(toml::Value::String(key)) => key.clone(),
        Some(toml::Value::Array(keys)) => keys.iter().map(|k| k.as_str().unwrap()).collect::<Vec<_>>().join(","),
        _ => question["accept"][0].as_str().unwrap().to_string(),
    }
}

/// A wrong answer to `question`.
pub fn wrong_answer(question: &toml::Value) -> String {
    match question.get("answer") {
        // An ordering: the right order backwards.
        Some(toml::Value::Array(keys)) if question["kind"].as_str() == Some("order") => {
            keys.iter().rev().map(|k| k.as_str().unwrap()).collect::<Vec<_>>().join(",")
        }
        Some(_) => {
            let right = right_answer(question);
            let choices = question["choices"].as_array().unwrap();
            let key = choices.iter().map(|c| c["key"].as_str().unwrap()).find(|k| !right.split(',').any(|r| r == *k));
            key.unwrap().to_string()
        }
        None => "certainly wrong".into(),
    }
}
