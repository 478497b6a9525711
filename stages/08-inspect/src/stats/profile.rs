//! A sampling profile of the guest: where its vCPUs are when the VMM looks.
//!
//! The VMM kicks each vCPU out of `KVM_RUN` a fixed number of times a second, reads its RIP and
//! privilege level, and counts. Many samples at one kernel function mean the guest spends its
//! time there — on a nested host like this course's, the answer to "why does the boot take a
//! minute". User-mode samples are counted as one line: user programs have no `System.map`.
//!
//! Samples come at a few hundred a second, so a mutex-protected map is cheap enough; its size
//! is bounded by [`MAX_PROFILE_RIPS`], samples at further RIPs are counted apart.
//!
//! # Resources
//! - Brendan Gregg, "CPU Flame Graphs" (sampling profilers): <https://www.brendangregg.com/FlameGraphs/cpuflamegraphs.html>.

use crate::symbols::SymbolTable;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// Distinct kernel RIPs counted one by one; samples at others count as untracked.
pub const MAX_PROFILE_RIPS: usize = 65536;
/// The line that stands for every user-mode sample.
pub const USER_MODE_LINE: &str = "[user mode]";
/// The line for kernel-mode samples no symbol covers (or that were not tracked).
pub const UNKNOWN_LINE: &str = "[unknown]";

#[derive(Debug, Default)]
struct Samples {
    kernel: HashMap<u64, u64>,
    untracked_kernel: u64,
    user: u64,
}

/// The samples taken so far.
#[derive(Debug, Default)]
pub struct Profile {
    samples: Mutex<Samples>,
}

impl Profile {
    /// An empty profile.
    pub fn new() -> Profile {
        Profile::default()
    }

    /// Counts one sample: a vCPU was at `rip`, in user mode (CPL 3) or not.
    pub fn record(&self, rip: u64, user_mode: bool) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if user_mode {
            samples.user += 1;
        } else if samples.kernel.len() < MAX_PROFILE_RIPS || samples.kernel.contains_key(&rip) {
            *samples.kernel.entry(rip).or_default() += 1;
        } else {
            samples.untracked_kernel += 1;
        }
    }

    /// The top `top` lines by samples: kernel functions (resolved through `symbols`; raw RIPs
    /// without them), the user-mode line, and a line for the rest.
    pub fn report(&self, symbols: Option<&SymbolTable>, top: usize) -> ProfileReport {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines: HashMap<String, u64> = HashMap::new();
        for (&rip, &count) in &samples.kernel {
            let name = match symbols {
                Some(symbols) => symbols.lookup(rip).map_or(UNKNOWN_LINE.to_string(), |l| l.symbol.name.to_string()),
                None => format!("{rip:#x}"),
            };
            *lines.entry(name).or_default() += count;
        }
        if samples.untracked_kernel > 0 {
            *lines.entry(UNKNOWN_LINE.to_string()).or_default() += samples.untracked_kernel;
        }
        if samples.user > 0 {
            lines.insert(USER_MODE_LINE.to_string(), samples.user);
        }
        let total: u64 = lines.values().sum();
        let mut rows: Vec<ProfileRow> =
            lines.into_iter().map(|(function, samples)| ProfileRow { function, samples }).collect();
        // Most samples first; names break ties so that reports are stable.
        rows.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.function.cmp(&b.function)));
        let other_samples = rows.iter().skip(top).map(|r| r.samples).sum();
        rows.truncate(top);
        ProfileReport { samples: total, user_mode_samples: samples.user, rows, other_samples }
    }
}

/// One line of the profile: a guest function (or the user-mode line) and its samples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileRow {
    /// The function, [`USER_MODE_LINE`] or [`UNKNOWN_LINE`].
    pub function: String,
    /// Samples there.
    pub samples: u64,
}

/// The profile for `--profile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileReport {
    /// Samples in all.
    pub samples: u64,
    /// Of those, in user mode.
    pub user_mode_samples: u64,
    /// The top lines, most samples first.
    pub rows: Vec<ProfileRow>,
    /// Samples in the lines below the top ones.
    pub other_samples: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "ffffffff81000000 T startup_64\nffffffff81100000 T memcpy\nffffffff81200000 T default_idle\n";

    #[test]
    fn kernel_samples_are_grouped_by_function_and_user_samples_into_one_line() {
        let profile = Profile::new();
        for offset in 0..30 {
            profile.record(0xffff_ffff_8110_0000 + offset, false); // memcpy, 30 RIPs
        }
        for _ in 0..10 {
            profile.record(0xffff_ffff_8120_0010, false);
        }
        profile.record(0x40_1000, true);
        profile.record(0x7fff_0000_0000, true);
        profile.record(0x1000, false); // kernel mode below every symbol
        let symbols = SymbolTable::parse(MAP, "map").unwrap();
        let report = profile.report(Some(&symbols), 10);
        let rows: Vec<(&str, u64)> = report.rows.iter().map(|r| (r.function.as_str(), r.samples)).collect();
        assert_eq!(rows, [("memcpy", 30), ("default_idle", 10), ("[user mode]", 2), ("[unknown]", 1)]);
        assert_eq!((report.samples, report.user_mode_samples, report.other_samples), (43, 2, 0));
    }

    #[test]
    fn lines_below_the_top_are_summed_and_raw_rips_shown_without_symbols() {
        let profile = Profile::new();
        for (rip, n) in [(0xffff_ffff_8100_0000u64, 3), (0xffff_ffff_8100_0008, 2), (0xffff_ffff_8100_0010, 1)] {
            for _ in 0..n {
                profile.record(rip, false);
            }
        }
        let report = profile.report(None, 1);
        assert_eq!(report.rows, [ProfileRow { function: "0xffffffff81000000".into(), samples: 3 }]);
        assert_eq!(report.other_samples, 3);
    }
}
