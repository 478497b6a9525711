//! Marking an answer: the same rules for the interactive session and for scripts.
//!
//! Typed answers are compared after normalisation, so that a student is marked on what they
//! know and not on how they typed it: case, surrounding and repeated whitespace, and the
//! full-width characters a Chinese input method produces do not matter. A question that says
//! `numeric = true` accepts a number in any base: `0x3F8`, `0x3f8`, `1016`, `0o1770` and
//! `0b1111111000` are one answer.

use crate::bank::{AnswerSpec, Question};

/// What the student answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Keys of the choices picked.
    Choices(Vec<String>),
    /// Typed text.
    Text(String),
}

/// Full-width ASCII (U+FF01–U+FF5E) and the ideographic space become plain ASCII.
fn half_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xff01 + 0x21).unwrap_or(c),
        _ => c,
    }
}

/// The canonical form of a typed answer: half-width, lower case, single spaces, trimmed, and
/// without quotes or backticks around it.
pub fn normalise(text: &str) -> String {
    let text: String = text.chars().map(half_width).collect::<String>().to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").trim_matches(|c| matches!(c, '`' | '"' | '\'')).trim().to_string()
}

/// Parses an integer written in any base: `0x`/`0o`/`0b` prefixes, decimal otherwise, with
/// `_` separators and an optional `h` suffix for hex as in assembly listings (`3f8h`).
pub fn parse_number(text: &str) -> Option<u128> {
    let text = normalise(text).replace('_', "");
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(octal) = text.strip_prefix("0o") {
        (octal, 8)
    } else if let Some(binary) = text.strip_prefix("0b") {
        (binary, 2)
    } else if let Some(hex) = text.strip_suffix('h').filter(|h| h.starts_with(|c: char| c.is_ascii_digit())) {
        (hex, 16)
    } else {
        (text.as_str(), 10)
    };
    if digits.is_empty() {
        return None;
    }
    u128::from_str_radix(digits, radix).ok()
}

/// Parses keys in the order written: `c a b`, `c,a,b`, `c → a → b`, `CAB`.
pub fn parse_key_sequence(text: &str) -> Vec<String> {
    let text = normalise(text);
    let parts: Vec<&str> = text.split([',', ' ', ';', '，', '、', '>', '→', '-']).filter(|p| !p.is_empty()).collect();
    if parts.len() == 1 && parts[0].chars().all(|c| c.is_ascii_alphabetic()) {
        // "cab": one key per letter (keys are single letters in every bank).
        parts[0].chars().map(String::from).collect()
    } else {
        parts.into_iter().map(String::from).collect()
    }
}

/// Parses the keys of picked choices as a script writes them: `b`, `a,c`, `a c`, `AC`.
pub fn parse_choice_keys(text: &str) -> Vec<String> {
    let mut keys = parse_key_sequence(text);
    keys.sort();
    keys.dedup();
    keys
}

/// Whether `response` is a right answer to `question`.
pub fn is_correct(question: &Question, response: &Response) -> bool {
    match (&question.answer, response) {
        (AnswerSpec::Choices { answer, .. }, Response::Choices(picked)) => {
            let mut want: Vec<String> = answer.iter().map(|k| normalise(k)).collect();
            let mut got: Vec<String> = picked.iter().map(|k| normalise(k)).collect();
            want.sort();
            want.dedup();
            got.sort();
            got.dedup();
            want == got
        }
        (AnswerSpec::Order { answer, .. }, Response::Choices(given)) => {
            answer.iter().map(|k| normalise(k)).eq(given.iter().map(|k| normalise(k)))
        }
        (AnswerSpec::Text { accept, numeric }, Response::Text(text)) => {
            let given = normalise(text);
            if given.is_empty() {
                return false;
            }
            let number = if *numeric { parse_number(&given) } else { None };
            accept.iter().any(|a| normalise(a) == given || (number.is_some() && parse_number(a) == number))
        }
        _ => false,
    }
}

/// The right answer, as it is shown after marking.
pub fn expected(question: &Question, lang: crate::i18n::Lang) -> String {
    match &question.answer {
        AnswerSpec::Choices { choices, answer, .. } => choices
            .iter()
            .filter(|c| answer.contains(&c.key))
            .map(|c| format!("{}) {}", c.key, c.text.get(lang)))
            .collect::<Vec<_>>()
            .join("; "),
        AnswerSpec::Order { choices, answer } => answer
            .iter()
            .filter_map(|key| choices.iter().find(|c| &c.key == key))
            .map(|c| format!("{}) {}", c.key, c.text.get(lang)))
            .collect::<Vec<_>>()
            .join(" → "),
        AnswerSpec::Text { accept, .. } => accept.first().cloned().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::{Bilingual, Choice, Kind};

    fn question(answer: AnswerSpec) -> Question {
        Question {
            id: "q".into(),
            line: 1,
            kind: Kind::Short,
            file: "f".into(),
            marker: None,
            concept: None,
            prompt: Bilingual::default(),
            hint: Bilingual::default(),
            explain: Bilingual::default(),
            answer,
        }
    }

    fn text(accept: &[&str], numeric: bool) -> Question {
        question(AnswerSpec::Text { accept: accept.iter().map(|s| s.to_string()).collect(), numeric })
    }

    #[test]
    fn numbers_are_accepted_in_any_base_when_the_question_says_so() {
        let q = text(&["0x3f8"], true);
        for given in ["0x3F8", "0x3f8", "1016", " 0x03f8 ", "0o1770", "0b11_1111_1000", "3f8h", "０ｘ３Ｆ８"] {
            assert!(is_correct(&q, &Response::Text(given.into())), "{given}");
        }
        for given in ["0x3f9", "3f8", "", "0x", "port 0x3f8"] {
            assert!(!is_correct(&q, &Response::Text(given.into())), "{given}");
        }
        assert!(!is_correct(&text(&["0x3f8"], false), &Response::Text("1016".into())), "numeric only if declared");
    }

    #[test]
    fn text_is_compared_without_case_whitespace_or_quotes() {
        let q = text(&["KVM_EXIT_IO", "exit io"], false);
        for given in ["kvm_exit_io", "  `KVM_EXIT_IO` ", "Exit   IO", "\"exit io\""] {
            assert!(is_correct(&q, &Response::Text(given.into())), "{given}");
        }
        assert!(!is_correct(&q, &Response::Text("KVM_EXIT_MMIO".into())));
    }

    #[test]
    fn choices_must_match_exactly() {
        let choice = |k: &str| Choice { key: k.into(), text: Bilingual::default() };
        let q = question(AnswerSpec::Choices {
            choices: vec![choice("a"), choice("b"), choice("c")],
            answer: vec!["a".into(), "c".into()],
            multiple: true,
        });
        assert!(is_correct(&q, &Response::Choices(vec!["c".into(), "a".into()])));
        assert!(!is_correct(&q, &Response::Choices(vec!["a".into()])));
        assert!(!is_correct(&q, &Response::Choices(vec!["a".into(), "b".into(), "c".into()])));
        assert!(!is_correct(&q, &Response::Text("a,c".into())));
    }

    #[test]
    fn an_order_must_be_exactly_right() {
        let choice = |k: &str| Choice { key: k.into(), text: Bilingual { en: k.to_uppercase(), zh: k.into() } };
        let q = question(AnswerSpec::Order {
            choices: vec![choice("a"), choice("b"), choice("c")],
            answer: vec!["c".into(), "a".into(), "b".into()],
        });
        for given in ["c a b", "c,a,b", "CAB", "c → a → b", "c > a > b", "c、a、b"] {
            assert!(is_correct(&q, &Response::Choices(parse_key_sequence(given))), "{given}");
        }
        for given in ["a b c", "c a", "c a b b", "c a b d", ""] {
            assert!(!is_correct(&q, &Response::Choices(parse_key_sequence(given))), "{given}");
        }
        assert_eq!(expected(&q, crate::i18n::Lang::En), "c) C → a) A → b) B");
    }

    #[test]
    fn choice_keys_parse_in_the_usual_spellings() {
        for given in ["a,c", "A C", "ca", "a, c", "a，c", "a、c"] {
            assert_eq!(parse_choice_keys(given), ["a", "c"], "{given}");
        }
        assert_eq!(parse_choice_keys(" B "), ["b"]);
    }
}
