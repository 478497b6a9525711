//! Device models added in stage 7.

pub mod edu;
pub mod pvpanic;
