//! The two languages of the course. Chinese is the course's own; English is for everyone else.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// A language the runner speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// 中文.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The language asked for by the environment: English when the locale says so, Chinese
    /// otherwise (the course is taught in Chinese, and many lab machines run `C.UTF-8`).
    pub fn from_env() -> Lang {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        if locale.starts_with("en") {
            Lang::En
        } else {
            Lang::Zh
        }
    }

    /// Picks the text for this language.
    pub fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}
