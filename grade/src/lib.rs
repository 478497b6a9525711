//! minivirt's grading and handout tools.
//!
//! - [`grading`]: build each stage's binary, run its checkpoints (`tests/checkpoints/stageNN.toml`),
//!   score them; [`report`] prints the table and writes the JSON results.
//! - [`regions`]: the solution regions (`// lab:begin solution NAME` … `// lab:end`) and their
//!   stubs, from the `source-markers` crate that `qa` finds its excerpts with; [`tree`] writes a
//!   handout with the chosen regions stubbed.
//! - [`author`]: checks that every exercise's stub fails its stage's checkpoints, and that
//!   that every mutant (a plausible wrong answer, [`mutants`]) loses points too.
//! - [`stage_diff`]: what each stage adds over the previous one, and its copy in the stage
//!   READMEs.
//! - For the platforms instructors use: [`gradescope`] (`results.json`) and [`autograder`] (a
//!   ready Gradescope autograder), [`classroom`] (GitHub Classroom's result and workflow),
//!   [`junit`] (JUnit XML for GitLab, Jenkins, any CI), and [`batch`] (a class's submissions,
//!   each [`submission`] copied and graded apart, into one gradebook).
//!
//! The conventions are in `grade/README.md`.
#![deny(missing_docs)]

pub mod author;
pub mod autograder;
pub mod batch;
pub mod classroom;
pub mod gradescope;
pub mod grading;
pub mod junit;
pub mod mutants;
pub mod report;
pub mod stage_diff;
pub mod submission;
pub mod tree;

pub use source_markers::solution as regions;
