//! Booting a minivirt stage: which binary, which flags, and where each figure comes from.
//!
//! Stage 8 and later write their statistics with `--stats-json FILE`
//! (`stages/08-inspect/schema/stats.schema.json`): exits by reason and by guest function, the
//! boot timeline (the boot timer at port 0x3f0 marks boot-complete) and the VMM's memory
//! (resident set minus guest RAM touched, read from the VMM's own smaps when the VM stops).
//! Stages 4–7 only print `stageNN: ran … s: N exits (P port I/O, M MMIO)` on stderr.
//! The memory overhead in the table is read by `bench` from the VMM's smaps at the marker
//! line, for every stage and for QEMU alike ([`crate::smaps`]); stage 8's figure at the stop
//! is the fallback when that sample failed.

use crate::report::{BootRun, ExitCounts, FunctionExits};
use crate::smaps::{self, GuestRam};
use crate::vmm::{self, Launch, VmmError};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The first stage that boots Linux.
pub const FIRST_BOOTING_STAGE: u8 = 4;
/// The first stage with `--stats-json`.
pub const FIRST_STATS_STAGE: u8 = 8;
/// The last stage, booted by default.
pub const LAST_STAGE: u8 = 8;
/// How many guest functions a run keeps.
pub const TOP_FUNCTIONS: usize = 8;

/// Why a stage binary could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MinivirtError {
    /// `cargo build` could not run.
    #[error("cannot run cargo to build stage{stage:02}: {source}")]
    Cargo {
        /// The stage.
        stage: u8,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `cargo build` failed.
    #[error("cargo build of stage{stage:02} failed ({status}); its messages are above")]
    Build {
        /// The stage.
        stage: u8,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
}

/// The stage's package and binary name: `stage08`.
pub fn binary_name(stage: u8) -> String {
    format!("stage{stage:02}")
}

/// The cargo profile bench builds a stage with (the workspace's `Cargo.toml`).
pub const VMM_PROFILE: &str = "vmm";
/// The target bench builds for: named explicitly so that the static flag applies to the VMM
/// only, not to build scripts and proc macros (which cannot be static).
pub const VMM_TARGET: &str = "x86_64-unknown-linux-gnu";
/// The flag that links the C library into the binary.
pub const STATIC_FLAG: &str = "-C target-feature=+crt-static";

/// Builds the stage's binary as one would ship it — profile [`VMM_PROFILE`], linked statically
/// (cargo does nothing if it is up to date) — and returns its path in the target folder. A
/// dynamic binary maps the whole C library, whose pages count in its resident set.
///
/// # Errors
/// When cargo cannot run or the build fails.
pub fn build_stage(stage: u8) -> Result<PathBuf, MinivirtError> {
    let name = binary_name(stage);
    let root = crate::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // RUSTFLAGS from the environment would replace any other setting: add to it.
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{flags} {STATIC_FLAG}"),
        _ => STATIC_FLAG.to_string(),
    };
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--profile", VMM_PROFILE, "--target", VMM_TARGET])
        .args(["-p", &name, "--bin", &name, "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .env("RUSTFLAGS", rustflags)
        .status()
        .map_err(|source| MinivirtError::Cargo { stage, source })?;
    if !status.success() {
        return Err(MinivirtError::Build { stage, status });
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join(VMM_TARGET).join(VMM_PROFILE).join(name))
}

/// How to boot one stage.
#[derive(Debug, Clone)]
pub struct MinivirtBoot {
    /// The stage binary.
    pub binary: PathBuf,
    /// Its stage number (what it can report depends on it).
    pub stage: u8,
    /// The guest command-line options to add (`--append`).
    pub append: String,
    /// Extra VMM flags (an experiment's switch).
    pub flags: Vec<String>,
    /// When to give up.
    pub timeout: Duration,
}

impl MinivirtBoot {
    /// Boots once, with the statistics written to a file in `work`.
    ///
    /// # Errors
    /// When the binary cannot be started.
    pub fn run(&self, work: &Path) -> Result<BootRun, VmmError> {
        Ok(self.run_with_console(work)?.0)
    }

    /// Boots once like [`MinivirtBoot::run`], and also returns what the guest printed on its
    /// console (the VMM's stdout).
    ///
    /// # Errors
    /// When the binary cannot be started.
    pub fn run_with_console(&self, work: &Path) -> Result<(BootRun, String), VmmError> {
        let stats_path = work.join(format!("stats-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&stats_path);
        let mut args = self.flags.clone();
        if self.stage >= FIRST_STATS_STAGE {
            args.extend(["--stats-json".to_string(), stats_path.display().to_string()]);
        }
        args.extend(["--append".to_string(), self.append.clone()]);
        let launch = Launch { program: self.binary.clone(), args, timeout: self.timeout, stop_when_ready: false };
        let outcome = vmm::run(&launch, |pid| smaps::read(pid, GuestRam::SharedAnonymous))?;
        let mut run = outcome.boot_run();
        match std::fs::read_to_string(&stats_path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
            Some(stats) => apply_stats(&mut run, &stats),
            None => run.exits = exits_from_summary_line(&outcome.stderr),
        }
        // Measured at the marker, as QEMU's: stage 8's own figure is taken when the VM stops.
        if outcome.at_ready.is_some() {
            smaps::record(&mut run, outcome.at_ready, "minivirt", GuestRam::SharedAnonymous);
        }
        let _ = std::fs::remove_file(&stats_path);
        Ok((run, outcome.stdout))
    }
}

/// Takes exits, boot timer and memory from stage 8's statistics JSON.
pub fn apply_stats(run: &mut BootRun, stats: &Value) {
    let exits = &stats["exits"];
    if let Some(total) = exits["total"].as_u64() {
        let reasons = exits["reasons"].as_array().into_iter().flatten();
        let functions = stats["hot_spots"]["functions"].as_array().into_iter().flatten();
        run.exits = Some(ExitCounts {
            total,
            by_reason: reasons
                .filter_map(|r| Some((r["reason"].as_str()?.to_string(), r["count"].as_u64()?)))
                .collect(),
            top_functions: functions
                .filter_map(|f| {
                    Some(FunctionExits { function: f["function"].as_str()?.into(), exits: f["exits"].as_u64()? })
                })
                .take(TOP_FUNCTIONS)
                .collect(),
        });
    }
    let events = stats["timeline"]["events"].as_array().into_iter().flatten();
    run.boot_timer_s = events
        .filter(|e| e["event"] == "boot_complete")
        .find_map(|e| e["since_start_ns"].as_u64())
        .map(|ns| ns as f64 / 1e9);
    let counters = stats["kvm"]["counters"].as_array().into_iter().flatten();
    run.emulated_instructions = counters.filter(|c| c["name"] == "insn_emulation").find_map(|c| c["value"].as_u64());
    if let Some(overhead) = stats["memory"]["overhead_bytes"].as_u64() {
        run.overhead_bytes = Some(overhead);
        run.overhead_source =
            Some("stage 8's --stats-json memory section (smaps of the VMM when the VM stopped)".into());
    }
}

/// Stages 4–7: `stageNN: ran 81.2 s: 87012 exits (21345 port I/O, 65667 MMIO)` on stderr.
pub fn exits_from_summary_line(stderr: &str) -> Option<ExitCounts> {
    let line = stderr.lines().find(|l| l.contains(": ran ") && l.contains(" exits ("))?;
    let number_before = |text: &str, word: &str| -> Option<u64> {
        let end = text.find(word)?;
        text[..end].split_whitespace().last()?.trim_start_matches('(').parse().ok()
    };
    let total = number_before(line, " exits")?;
    let io = number_before(line, " port I/O")?;
    let mmio = number_before(line, " MMIO")?;
    Some(ExitCounts {
        total,
        by_reason: [("port_io".to_string(), io), ("mmio".to_string(), mmio)].into(),
        top_functions: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_json_gives_exits_timer_and_memory() {
        let stats: Value = serde_json::from_str(
            r#"{"exits": {"total": 12, "vmm_ns": 5, "reasons": [{"reason": "io_out", "count": 7}, {"reason": "mmio_read", "count": 5}]},
                "hot_spots": {"functions": [{"function": "serial8250_tx_chars", "exits": 7}]},
                "timeline": {"events": [{"event": "first_instruction", "since_start_ns": 1000},
                                        {"event": "boot_complete", "since_start_ns": 81500000000}]},
                "kvm": {"offered": true, "counters": [{"name": "exits", "value": 40}, {"name": "insn_emulation", "value": 24138749}]},
                "memory": {"vmm_rss_bytes": 300, "guest_rss_bytes": 100, "overhead_bytes": 200}}"#,
        )
        .unwrap();
        let mut run = BootRun::default();
        apply_stats(&mut run, &stats);
        let exits = run.exits.unwrap();
        assert_eq!((exits.total, exits.by_reason["io_out"], exits.by_reason["mmio_read"]), (12, 7, 5));
        assert_eq!(exits.top_functions, [FunctionExits { function: "serial8250_tx_chars".into(), exits: 7 }]);
        assert_eq!(run.boot_timer_s, Some(81.5));
        assert_eq!(run.overhead_bytes, Some(200));
        assert_eq!(run.emulated_instructions, Some(24_138_749));
    }

    #[test]
    fn a_host_without_kvm_counters_gives_no_instruction_count() {
        let stats: Value = serde_json::from_str(r#"{"kvm": {"offered": false, "counters": []}}"#).unwrap();
        let mut run = BootRun::default();
        apply_stats(&mut run, &stats);
        assert_eq!(run.emulated_instructions, None);
    }

    #[test]
    fn earlier_stages_give_their_summary_line() {
        let exits =
            exits_from_summary_line("x\nstage04: ran 81.2 s: 87012 exits (21345 port I/O, 65667 MMIO)\n").unwrap();
        assert_eq!((exits.total, exits.by_reason["port_io"], exits.by_reason["mmio"]), (87012, 21345, 65667));
        assert_eq!(exits_from_summary_line("stage04: cannot open /dev/kvm"), None);
    }
}
