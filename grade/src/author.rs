//! The author check (rustlings' "every exercise fails unsolved and passes solved"):
//!
//! 1. every stage that has exercises has a checkpoint file, and gets full marks on the full tree;
//! 2. the handout with every exercise stubbed builds (`cargo build --workspace --all-targets`);
//! 3. for each exercise, a handout with only that exercise stubbed loses points in its stage;
//! 4. for each mutant of those exercises (`grade/mutants/`, see [`crate::mutants`]), the tree
//!    with that mutant in place of the solution loses points in its stage.
//!
//! Steps 3 and 4 write every tree into one directory, touching only the files that change, and
//! build it with one target directory, so each exercise or mutant rebuilds one stage crate; they
//! build only the affected stage's binary and stop that stage's checkpoints at the first lost
//! point.

use crate::grading::{self, GradeOptions, StageStatus, Status};
use crate::mutants::{self, MutantError, MutantWork, Verdict};
use crate::regions::Region;
use crate::tree;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// What to check.
#[derive(Debug, Clone)]
pub struct AuthorOptions {
    /// The full tree.
    pub repo: PathBuf,
    /// Where the full tree is built.
    pub target_dir: PathBuf,
    /// Where the handouts are written (`DIR/tree`) and built (`DIR/target`).
    pub work_dir: PathBuf,
    /// Only the exercises of these stages (all if empty, and `exercises` is empty too).
    pub stages: Vec<u32>,
    /// Only these exercises.
    pub exercises: Vec<String>,
    /// Skip step 1's grading of the full tree (`cargo test` already runs those checkpoints).
    pub skip_full_tree: bool,
    /// Skip step 4, the mutants.
    pub skip_mutants: bool,
}

/// The outcome: a line per step and exercise, and the problems found.
#[derive(Debug, Default)]
pub struct AuthorReport {
    /// What was checked, one line each.
    pub lines: Vec<String>,
    /// What is wrong; empty when everything holds.
    pub problems: Vec<String>,
}

/// Runs the author check.
///
/// # Errors
/// When the tree's regions, its mutant files or the work directory cannot be read or written.
pub fn author_check(options: &AuthorOptions) -> Result<AuthorReport, MutantError> {
    let start = Instant::now();
    let mut report = AuthorReport::default();
    let all = tree::exercises(&options.repo)?;
    let selected: Vec<Region> = tree::select(&all, &options.stages, &options.exercises)?.into_iter().cloned().collect();
    // Read first: a malformed mutant file is an error before anything is built.
    let all_mutants = if options.skip_mutants { Vec::new() } else { mutants::load_mutants(&options.repo, &all)? };
    let mut stages: Vec<u32> = selected.iter().map(|r| r.stage).collect();
    stages.dedup();
    let checkpoints_dir = options.repo.join("tests/checkpoints");
    let say = |report: &mut AuthorReport, line: String| {
        eprintln!("author-check: {line}");
        report.lines.push(line);
    };

    // 1. Checkpoint files, and full marks on the full tree.
    let mut gradable = Vec::new();
    for &stage in &stages {
        let file = checkpoints::stage_file(&checkpoints_dir, stage);
        if file.exists() {
            gradable.push(stage);
            continue;
        }
        let names: Vec<&str> = selected.iter().filter(|r| r.stage == stage).map(|r| r.name.as_str()).collect();
        report.problems.push(format!(
            "stage {stage} has exercises ({}) but no checkpoint file {}: add one whose checks fail when an exercise is stubbed",
            names.join(", "),
            file.display()
        ));
    }
    if !options.skip_full_tree && !gradable.is_empty() {
        let step = Instant::now();
        let full = grading::grade(&GradeOptions {
            repo: options.repo.clone(),
            stages: gradable.clone(),
            target_dir: options.target_dir.clone(),
            checkpoints_dir: checkpoints_dir.clone(),
            stop_at_first_failure: false,
            progress: true,
        });
        for stage in &full.stages {
            if stage.points.earned != stage.points.possible || stage.status != StageStatus::Graded {
                report.problems.push(format!(
                    "stage {} gets {}/{} on the full tree (it must get full marks):\n{}",
                    stage.stage,
                    stage.points.earned,
                    stage.points.possible,
                    failed_checks(&stage.checks)
                ));
            }
        }
        let line = format!(
            "full tree: {}/{} over stages {:?} ({:.0} s)",
            full.points.earned,
            full.points.possible,
            gradable,
            step.elapsed().as_secs_f64()
        );
        say(&mut report, line);
    }

    // 2. The handout with every exercise stubbed builds.
    let handout = options.work_dir.join("tree");
    let target = options.work_dir.join("target");
    let step = Instant::now();
    let every: Vec<String> = all.iter().map(|r| r.name.clone()).collect();
    tree::write_handout(&options.repo, &handout, &every)?;
    let build = grading::cargo(&handout, &target, &["build", "--workspace", "--all-targets"]);
    match build {
        Ok(out) if out.status.success() => {
            let line = format!(
                "handout with all {} exercises stubbed builds ({:.0} s)",
                every.len(),
                step.elapsed().as_secs_f64()
            );
            say(&mut report, line);
        }
        Ok(out) => report.problems.push(format!(
            "the handout with every exercise stubbed does not build (cargo build --workspace --all-targets in {}, {:.0} s):\n{}",
            handout.display(),
            step.elapsed().as_secs_f64(),
            grading::compiler_errors(&String::from_utf8_lossy(&out.stderr), 60)
        )),
        Err(e) => report.problems.push(format!("cannot run cargo: {e}")),
    }

    // 3. Each exercise alone: its stage loses points.
    for region in selected.iter().filter(|r| gradable.contains(&r.stage)) {
        let step = Instant::now();
        tree::write_handout(&options.repo, &handout, std::slice::from_ref(&region.name))?;
        let (stage, verdict) =
            mutants::grade_variant(&handout, region.stage, target.clone(), handout.join("tests/checkpoints"));
        let seconds = step.elapsed().as_secs_f64();
        match verdict {
            Verdict::Caught(check) => {
                let line = format!(
                    "exercise {:<24} stage {}: stub fails '{check}' ({seconds:.0} s, build {:.0} s)",
                    region.name, region.stage, stage.build_seconds
                );
                say(&mut report, line);
            }
            Verdict::Survived => report.problems.push(format!(
                "exercise {} ({}): stage {} still gets {}/{} with the stub: no checkpoint tests it",
                region.name,
                region.file.display(),
                region.stage,
                stage.points.earned,
                stage.points.possible
            )),
            Verdict::BuildFailed(log) => report
                .problems
                .push(format!("exercise {}: the handout's stage {} does not build: {log}", region.name, region.stage)),
            Verdict::NotRun(why) => {
                report.problems.push(format!("exercise {}: stage {} not run: {why}", region.name, region.stage))
            }
        }
    }

    // 4. Each mutant: its stage loses points.
    let work = MutantWork { repo: options.repo.clone(), work_dir: options.work_dir.clone() };
    let mut mutant_count = 0;
    for region in selected.iter().filter(|r| gradable.contains(&r.stage)) {
        for mutant in all_mutants.iter().filter(|m| m.exercise == region.name) {
            mutant_count += 1;
            let run = mutants::run_mutant(&work, mutant, region.stage)?;
            let which = format!("mutant {}/{} (\"{}\")", mutant.exercise, mutant.name, mutant.description);
            match &run.verdict {
                Verdict::Caught(check) => {
                    let line = format!("{which}: caught by '{check}' ({:.0} s)", run.seconds);
                    say(&mut report, line);
                }
                Verdict::Survived => report.problems.push(format!(
                    "{which} SURVIVES: stage {} gets full marks with it ({}); add a check that catches it",
                    region.stage,
                    mutant.path.display()
                )),
                Verdict::BuildFailed(log) => report.problems.push(format!(
                    "{which}: stage {} does not build with it (a mutant must compile):\n{log}",
                    region.stage
                )),
                Verdict::NotRun(why) => report.problems.push(format!("{which}: not run: {why}")),
            }
        }
    }
    if !options.skip_mutants {
        say(&mut report, format!("{mutant_count} mutants run"));
    }
    let line = format!(
        "{} exercises, {} problems, {:.0} s in all",
        selected.len(),
        report.problems.len(),
        start.elapsed().as_secs_f64()
    );
    say(&mut report, line);
    Ok(report)
}

fn failed_checks(rows: &[grading::CheckRow]) -> String {
    let mut out = String::new();
    for row in rows.iter().filter(|r| r.status != Status::Pass) {
        let _ = writeln!(out, "  - {} / {}: {}", row.checkpoint, row.check, row.message);
        for line in row.output_excerpt.lines().take(12) {
            let _ = writeln!(out, "      | {line}");
        }
    }
    out
}
