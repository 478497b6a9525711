//! The progress bar: one line on stderr while boots run, and nothing at all when stderr is not
//! a terminal (a log file, CI, a test).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A bar over `total` boots; hidden unless stderr is a terminal.
pub fn boots(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), draw_target(std::io::stderr().is_terminal()));
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} boots  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Prints one line above the bar, or on stderr when the bar is hidden (a log keeps it).
pub fn note(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Where the bar draws: stderr on a terminal, nowhere otherwise.
pub fn draw_target(on_terminal: bool) -> ProgressDrawTarget {
    if on_terminal {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_is_hidden_off_a_terminal() {
        assert!(draw_target(false).is_hidden());
        // In `cargo test` stderr is captured or piped, never a terminal in CI.
        if !std::io::stderr().is_terminal() {
            assert!(boots(3).is_hidden());
        }
    }
}
