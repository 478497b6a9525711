//! The order in which a question's choices are shown: shuffled per student, stable per question.
//!
//! Authors tend to put the right answer in the same place; a student who notices learns the
//! place, not the answer. So the session shows the choices in an order drawn from a seed kept in
//! the student's progress file and the question's key (`stage.id`): the same student sees the
//! same order whenever they come back to a question (a retry, a resumed session), and another
//! student sees another order. The choices are relabelled `a`, `b`, `c`… in the order shown.
//! Scripts and graders (the non-interactive mode) keep using the keys written in the bank.

use crate::bank::{AnswerSpec, Choice, Question};

/// A new seed, different from run to run (time and process id: it only has to differ between
/// students, not resist prediction).
pub fn new_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut state = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    splitmix64(&mut state)
}

/// `question` as the student with `seed` sees it: its choices in their order for this question,
/// relabelled `a`, `b`, `c`…, and its answer keys mapped to the new labels. A question without
/// choices comes back unchanged.
pub fn shown(question: &Question, seed: u64, key: &str) -> Question {
    let (choices, answer) = match &question.answer {
        AnswerSpec::Choices { choices, answer, .. } | AnswerSpec::Order { choices, answer } => (choices, answer),
        AnswerSpec::Text { .. } => return question.clone(),
    };
    let order = permutation(choices.len(), seed, key);
    let label = |position: usize| char::from(b'a' + (position % 26) as u8).to_string();
    let relabelled: Vec<Choice> = order
        .iter()
        .enumerate()
        .map(|(position, &i)| Choice { key: label(position), text: choices[i].text.clone() })
        .collect();
    // Each answer key (in its order, which matters for an ordering) becomes its new label.
    let new_label = |old: &String| order.iter().position(|&i| &choices[i].key == old).map(label);
    let answer = answer.iter().filter_map(new_label).collect();
    let mut shown = question.clone();
    shown.answer = match &question.answer {
        AnswerSpec::Choices { multiple, .. } => {
            AnswerSpec::Choices { choices: relabelled, answer, multiple: *multiple }
        }
        _ => AnswerSpec::Order { choices: relabelled, answer },
    };
    shown
}

/// The order of `n` items for `seed` and `key`: a Fisher–Yates shuffle driven by splitmix64.
/// Written out rather than taken from a crate so that the order never changes with a
/// dependency's version (students' orders must survive an update).
pub fn permutation(n: usize, seed: u64, key: &str) -> Vec<usize> {
    // FNV-1a of the key, mixed into the seed.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut state = seed ^ hash;
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// One step of splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::{Bilingual, Kind};
    use crate::marking::{expected, is_correct, Response};

    fn question(answer: &[&str]) -> Question {
        let choice = |k: &str| Choice { key: k.into(), text: Bilingual { en: format!("text {k}"), zh: k.into() } };
        Question {
            id: "q".into(),
            line: 1,
            kind: Kind::Single,
            file: "f".into(),
            marker: None,
            concept: None,
            prompt: Bilingual::default(),
            hint: Bilingual::default(),
            explain: Bilingual::default(),
            answer: AnswerSpec::Choices {
                choices: ["a", "b", "c", "d"].iter().map(|k| choice(k)).collect(),
                answer: answer.iter().map(|k| k.to_string()).collect(),
                multiple: answer.len() > 1,
            },
        }
    }

    #[test]
    fn the_order_is_a_permutation_stable_for_a_seed_and_key() {
        for seed in 0..50 {
            let order = permutation(5, seed, "1.q");
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3, 4]);
            assert_eq!(order, permutation(5, seed, "1.q"), "the same student sees the same order again");
        }
        assert_eq!(permutation(0, 7, "x"), Vec::<usize>::new());
        // Pinned: progress files keep seeds, so the order for a seed must never change.
        assert_eq!(permutation(6, 1, "7.x"), [4, 2, 0, 1, 3, 5]);
    }

    #[test]
    fn the_right_answer_lands_everywhere_about_equally_often() {
        // Over many students, the right choice is shown in each of 4 places about a quarter of
        // the time, whatever place the author gave it.
        let q = question(&["a"]);
        let mut places = [0u32; 4];
        for seed in 0..4000 {
            let AnswerSpec::Choices { answer, .. } = shown(&q, seed, "1.q").answer else { unreachable!() };
            places[usize::from(answer[0].as_bytes()[0] - b'a')] += 1;
        }
        for count in places {
            assert!((850..1150).contains(&count), "{places:?}");
        }
        // Different questions of one student get different orders, too.
        let orders: std::collections::BTreeSet<Vec<usize>> =
            (0..20).map(|i| permutation(4, 9, &format!("1.q{i}"))).collect();
        assert!(orders.len() > 5, "{orders:?}");
    }

    #[test]
    fn the_shown_question_is_marked_like_the_bank_one() {
        for seed in 0..30 {
            let q = question(&["b", "d"]);
            let s = shown(&q, seed, "2.q");
            let AnswerSpec::Choices { choices, answer, multiple } = &s.answer else { unreachable!() };
            assert!(multiple);
            assert_eq!(choices.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
            // The labels shown for the right answers point at the texts of b and d.
            let mut right: Vec<&str> =
                choices.iter().filter(|c| answer.contains(&c.key)).map(|c| c.text.en.as_str()).collect();
            right.sort();
            assert_eq!(right, ["text b", "text d"]);
            assert!(is_correct(&s, &Response::Choices(answer.clone())));
            assert!(expected(&s, crate::i18n::Lang::En).contains("text b"));
        }
        let AnswerSpec::Choices { choices, .. } = question(&["a"]).answer else { unreachable!() };
        let order = Question {
            answer: AnswerSpec::Order { choices, answer: ["c", "a", "d", "b"].map(String::from).to_vec() },
            ..question(&["a"])
        };
        for seed in 0..30 {
            let s = shown(&order, seed, "3.order");
            let AnswerSpec::Order { choices, answer } = &s.answer else { unreachable!() };
            let texts: Vec<&str> =
                answer.iter().map(|k| choices.iter().find(|c| &c.key == k).unwrap().text.en.as_str()).collect();
            assert_eq!(texts, ["text c", "text a", "text d", "text b"], "the right order survives relabelling");
        }
        let text =
            Question { answer: AnswerSpec::Text { accept: vec!["1".into()], numeric: true }, ..question(&["a"]) };
        assert!(matches!(shown(&text, 1, "k").answer, AnswerSpec::Text { .. }));
    }
}
