//! The parts of the quiz runner that other crates use: the question-bank format ([`bank`]) and
//! the two languages it is written in ([`i18n`]). The runner itself is the `qa` binary; the fuzz
//! targets (`fuzz-targets`) feed arbitrary bank files to [`bank::parse`].
#![deny(missing_docs)]

pub mod bank;
pub mod i18n;
