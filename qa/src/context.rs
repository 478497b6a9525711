//! What every command works with: the repository, its banks, the student's progress, the
//! language.

use crate::bank::{Bank, Question};
use crate::i18n::Lang;
use crate::progress::{Record, Store};
use std::path::PathBuf;

/// The loaded world.
pub struct Context {
    /// The repository root (holds `qa/banks` and `stages/`).
    pub repo: PathBuf,
    /// Every bank, by stage.
    pub banks: Vec<Bank>,
    /// The student's progress.
    pub store: Store,
    /// The language to speak.
    pub lang: Lang,
}

impl Context {
    /// The record of `question` in `bank`, or an empty one.
    pub fn record(&self, bank: &Bank, question: &Question) -> Record {
        self.store.get(&bank.key(question)).cloned().unwrap_or_default()
    }

    /// The banks a command applies to: one stage with `--stage N`, else all.
    pub fn selected(&self, stage: Option<u32>) -> Vec<usize> {
        (0..self.banks.len()).filter(|&i| stage.is_none_or(|s| self.banks[i].stage == s)).collect()
    }

    /// Picks the text for the current language.
    pub fn t<'a>(&self, en: &'a str, zh: &'a str) -> &'a str {
        self.lang.pick(en, zh)
    }
}
