//! minivirt's grading and handout tools.
//!
//! - [`grading`]: build each stage's binary, run its checkpoints (`tests/checkpoints/stageNN.toml`),
//!   score them; [`report`] prints the table and writes the JSON results.
//! - [`regions`]: the solution regions (`// lab:begin solution NAME` … `// lab:end`) and their
//!   stubs, from the `source-markers` crate that `qa` finds its excerpts with; [`tree`] writes a
//!   handout with the chosen regions stubbed.
//! - [`author`]: checks that every exercise's stub fails its stage's checkpoints.
//! - [`stage_diff`]: what each stage adds over the previous one, and its copy in the stage
//!   READMEs.
//!
//! The conventions are in `grade/README.md`.
#![deny(missing_docs)]

pub mod author;
pub mod grading;
pub mod report;
pub mod stage_diff;
pub mod tree;

pub use source_markers::solution as regions;
