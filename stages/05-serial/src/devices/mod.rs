//! Device models added in stage 5.

pub mod serial;
