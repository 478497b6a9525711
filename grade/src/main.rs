//! `grade`: score a tree's checkpoints, write a student handout, list or check the exercises.

use clap::{Args, Parser, Subcommand};
use grade::author::{author_check, AuthorOptions};
use grade::grading::{default_target_dir, grade, GradeOptions};
use grade::{report, stage_diff, tree};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Check that the all-stubbed handout builds and that each exercise's stub fails its stage.
    AuthorCheck(AuthorArgs),
    /// Print what a stage adds over the previous one (files, lib.rs items, main.rs diff), or
    /// check or rewrite the copy of it in each stage's README.md.
    Diff(DiffArgs),
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
    /// copy, so that a student's edits to them do not count).
    #[arg(long, value_name = "DIR")]
    checkpoints: Option<PathBuf>,
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
        Some(Cmd::Diff(args)) => diff(args),
    };
    result.unwrap_or_else(|message| {
        eprintln!("grade: {message}");
        ExitCode::from(2)
    })
}

fn run(args: RunArgs) -> Result<ExitCode, String> {
    let repo = repo_of(&args.repo);
    if !repo.join("stages").is_dir() {
        return Err(format!("{} is not a minivirt tree (no stages/ folder)", repo.display()));
    }
    let options = GradeOptions {
        target_dir: args.target_dir.unwrap_or_else(|| default_target_dir(&repo)),
        checkpoints_dir: args.checkpoints.unwrap_or_else(|| repo.join("tests/checkpoints")),
        stages: args.stages,
        repo,
        stop_at_first_failure: false,
        progress: true,
    };
    let report = grade(&options);
    match &args.json {
        Some(path) if path.as_os_str() == "-" => println!("{}", report::json(&report)),
        Some(path) => {
            std::fs::write(path, report::json(&report) + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            print!("{}", report::table(&report, report::use_colour()));
        }
        None => print!("{}", report::table(&report, report::use_colour())),
    }
    Ok(if report.full_marks() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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
