//! Scores per stage, for students (`--list`, the welcome screen) and for graders
//! (`qa report --json`).

use crate::context::Context;
use crate::show;
use colored::Colorize;
use serde::Serialize;

/// One stage's score.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageScore {
    /// Stage number.
    pub stage: u32,
    /// Stage name.
    pub name: String,
    /// Questions in the bank.
    pub questions: usize,
    /// Questions finished.
    pub answered: usize,
    /// Questions answered right (on either attempt).
    pub correct: usize,
    /// Questions answered right on the first attempt.
    pub first_try: usize,
    /// Questions whose hint was shown.
    pub hints: usize,
    /// `correct / questions`, 0 to 1.
    pub score: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per stage, in order.
    pub stages: Vec<StageScore>,
    /// All stages together (`stage` 0, `name` "total").
    pub total: StageScore,
}

/// Computes the scores of the banks in `indices`.
pub fn report(ctx: &Context, indices: &[usize]) -> Report {
    let mut total = StageScore { name: "total".into(), ..Default::default() };
    let mut stages = Vec::new();
    for &i in indices {
        let bank = &ctx.banks[i];
        let mut score = StageScore { stage: bank.stage, name: bank.name.clone(), ..Default::default() };
        for q in &bank.questions {
            let record = ctx.record(bank, q);
            score.questions += 1;
            score.answered += usize::from(record.answered);
            score.correct += usize::from(record.answered && record.correct);
            score.first_try += usize::from(record.answered && record.correct && record.attempts == 1);
            score.hints += usize::from(record.hint_used);
        }
        score.score = ratio(score.correct, score.questions);
        total.questions += score.questions;
        total.answered += score.answered;
        total.correct += score.correct;
        total.first_try += score.first_try;
        total.hints += score.hints;
        stages.push(score);
    }
    total.score = ratio(total.correct, total.questions);
    Report { stages, total }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 1000.0).round() / 1000.0
    }
}

/// The stage list with a progress bar each, as the welcome screen and `--list` show it.
pub fn stage_list(ctx: &Context, indices: &[usize]) -> String {
    let mut out = String::new();
    for (&i, score) in indices.iter().zip(report(ctx, indices).stages) {
        let bank = &ctx.banks[i];
        let title = format!("{} {:<2}", ctx.t("Stage", "阶段"), bank.stage);
        let bar = show::progress_bar(score.answered, score.correct, score.questions);
        out.push_str(&format!("  {}  {bar}  {}\n", title.bold(), bank.title.get(ctx.lang)));
    }
    out
}

/// `--list`: the stage list, then each question's state.
pub fn list(ctx: &Context, indices: &[usize]) -> String {
    let mut out = stage_list(ctx, indices);
    for &i in indices {
        let bank = &ctx.banks[i];
        out.push_str(&format!("\n{} {} — {}\n", ctx.t("Stage", "阶段"), bank.stage, bank.title.get(ctx.lang)));
        for q in &bank.questions {
            let record = ctx.record(bank, q);
            let mark = match (record.answered, record.correct) {
                (false, _) => "·".dimmed(),
                (true, true) => "✓".green(),
                (true, false) => "✗".red(),
            };
            out.push_str(&format!("  {mark} {:<24} {}\n", bank.key(q), q.kind.label(ctx.lang).dimmed()));
        }
    }
    out
}

/// The plain-text score table of `qa report`.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "{:<6} {:<12} {:>9} {:>8} {:>7} {:>9} {:>6}\n",
        "stage", "name", "questions", "answered", "correct", "first try", "score"
    );
    for s in report.stages.iter().chain(std::iter::once(&report.total)) {
        let stage = if s.stage == 0 { String::new() } else { s.stage.to_string() };
        out.push_str(&format!(
            "{stage:<6} {:<12} {:>9} {:>8} {:>7} {:>9} {:>5.0}%\n",
            s.name,
            s.questions,
            s.answered,
            s.correct,
            s.first_try,
            s.score * 100.0
        ));
    }
    out
}
