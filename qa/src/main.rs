//! `qa`: the minivirt quiz runner. Questions on each stage's real code, quoted by named
//! markers, marked at once, with progress saved and resumed.
//!
//! - `qa` — the interactive session (or, when stdin is not a terminal, the answers on stdin);
//! - `qa --answers FILE` — the non-interactive mode (`-` for stdin); see [`batch`];
//! - `qa --list`, `qa --reset`, `qa report [--json]`, `qa lint`.
//!
//! See `qa/README.md` for the bank format and the answer-file format.

mod batch;
mod context;
mod lint;
mod marking;
mod progress;
mod report;
mod session;
mod show;
mod shuffle;

// The bank format and the two languages are the library's, so that the fuzz targets reach the
// parser too.
use qa::{bank, i18n};
// The excerpts (`// qa:begin NAME` … `// qa:end NAME`), found by the parser `grade` shares.
use source_markers::excerpt as markers;

use clap::{Parser, Subcommand};
use context::Context;
use i18n::Lang;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Questions on the code of each minivirt stage.
#[derive(Parser)]
#[command(name = "qa", version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Only this stage (1–7).
    #[arg(long, global = true, value_name = "N")]
    stage: Option<u32>,
    /// List the stages and questions with your progress, then exit.
    #[arg(long)]
    list: bool,
    /// Forget your progress (of `--stage N` only, if given), then exit.
    #[arg(long)]
    reset: bool,
    /// Language of questions and messages (remembered for next time).
    #[arg(long, global = true, value_enum)]
    lang: Option<Lang>,
    /// No colours (the NO_COLOR environment variable does the same).
    #[arg(long, global = true)]
    no_color: bool,
    /// Non-interactive: read `STAGE.ID = ANSWER` lines from FILE (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
    /// The minivirt repository (default: the one this program was built from).
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Check every question bank against the schema and the code markers.
    Lint,
    /// Scores per stage.
    Report {
        /// As JSON, for graders.
        #[arg(long)]
        json: bool,
    },
}

const AFTER_HELP: &str =
    "Progress is kept in $QA_STATE_DIR, or $XDG_STATE_HOME/minivirt-qa, or ~/.local/state/minivirt-qa.
When stdin is not a terminal, answers are read from it as with --answers -.";

/// The repository: `--repo`, else the one this crate sits in, else the nearest directory above
/// the current one that has `qa/banks`.
fn find_repo(given: Option<PathBuf>) -> PathBuf {
    if let Some(repo) = given {
        return repo;
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
    if let Some(repo) = built_in.filter(|r| r.join(bank::BANK_DIR).is_dir()) {
        return repo;
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors().find(|d| d.join(bank::BANK_DIR).is_dir()).map_or(cwd.clone(), Path::to_path_buf)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = !cli.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if !color {
        colored::control::set_override(false);
        dialoguer::console::set_colors_enabled(false);
        dialoguer::console::set_colors_enabled_stderr(false);
    }
    let repo = find_repo(cli.repo.clone());
    if matches!(cli.command, Some(Command::Lint)) {
        return run_lint(&repo);
    }
    match run(cli, repo, color) {
        Ok(code) => code,
        Err(message) => {
            session::restore_terminal();
            eprintln!("qa: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_lint(repo: &Path) -> ExitCode {
    let report = lint::lint(repo);
    for problem in &report.problems {
        println!("{problem}");
    }
    for stage in &report.stages {
        println!("{stage}");
    }
    if report.problems.is_empty() {
        println!("qa lint: {} questions in {} OK", report.checked(), repo.join(bank::BANK_DIR).display());
        ExitCode::SUCCESS
    } else {
        println!("qa lint: {} problem(s)", report.problems.len());
        ExitCode::FAILURE
    }
}

fn run(cli: Cli, repo: PathBuf, color: bool) -> Result<ExitCode, String> {
    let banks = bank::load_all(&repo).map_err(|e| format!("{e} (run `qa lint` for every problem)"))?;
    let dir = progress::state_dir().ok_or_else(|| progress::ProgressError::NoStateDir.to_string())?;
    let store = progress::Store::load(&dir, &mut |warning| eprintln!("qa: warning: {warning}"));
    let lang = cli.lang.or(store.progress.lang).unwrap_or_else(Lang::from_env);
    let mut ctx = Context { repo, banks, store, lang };
    if cli.lang.is_some() && ctx.store.progress.lang != cli.lang {
        ctx.store.progress.lang = cli.lang;
        ctx.store.save().map_err(|e| e.to_string())?;
    }
    let indices = ctx.selected(cli.stage);
    if let Some(stage) = cli.stage.filter(|_| indices.is_empty()) {
        return Err(format!("there is no stage {stage}; the banks cover {}", stage_range(&ctx)));
    }
    match cli.command {
        Some(Command::Report { json: true }) => {
            let report = report::report(&ctx, &indices);
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
        }
        Some(Command::Report { json: false }) => print!("{}", report::table(&report::report(&ctx, &indices))),
        Some(Command::Lint) => unreachable!("handled before loading"),
        None if cli.reset => {
            let prefix = cli.stage.map_or(String::new(), |s| format!("{s}."));
            let removed = ctx.store.reset(&prefix).map_err(|e| e.to_string())?;
            println!("{} {removed}", ctx.t("Answers forgotten:", "已清除的作答记录："));
        }
        None if cli.list => print!("{}", report::list(&ctx, &indices)),
        None => {
            let from_file = cli.answers.as_ref().filter(|p| p.as_os_str() != "-");
            if let Some(path) = from_file {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                print!(
                    "{}",
                    batch::run(&mut ctx, &indices, &path.display().to_string(), &text).map_err(|e| e.to_string())?
                );
            } else if cli.answers.is_some() || !std::io::stdin().is_terminal() {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
                print!("{}", batch::run(&mut ctx, &indices, "<stdin>", &text).map_err(|e| e.to_string())?);
            } else {
                install_ctrlc_handler(ctx.t("Interrupted; progress saved.", "已中断，进度已保存。"));
                match session::run(&mut ctx, &indices, color) {
                    Ok(()) => {}
                    Err(session::SessionError::Interrupted) => {
                        session::restore_terminal();
                        eprintln!("\n{}", ctx.t("Interrupted; progress saved.", "已中断，进度已保存。"));
                        return Ok(ExitCode::from(130));
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stage_range(ctx: &Context) -> String {
    let stages: Vec<String> = ctx.banks.iter().map(|b| b.stage.to_string()).collect();
    stages.join(", ")
}

/// Ctrl-C outside a prompt (between questions, while printing): show the cursor and leave.
/// Progress is already saved: it is written after every answer. While a stage binary runs in
/// the foreground, the signal is the child's, and we stay.
fn install_ctrlc_handler(message: &str) {
    let message = message.to_string();
    let result = ctrlc::set_handler(move || {
        if session::CHILD_RUNNING.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        session::restore_terminal();
        eprintln!("\n{message}");
        std::process::exit(130);
    });
    if let Err(e) = result {
        eprintln!("qa: warning: cannot handle Ctrl-C ({e}); the cursor may stay hidden if you press it");
    }
}
