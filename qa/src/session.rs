//! The interactive session: welcome, the stages and their progress, then phase by phase an
//! introduction, the questions one at a time, and an offer to run the stage live.
//!
//! Choices are shown in an order of the student's own, the same each time a question comes
//! back (see [`crate::shuffle`]). Progress is saved after every question, so quitting (`q`/Esc in a menu, `:q` in a text
//! answer) or Ctrl-C loses nothing already answered. Dialoguer hides the cursor while a menu is
//! open; every way out of a prompt shows it again (see [`restore_terminal`]).

use crate::bank::{AnswerSpec, Bank, Question};
use crate::context::Context;
use crate::marking::{self, Response};
use crate::progress::ProgressError;
use crate::{markers, report, show, shuffle};
use colored::Colorize;
use dialoguer::console::Term;
use dialoguer::theme::{ColorfulTheme, SimpleTheme, Theme};
use dialoguer::{Confirm, Input, MultiSelect, Select};
use std::sync::atomic::{AtomicBool, Ordering};

/// Attempts a student gets per question: a wrong answer may be retried once.
pub const MAX_ATTEMPTS: u32 = 2;

/// Set while a stage binary runs in the foreground: Ctrl-C is then the child's to handle.
pub static CHILD_RUNNING: AtomicBool = AtomicBool::new(false);

/// Why a session ended early.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Ctrl-C at a prompt.
    #[error("interrupted")]
    Interrupted,
    /// The terminal failed.
    #[error("terminal error: {0}")]
    Terminal(#[source] std::io::Error),
    /// Progress could not be saved.
    #[error(transparent)]
    Progress(#[from] ProgressError),
}

impl From<dialoguer::Error> for SessionError {
    fn from(error: dialoguer::Error) -> Self {
        let dialoguer::Error::IO(e) = error;
        if e.kind() == std::io::ErrorKind::Interrupted {
            SessionError::Interrupted
        } else {
            SessionError::Terminal(e)
        }
    }
}

/// Shows the cursor again and ends the current line: what the terminal looked like before.
pub fn restore_terminal() {
    let term = Term::stderr();
    let _ = term.show_cursor();
    let _ = Term::stdout().show_cursor();
}

/// What the student did at a prompt.
enum Step {
    Answer(Response),
    Hint,
    Quit,
}

/// Whether the session goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// Runs the session over the banks in `indices` (all, or the one `--stage` names).
///
/// # Errors
/// [`SessionError::Interrupted`] on Ctrl-C (progress is saved), or a terminal or save error.
pub fn run(ctx: &mut Context, indices: &[usize], color: bool) -> Result<(), SessionError> {
    let theme: Box<dyn Theme> = if color { Box::new(ColorfulTheme::default()) } else { Box::new(SimpleTheme) };
    let theme = theme.as_ref();
    println!("\n{}", ctx.t("minivirt — questions on the code of each stage", "minivirt —— 逐阶段读代码问答").bold());
    println!(
        "{}\n",
        ctx.t(
            "Answer each question; a wrong answer may be retried once. Menus: arrows/j/k, Enter; q quits. Text: `?` for a hint, `:q` quits.",
            "逐题作答，答错可再试一次。菜单：方向键或 j/k 移动、回车确认、q 退出；填空：输入 `?` 看提示，`:q` 退出。"
        )
    );
    print!("{}", report::stage_list(ctx, &ctx.selected(None)));
    let pending: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| ctx.banks[i].questions.iter().any(|q| !ctx.record(&ctx.banks[i], q).answered))
        .collect();
    let Some(&first) = pending.first() else {
        println!(
            "\n{}",
            ctx.t(
                "Every question here is answered. `qa --reset --stage N` starts a stage again.",
                "这里的题目都已答完。用 `qa --reset --stage N` 可以重做某个阶段。"
            )
        );
        return Ok(());
    };
    let start = indices.iter().position(|&i| i == first).unwrap_or(0);
    for (n, &i) in indices.iter().enumerate().skip(start) {
        if run_phase(ctx, i, theme)? == Flow::Quit {
            println!("{}", ctx.t("Progress saved. Run `qa` again to go on.", "进度已保存，再次运行 `qa` 即可继续。"));
            return Ok(());
        }
        let Some(&next) = indices.get(n + 1) else { break };
        let prompt =
            format!("{} → {} {}", ctx.t("Next phase", "进入下一阶段"), ctx.t("stage", "阶段"), ctx.banks[next].stage);
        if Confirm::with_theme(theme).with_prompt(prompt).default(true).interact_opt()? != Some(true) {
            println!("{}", ctx.t("Progress saved. Run `qa` again to go on.", "进度已保存，再次运行 `qa` 即可继续。"));
            return Ok(());
        }
    }
    if indices.len() == 1 && indices[0] + 1 < ctx.banks.len() {
        println!(
            "\n{}",
            ctx.t(
                "Phase done. `qa` alone goes on with the next stages.",
                "本阶段完成。直接运行 `qa` 可继续后面的阶段。"
            )
        );
    } else {
        println!(
            "\n{}",
            ctx.t(
                "That was the last phase. `qa report` shows your scores.",
                "所有阶段都完成了。`qa report` 可查看得分。"
            )
        );
    }
    Ok(())
}

/// One phase: the stage's introduction, its unanswered questions, the live-run offer.
fn run_phase(ctx: &mut Context, index: usize, theme: &dyn Theme) -> Result<Flow, SessionError> {
    let bank = ctx.banks[index].clone();
    let heading = format!("══ {} {}: {} ══", ctx.t("Phase", "阶段"), bank.stage, bank.title.get(ctx.lang));
    println!("\n{}\n{}\n", heading.bold().blue(), bank.intro.get(ctx.lang));
    for (n, question) in bank.questions.iter().enumerate() {
        if ctx.record(&bank, question).answered {
            continue;
        }
        if ask(ctx, &bank, n, question, theme)? == Flow::Quit {
            return Ok(Flow::Quit);
        }
    }
    let score = report::report(ctx, &[index]).stages.remove(0);
    println!(
        "\n{} {}: {}/{} {}",
        ctx.t("Stage", "阶段"),
        bank.stage,
        score.correct,
        score.questions,
        ctx.t("right", "题答对")
    );
    let offer =
        format!("{} `cargo run --bin {}`?", ctx.t("Run this stage live now:", "现在运行本阶段的程序"), bank.binary);
    if Confirm::with_theme(theme).with_prompt(offer).default(false).interact_opt()? == Some(true) {
        run_live(ctx, &bank);
    }
    Ok(Flow::Continue)
}

/// Asks one question, with up to [`MAX_ATTEMPTS`] attempts, and records the outcome.
fn ask(ctx: &mut Context, bank: &Bank, n: usize, question: &Question, theme: &dyn Theme) -> Result<Flow, SessionError> {
    let key = bank.key(question);
    // The choices in this student's order for this question, relabelled a, b, c… (see shuffle).
    let question = &shuffle::shown(question, ctx.store.seed()?, &key);
    println!("\n{}", show::question_heading(bank, n, question, ctx.lang));
    let excerpt = question.marker.as_ref().map(|name| markers::find(&ctx.repo, &question.file, name));
    let excerpt = match excerpt {
        Some(Ok(excerpt)) => {
            print!("{}", show::excerpt(&excerpt));
            Some(excerpt)
        }
        Some(Err(e)) => {
            println!("{} {e} ({})", "!".red(), ctx.t("run `qa lint`", "请运行 `qa lint`"));
            None
        }
        None => None,
    };
    println!("{}", question.prompt.get(ctx.lang).bold());
    let mut record = ctx.record(bank, question);
    record.attempts = 0;
    while record.attempts < MAX_ATTEMPTS {
        let response = match prompt(ctx, question, theme, !record.hint_used)? {
            Step::Quit => return Ok(Flow::Quit),
            Step::Hint => {
                record.hint_used = true;
                println!("{} {}", ctx.t("Hint:", "提示：").yellow().bold(), question.hint.get(ctx.lang));
                continue;
            }
            Step::Answer(response) => response,
        };
        record.attempts += 1;
        record.correct = marking::is_correct(question, &response);
        if record.correct {
            println!("{}", ctx.t("✓ Right.", "✓ 正确。").green().bold());
            break;
        }
        if record.attempts < MAX_ATTEMPTS {
            println!("{}", ctx.t("✗ Not right. One more try.", "✗ 不对，还有一次机会。").red().bold());
        } else {
            let expected = marking::expected(question, ctx.lang);
            println!("{} {expected}", ctx.t("✗ Wrong. The answer:", "✗ 答错了。正确答案：").red().bold());
        }
    }
    record.answered = true;
    println!("{} {}", ctx.t("Why:", "解析：").bold(), question.explain.get(ctx.lang));
    println!("{} {}", ctx.t("→ Read:", "→ 代码位置：").dimmed(), show::pointer(question, excerpt.as_ref()).underline());
    ctx.store.record(&key, record)?;
    Ok(Flow::Continue)
}

/// One prompt for `question`: a menu for choices, a line for text or an order.
fn prompt(ctx: &Context, question: &Question, theme: &dyn Theme, offer_hint: bool) -> Result<Step, SessionError> {
    let hint_item = ctx.t("(show the hint)", "（看提示）").to_string();
    match &question.answer {
        AnswerSpec::Choices { choices, multiple, .. } => {
            let mut items: Vec<String> =
                choices.iter().map(|c| format!("{}) {}", c.key, c.text.get(ctx.lang))).collect();
            if offer_hint {
                items.push(hint_item);
            }
            let hint_index = choices.len();
            if *multiple {
                let prompt = ctx
                    .t("Pick every right one (Space toggles, Enter confirms)", "选出所有正确项（空格选中，回车确认）");
                let picked = MultiSelect::with_theme(theme).with_prompt(prompt).items(&items).interact_opt()?;
                Ok(match picked {
                    None => Step::Quit,
                    Some(picked) if picked.contains(&hint_index) => Step::Hint,
                    Some(picked) => {
                        Step::Answer(Response::Choices(picked.iter().map(|&i| choices[i].key.clone()).collect()))
                    }
                })
            } else {
                let prompt = ctx.t("Your answer", "你的答案");
                let picked = Select::with_theme(theme).with_prompt(prompt).items(&items).default(0).interact_opt()?;
                Ok(match picked {
                    None => Step::Quit,
                    Some(i) if i == hint_index => Step::Hint,
                    Some(i) => Step::Answer(Response::Choices(vec![choices[i].key.clone()])),
                })
            }
        }
        AnswerSpec::Order { choices, .. } => {
            for c in choices {
                println!("  {}) {}", c.key, c.text.get(ctx.lang));
            }
            let prompt = if offer_hint {
                ctx.t(
                    "Your answer: the keys from first to last, e.g. `c a b` (? hint, :q quit)",
                    "你的答案：按从先到后的顺序写出各项的字母，例如 `c a b`（? 提示，:q 退出）",
                )
            } else {
                ctx.t(
                    "Your answer: the keys from first to last, e.g. `c a b` (:q quit)",
                    "你的答案：按从先到后的顺序写出各项的字母，例如 `c a b`（:q 退出）",
                )
            };
            typed(theme, prompt, offer_hint, |text| Response::Choices(marking::parse_key_sequence(&text)))
        }
        AnswerSpec::Text { numeric, .. } => {
            let prompt = match (numeric, offer_hint) {
                (true, true) => {
                    ctx.t("Your answer (any base; ? hint, :q quit)", "你的答案（任意进制；? 提示，:q 退出）")
                }
                (true, false) => ctx.t("Your answer (any base; :q quit)", "你的答案（任意进制；:q 退出）"),
                (false, true) => ctx.t("Your answer (? hint, :q quit)", "你的答案（? 提示，:q 退出）"),
                (false, false) => ctx.t("Your answer (:q quit)", "你的答案（:q 退出）"),
            };
            typed(theme, prompt, offer_hint, Response::Text)
        }
    }
}

/// A typed line: `:q` quits, `?` asks for the hint (when offered), anything else is an answer.
fn typed(
    theme: &dyn Theme,
    prompt: &str,
    offer_hint: bool,
    answer: impl Fn(String) -> Response,
) -> Result<Step, SessionError> {
    // An empty line is a slip of the Enter key, not an attempt: ask again.
    let text: String = loop {
        let text: String = Input::with_theme(theme).with_prompt(prompt).allow_empty(true).interact_text()?;
        if !marking::normalise(&text).is_empty() {
            break text;
        }
    };
    Ok(match marking::normalise(&text).as_str() {
        ":q" | ":quit" => Step::Quit,
        "?" if offer_hint => Step::Hint,
        _ => Step::Answer(answer(text)),
    })
}

/// Whether the stage's binary exists yet (stages 5–7 get theirs while this is written).
fn binary_exists(ctx: &Context, bank: &Bank) -> bool {
    let dir = ctx.repo.join(&bank.dir);
    dir.join("src/main.rs").is_file() || dir.join(format!("src/bin/{}.rs", bank.binary)).is_file()
}

/// `cargo run --bin stageNN`, in the foreground, with the terminal handed over to it.
fn run_live(ctx: &Context, bank: &Bank) {
    if !binary_exists(ctx, bank) {
        println!(
            "{} {} {}",
            "!".yellow(),
            bank.binary.bold(),
            ctx.t(
                "does not exist yet (no src/main.rs in its stage); update your tree and try again later.",
                "还不存在（该阶段还没有 src/main.rs），请更新代码后再试。"
            )
        );
        return;
    }
    let args = if bank.run_args.is_empty() { String::new() } else { format!(" -- {}", bank.run_args.join(" ")) };
    println!("{} cargo run --bin {}{args}", "$".dimmed(), bank.binary);
    CHILD_RUNNING.store(true, Ordering::SeqCst);
    let status = std::process::Command::new("cargo")
        .args(["run", "--quiet", "--bin", &bank.binary, "--"])
        .args(&bank.run_args)
        .current_dir(&ctx.repo)
        .status();
    CHILD_RUNNING.store(false, Ordering::SeqCst);
    restore_terminal();
    match status {
        Ok(status) if status.success() => {
            println!("{}", ctx.t("(the stage exited cleanly)", "（程序正常退出）").dimmed())
        }
        Ok(status) => println!("{} {status}", ctx.t("(the stage exited with", "（程序退出状态").dimmed()),
        Err(e) => println!("{} cargo: {e}", "!".red()),
    }
}
