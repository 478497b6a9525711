//! The two TOML formats that files control: question banks (`qa/banks/*.toml`, read by
//! `qa::bank::parse`) and checkpoint files (`tests/checkpoints/*.toml`, read by
//! `checkpoints::spec::parse`).
//!
//! Invariants: no panic on any text; a bank error names a line of the file; every question of a
//! loaded bank has the line of its `id` in the file, and its answer is of the shape its kind asks
//! for; every check of a loaded checkpoint file has a pattern that compiles.

use std::path::Path;

use qa::bank::{parse, AnswerSpec, BankError, Kind};

/// Parses `data` (as UTF-8, lossily) as a question bank.
pub fn qa_bank(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.matches('\n').count() + 1;
    match parse(Path::new("fuzz.toml"), &text) {
        Ok(bank) => {
            for question in &bank.questions {
                assert!((1..=lines).contains(&question.line), "question {} at line {}", question.id, question.line);
                let has_choices = matches!(question.answer, AnswerSpec::Choices { .. });
                match question.kind {
                    Kind::Single | Kind::Multiple => {
                        assert!(has_choices, "a {:?} question without choices", question.kind)
                    }
                    Kind::Short => assert!(!has_choices, "a short-answer question with choices"),
                    Kind::Order => {
                        assert!(
                            matches!(question.answer, AnswerSpec::Order { .. }),
                            "an ordering question without items"
                        )
                    }
                    Kind::Code => {}
                }
            }
        }
        Err(BankError::Parse { line, .. }) => {
            assert!((1..=lines).contains(&line), "an error at line {line} of {lines}")
        }
        Err(error) => panic!("parsing text failed with {error}"),
    }
}

/// Parses `data` (as UTF-8, lossily) as a checkpoint file.
pub fn checkpoint_spec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(checkpoints) = checkpoints::spec::parse(&text, "fuzz.toml") {
        // `{when:N}` stands for text a run captures; the parser checked the pattern with it filled.
        let stand_ins = vec!["x".to_string(); 9];
        for check in checkpoints.iter().flat_map(|c| &c.checks) {
            let pattern = checkpoints::during::fill_check_pattern(&check.pattern, &stand_ins);
            assert!(regex::Regex::new(&pattern).is_ok(), "check {} has a bad pattern", check.name);
        }
    }
}
