//! `grade`: score a tree's checkpoints (a table, JSON, Gradescope, GitHub Classroom, JUnit),
//! grade a class's submissions, write a student handout or a Gradescope autograder, list or
//! check the exercises.

use clap::{Args, Parser, Subcommand};
use grade::author::{author_check, AuthorOptions};
use grade::autograder::{write_autograder, AutograderOptions};
use grade::batch::{run_batch, BatchOptions};
use grade::grading::{checkpoint_stages, default_target_dir, grade, not_graded, GradeOptions, Report};
use grade::{classroom, gradescope, junit, mutants, report, stage_diff, submission, tree};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Grades minivirt checkpoints and writes student handouts.
///
/// Exit status: 0 for full marks (or a command that succeeded), 1 for lost points (or problems
/// found), 2 when the command could not run.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build and run the checkpoints, print the score table (the default command).
    Run(RunArgs),
    /// Write a copy of the tree with solution regions replaced by stubs.
    Handout(HandoutArgs),
    /// List the exercises (solution regions).
    Exercises(RepoArg),
    /// Check that the all-stubbed handout builds and that each exercise's stub, and each of
    /// its mutants, fails its stage.
    AuthorCheck(AuthorArgs),
    /// Run each mutant (a plausible wrong answer, grade/mutants/) and print a Markdown table of
    /// the check that caught it; exit 1 if any survives.
    Mutants(MutantsArgs),
    /// Print what a stage adds over the previous one (files, lib.rs items, main.rs diff), or
    /// check or rewrite the copy of it in each stage's README.md.
    Diff(DiffArgs),
    /// Write a Gradescope autograder (setup.sh, run_autograder, the checkpoints, the handout).
    Autograder(AutograderArgs),
    /// Grade every submission folder under DIR into a gradebook (CSV and JSON).
    Batch(BatchArgs),
}

#[derive(Args)]
struct RepoArg {
    /// The tree to work on (default: the tree this tool was built from).
    #[arg(long, value_name = "PATH")]
    repo: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Grade only this stage (repeatable; default: every stage).
    #[arg(long = "stage", value_name = "N")]
    stages: Vec<u32>,
    /// Also write the results as JSON to FILE ("-" for standard output, instead of the table).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Cargo's target directory (default: PATH/target, or CARGO_TARGET_DIR for this tree).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Read the checkpoint files from DIR instead of PATH/tests/checkpoints (an instructor's own
    /// copy, so that a student's edits to them do not count). Without --stage, every stage
    /// that has a file there is graded.
    #[arg(long, value_name = "DIR")]
    checkpoints: Option<PathBuf>,
    /// Also write Gradescope's results.json to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    gradescope: Option<PathBuf>,
    /// Also write a JUnit XML report to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Set GitHub Classroom's step output `result` (in $GITHUB_OUTPUT; printed instead of the
    /// table when that is not set).
    #[arg(long)]
    classroom: bool,
    /// Grade a copy of the tree made in DIR/tree (regular files only: no symbolic link is
    /// followed; target/, .git/, .cargo/ left out), built in DIR/target.
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
}

#[derive(Args)]
struct AutograderArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Where to write the autograder (zip what is inside it for Gradescope).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Grade only this stage (repeatable; default: every stage with a checkpoint file).
    #[arg(long = "stage", value_name = "N")]
    stages: Vec<u32>,
    /// The checkpoint files to grade with (default: PATH/tests/checkpoints).
    #[arg(long, value_name = "DIR")]
    checkpoints: Option<PathBuf>,
    /// The Rust toolchain setup.sh installs.
    #[arg(long, default_value = "stable")]
    toolchain: String,
    /// Seconds grading may take before it is stopped (keep it under the assignment's
    /// autograder timeout on Gradescope: 10 minutes unless raised).
    #[arg(long, value_name = "SECS", default_value_t = 540)]
    time_limit: u64,
}

#[derive(Args)]
struct BatchArgs {
    /// The folder of submissions: each folder in it is one student's tree.
    #[arg(value_name = "DIR")]
    submissions: PathBuf,
    #[command(flatten)]
    repo: RepoArg,
    /// Where to write gradebook.csv, gradebook.json and each submission's work folder.
    #[arg(long, value_name = "DIR", default_value = "gradebook")]
    out: PathBuf,
    /// How many submissions to grade at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    jobs: usize,
    /// Seconds one submission may take, builds included, before it is stopped.
    #[arg(long, value_name = "SECS", default_value_t = 2400)]
    timeout: u64,
    /// The checkpoint files to grade with (default: PATH/tests/checkpoints).
    #[arg(long, value_name = "DIR")]
    checkpoints: Option<PathBuf>,
    /// Grade only this stage (repeatable; default: every stage with a checkpoint file).
    #[arg(long = "stage", value_name = "N")]
    stages: Vec<u32>,
}

#[derive(Args)]
struct HandoutArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Where to write the handout (created if missing; files already right are left alone).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Stub only the exercises of this stage (repeatable).
    #[arg(long = "stage", value_name = "N")]
    stages: Vec<u32>,
    /// Stub only this exercise (repeatable). With neither option, every exercise is stubbed.
    #[arg(long = "exercise", value_name = "NAME")]
    exercises: Vec<String>,
}

#[derive(Args)]
struct AuthorArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Check only the exercises of this stage (repeatable).
    #[arg(long = "stage", value_name = "N")]
    stages: Vec<u32>,
    /// Check only this exercise (repeatable).
    #[arg(long = "exercise", value_name = "NAME")]
    exercises: Vec<String>,
    /// Where to write and build the handouts (default: TARGET/author-check).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Cargo's target directory for the full tree.
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Do not grade the full tree first (when `cargo test` has just run its checkpoints).
    #[arg(long)]
    skip_full_tree: bool,
    /// Do not run the mutants (step 4).
    #[arg(long)]
    no_mutants: bool,
}

#[derive(Args)]
struct MutantsArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Only the mutants of this stage's exercises (repeatable).
    #[arg(long = "stage", value_name = "N")]
    stages: Vec<u32>,
    /// Only the mutants of this exercise (repeatable).
    #[arg(long = "exercise", value_name = "NAME")]
    exercises: Vec<String>,
    /// List the mutants without running them.
    #[arg(long)]
    list: bool,
    /// Where to write and build the trees (default: TARGET/author-check, shared with
    /// author-check so that neither rebuilds what the other has built).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
}

#[derive(Args)]
struct DiffArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Only this stage (repeatable; default: every stage).
    #[arg(long = "stage", value_name = "N")]
    stages: Vec<u32>,
    /// Fail (exit 1) when a stage README's generated diff is stale, instead of printing.
    #[arg(long, conflicts_with = "write")]
    check: bool,
    /// Regenerate the diff in the stage READMEs, between their `<!-- diff:begin -->` and
    /// `<!-- diff:end -->` lines.
    #[arg(long)]
    write: bool,
}

fn repo_of(arg: &RepoArg) -> PathBuf {
    arg.repo.clone().unwrap_or_else(checkpoints::repo_root)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(cli.run),
        Some(Cmd::Run(args)) => run(args),
        Some(Cmd::Handout(args)) => handout(args),
        Some(Cmd::Exercises(args)) => exercises(args),
        Some(Cmd::AuthorCheck(args)) => author(args),
        Some(Cmd::Mutants(args)) => run_mutants(args),
        Some(Cmd::Diff(args)) => diff(args),
        Some(Cmd::Autograder(args)) => autograder(args),
        Some(Cmd::Batch(args)) => batch(args),
    };
    result.unwrap_or_else(|message| {
        eprintln!("grade: {message}");
        ExitCode::from(2)
    })
}

/// Writes a report in one format.
type Render = fn(&Report) -> String;

fn run(args: RunArgs) -> Result<ExitCode, String> {
    let repo = repo_of(&args.repo);
    let github_output = std::env::var_os("GITHUB_OUTPUT").filter(|v| !v.is_empty()).map(PathBuf::from);
    let files: [(&Option<PathBuf>, Render); 3] =
        [(&args.json, report::json), (&args.gradescope, gradescope::results_json), (&args.junit, junit::junit_xml)];
    let on_stdout = files.iter().filter(|(path, _)| path.as_ref().is_some_and(|p| p.as_os_str() == "-")).count()
        + usize::from(args.classroom && github_output.is_none());
    if on_stdout > 1 {
        return Err("only one result can go to standard output".into());
    }
    // An instructor's checkpoints decide the stages, whatever stage folders a submission has.
    let stages = match &args.checkpoints {
        Some(dir) if args.stages.is_empty() => {
            let stages = checkpoint_stages(dir);
            if stages.is_empty() {
                return Err(format!("no checkpoint files (stageNN.toml) in {}", dir.display()));
            }
            stages
        }
        _ => args.stages,
    };
    let mut problem = None;
    let (tree, target_dir) = match &args.work {
        Some(work) => {
            let tree = work.join("tree");
            match submission::copy_submission(&repo, &tree) {
                Ok(copy) if !copy.skipped.is_empty() => {
                    let skipped: Vec<String> = copy.skipped.iter().map(|p| p.display().to_string()).collect();
                    eprintln!("grade: not copied (symbolic links, special files): {}", skipped.join(", "));
                }
                Ok(_) => {}
                Err(e) => problem = Some(format!("the submission could not be copied: {e}")),
            }
            (tree, args.target_dir.unwrap_or_else(|| work.join("target")))
        }
        None => (repo.clone(), args.target_dir.unwrap_or_else(|| default_target_dir(&repo))),
    };
    // Without an instructor's checkpoints, the tree's own say what to grade: it must have them.
    if args.checkpoints.is_none() {
        if let Some(message) = problem {
            return Err(message);
        }
        if !tree.join("stages").is_dir() {
            return Err(format!("{} is not a minivirt tree (no stages/ folder)", repo.display()));
        }
    }
    let options = GradeOptions {
        target_dir,
        checkpoints_dir: args.checkpoints.unwrap_or_else(|| tree.join("tests/checkpoints")),
        stages,
        repo: tree,
        stop_at_first_failure: false,
        progress: true,
    };
    let report = match problem {
        Some(message) => not_graded(&options, &message),
        None => grade(&options),
    };

    let mut table = true;
    for (path, render) in files {
        match path {
            Some(path) if path.as_os_str() == "-" => {
                println!("{}", render(&report));
                table = false;
            }
            Some(path) => write_file(path, &(render(&report) + "\n"))?,
            None => {}
        }
    }
    if args.classroom {
        match &github_output {
            Some(file) => classroom::write_step_output(file, &report)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?,
            None => {
                println!("{}", classroom::encoded_result(&report));
                table = false;
            }
        }
    }
    if table {
        print!("{}", report::table(&report, report::use_colour()));
    }
    Ok(if report.full_marks() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The stages an instructor grades: those asked for, or every one with a checkpoint file.
fn instructor_stages(stages: Vec<u32>, checkpoints_dir: &Path) -> Result<Vec<u32>, String> {
    let stages = if stages.is_empty() { checkpoint_stages(checkpoints_dir) } else { stages };
    if stages.is_empty() {
        return Err(format!("no checkpoint files (stageNN.toml) in {}", checkpoints_dir.display()));
    }
    Ok(stages)
}

fn autograder(args: AutograderArgs) -> Result<ExitCode, String> {
    let repo = repo_of(&args.repo);
    let checkpoints_dir = args.checkpoints.unwrap_or_else(|| repo.join("tests/checkpoints"));
    let options = AutograderOptions {
        stages: instructor_stages(args.stages, &checkpoints_dir)?,
        checkpoints_dir,
        repo,
        out: args.out,
        toolchain: args.toolchain,
        time_limit: args.time_limit,
    };
    let written = write_autograder(&options).map_err(|e| e.to_string())?;
    println!("autograder in {}: {} files and the handout (minivirt/)", options.out.display(), written.len());
    println!("upload a zip of what is inside it: (cd {} && zip -r ../autograder.zip .)", options.out.display());
    Ok(ExitCode::SUCCESS)
}

fn batch(args: BatchArgs) -> Result<ExitCode, String> {
    let repo = repo_of(&args.repo);
    let checkpoints_dir = args.checkpoints.unwrap_or_else(|| repo.join("tests/checkpoints"));
    let options = BatchOptions {
        stages: instructor_stages(args.stages, &checkpoints_dir)?,
        // Absolute: each submission's grader runs from its own folder.
        checkpoints_dir: checkpoints_dir.canonicalize().map_err(|e| format!("{}: {e}", checkpoints_dir.display()))?,
        submissions: args.submissions,
        out: args.out,
        jobs: args.jobs,
        timeout: Duration::from_secs(args.timeout),
        grader: std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?,
    };
    let gradebook = run_batch(&options).map_err(|e| e.to_string())?;
    for row in &gradebook.submissions {
        let note = if row.message.is_empty() { String::new() } else { format!("  ({})", row.message) };
        println!("{:<24} {:<12} {:>4}/{}{note}", row.name, row.status.word(), row.points.earned, row.points.possible);
    }
    println!(
        "{} submissions: {} and {}",
        gradebook.submissions.len(),
        options.out.join("gradebook.csv").display(),
        options.out.join("gradebook.json").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn handout(args: HandoutArgs) -> Result<ExitCode, String> {
    let repo = repo_of(&args.repo);
    let all = tree::exercises(&repo).map_err(|e| e.to_string())?;
    let chosen: Vec<String> = tree::select(&all, &args.stages, &args.exercises)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.name.clone())
        .collect();
    let summary = tree::write_handout(&repo, &args.out, &chosen).map_err(|e| e.to_string())?;
    println!(
        "handout in {}: {} files ({} written), {} exercises stubbed: {}",
        args.out.display(),
        summary.files,
        summary.written,
        summary.stubbed.len(),
        summary.stubbed.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn exercises(args: RepoArg) -> Result<ExitCode, String> {
    let repo = repo_of(&args);
    let all = tree::exercises(&repo).map_err(|e| e.to_string())?;
    println!("{:<5}  {:<24}  {:<44}  what the stub asks", "stage", "exercise", "file:line");
    for region in &all {
        let place = format!("{}:{}", region.file.display(), region.begin_line);
        let what = if region.message.is_empty() {
            format!("write {}", region.functions.join(", "))
        } else {
            region.message.clone()
        };
        println!(
            "{:<5}  {:<24}  {:<44}  {what} [fn {}]",
            region.stage,
            region.name,
            place,
            region.functions.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn author(args: AuthorArgs) -> Result<ExitCode, String> {
    let repo = repo_of(&args.repo);
    let target_dir = args.target_dir.unwrap_or_else(|| default_target_dir(&repo));
    let options = AuthorOptions {
        work_dir: args.work_dir.unwrap_or_else(|| target_dir.join("author-check")),
        target_dir,
        repo,
        stages: args.stages,
        exercises: args.exercises,
        skip_full_tree: args.skip_full_tree,
        skip_mutants: args.no_mutants,
    };
    let report = author_check(&options).map_err(|e| e.to_string())?;
    if report.problems.is_empty() {
        println!("author check: OK ({})", report.lines.last().map(String::as_str).unwrap_or(""));
        return Ok(ExitCode::SUCCESS);
    }
    println!("author check: {} problem(s):", report.problems.len());
    for problem in &report.problems {
        println!("- {problem}");
    }
    Ok(ExitCode::FAILURE)
}

fn run_mutants(args: MutantsArgs) -> Result<ExitCode, String> {
    let repo = repo_of(&args.repo);
    let all = tree::exercises(&repo).map_err(|e| e.to_string())?;
    let selected = tree::select(&all, &args.stages, &args.exercises).map_err(|e| e.to_string())?;
    let chosen: Vec<mutants::Mutant> = mutants::load_mutants(&repo, &all)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|m| selected.iter().any(|r| r.name == m.exercise))
        .collect();
    if args.list {
        print!("{}", mutants::markdown_table(&chosen, None));
        return Ok(ExitCode::SUCCESS);
    }
    let work = mutants::MutantWork {
        work_dir: args.work_dir.unwrap_or_else(|| default_target_dir(&repo).join("author-check")),
        repo,
    };
    let mut runs = Vec::new();
    for mutant in &chosen {
        let stage = selected.iter().find(|r| r.name == mutant.exercise).map_or(0, |r| r.stage);
        eprintln!("grade: mutant {}/{} (stage {stage})", mutant.exercise, mutant.name);
        let run = mutants::run_mutant(&work, mutant, stage).map_err(|e| e.to_string())?;
        if let mutants::Verdict::BuildFailed(log) = &run.verdict {
            eprintln!("grade: {}: does not build:\n{log}", mutant.path.display());
        }
        eprintln!("grade:   {} ({:.0} s)", run.verdict.cell(), run.seconds);
        runs.push(run);
    }
    print!("{}", mutants::markdown_table(&chosen, Some(&runs)));
    let caught = runs.iter().filter(|r| matches!(r.verdict, mutants::Verdict::Caught(_))).count();
    println!("\n{caught} of {} mutants caught", runs.len());
    Ok(if caught == runs.len() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn diff(args: DiffArgs) -> Result<ExitCode, String> {
    let repo = repo_of(&args.repo);
    if args.check {
        let stale = stage_diff::check_readmes(&repo, &args.stages).map_err(|e| e.to_string())?;
        for path in &stale {
            println!("{}: the generated diff is stale", path.strip_prefix(&repo).unwrap_or(path).display());
        }
        if !stale.is_empty() {
            println!("run `{}` and commit the result", stage_diff::WRITE_COMMAND);
            return Ok(ExitCode::FAILURE);
        }
        println!("stage READMEs: generated diffs up to date");
    } else if args.write {
        let written = stage_diff::write_readmes(&repo, &args.stages).map_err(|e| e.to_string())?;
        for path in &written {
            println!("wrote {}", path.strip_prefix(&repo).unwrap_or(path).display());
        }
        println!("stage READMEs: {} rewritten", written.len());
    } else {
        let stages = match args.stages.is_empty() {
            true => stage_diff::stage_dirs(&repo).map_err(|e| e.to_string())?.into_iter().map(|(n, _)| n).collect(),
            false => args.stages,
        };
        let texts: Vec<String> = stages
            .iter()
            .map(|&n| stage_diff::stage_diff(&repo, n).map(|diff| diff.text()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        print!("{}", texts.join("\n"));
    }
    Ok(ExitCode::SUCCESS)
}
