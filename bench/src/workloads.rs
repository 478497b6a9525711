//! The guest workloads of `bench guest`: `labs/guest/workloads/workloads.c`, built into the lab
//! guest's initramfs by `labs/guest/build.sh` and, from the same source with the same gcc
//! command, into `target/bench/workloads` for the host. This module builds the host copy,
//! says what the guest runs, and reads the program's output lines:
//!
//! ```text
//! bench: cpu events=1600 elapsed_ns=2019950246 max_prime=10000 primes_per_event=1228
//! bench: mem op=seq_read block=1024 bytes=536870912 elapsed_ns=259427199
//! bench: fileio op=rnd_read block=4096 ops=20000 elapsed_ns=1943438609 p50_ns=46921 p95_ns=91433 p99_ns=1442433
//! ```
//!
//! and turns them into [`Figure`]s: events/s, MiB/s, IOPS, latency.

use crate::report::Measurement;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The program's source, relative to the workspace root.
pub const SOURCE: &str = "labs/guest/workloads/workloads.c";
/// Where the guest has it.
pub const GUEST_BINARY: &str = "/usr/bin/workloads";
/// gcc's flags, the same as `build_guest_programs` in `labs/guest/build.sh` (a test checks).
pub const GCC_FLAGS: &[&str] = &[
    "-static",
    "-nostdlib",
    "-ffreestanding",
    "-fno-stack-protector",
    "-fno-builtin",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-s",
];
/// Seconds of the CPU workload.
pub const CPU_SECONDS: u32 = 10;
/// The prefix of every result line.
pub const LINE_PREFIX: &str = "bench: ";

/// Why the host copy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadsError {
    /// gcc could not be started.
    #[error("cannot run gcc to build {SOURCE} for the host (apt-get install gcc): {0}")]
    Gcc(#[source] std::io::Error),
    /// gcc failed.
    #[error("gcc could not build {SOURCE} ({status}): {stderr}")]
    Build {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its messages.
        stderr: String,
    },
    /// The output folder could not be made.
    #[error("cannot create {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Builds the host copy into `dir` (gcc every time: it takes a fraction of a second) and
/// returns its path.
///
/// # Errors
/// When gcc is missing or fails.
pub fn build_host(dir: &Path) -> Result<PathBuf, WorkloadsError> {
    std::fs::create_dir_all(dir).map_err(|source| WorkloadsError::Folder { path: dir.into(), source })?;
    let binary = dir.join("workloads");
    let output = Command::new("gcc")
        .args(GCC_FLAGS)
        .arg("-o")
        .arg(&binary)
        .arg(crate::repo_root().join(SOURCE))
        .output()
        .map_err(WorkloadsError::Gcc)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(WorkloadsError::Build { status: output.status, stderr });
    }
    Ok(binary)
}

/// The three runs, as `(arguments)` after the program name: the CPU for [`CPU_SECONDS`],
/// the memory sweep, and the file I/O on `disk` (a block device in the guest, the image file
/// on the host).
pub fn runs(disk: &str) -> [Vec<String>; 3] {
    [vec!["cpu".into(), CPU_SECONDS.to_string()], vec!["mem".into()], vec!["fileio".into(), disk.into()]]
}

/// The guest's shell command (for `minivirt_run="…"`): the three runs, in one boot.
pub fn guest_command(disk: &str) -> String {
    runs(disk).iter().map(|args| format!("{GUEST_BINARY} {}", args.join(" "))).collect::<Vec<_>>().join("; ")
}

/// The result lines in `output` (a console may add `\r`, kernel messages may come between).
pub fn parse(output: &str) -> Vec<Measurement> {
    output.lines().filter_map(|line| parse_line(line.trim_end_matches('\r'))).collect()
}

/// One result line: `bench: WORKLOAD key=value …` with a numeric value except `op`.
pub fn parse_line(line: &str) -> Option<Measurement> {
    let rest = line.trim_start().strip_prefix(LINE_PREFIX)?;
    let mut words = rest.split_whitespace();
    let workload = words.next()?;
    if !["cpu", "mem", "fileio"].contains(&workload) {
        return None;
    }
    let mut measurement = Measurement { workload: workload.into(), op: String::new(), values: BTreeMap::new() };
    for word in words {
        let (key, value) = word.split_once('=')?;
        if key == "op" {
            measurement.op = value.into();
        } else {
            measurement.values.insert(key.into(), value.parse().ok()?);
        }
    }
    measurement.values.contains_key("elapsed_ns").then_some(measurement)
}

/// One figure of the table: `mem seq_read 4 KiB` in MiB/s, say.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What was measured (the row's name).
    pub name: String,
    /// Its unit.
    pub unit: &'static str,
    /// Whether more is better (rates) or worse (latency).
    pub higher_is_better: bool,
    /// The value.
    pub value: f64,
}

/// `1 KiB`, `256 KiB`, `1 MiB`.
fn block_name(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// The figures of one measurement: a rate for each, and latency percentiles for random reads.
pub fn figures(m: &Measurement) -> Vec<Figure> {
    let get = |key: &str| m.values.get(key).copied();
    let Some(ns) = get("elapsed_ns").filter(|&ns| ns > 0) else { return Vec::new() };
    let seconds = ns as f64 / 1e9;
    let rate = |name: String, unit, amount: f64| Figure { name, unit, higher_is_better: true, value: amount / seconds };
    let mib = (1u64 << 20) as f64;
    match (m.workload.as_str(), get("events"), get("bytes"), get("ops")) {
        ("cpu", Some(events), _, _) => vec![rate("cpu primes".into(), "events/s", events as f64)],
        ("mem", _, Some(bytes), _) => {
            let block = get("block").map_or_else(String::new, |b| format!(" {}", block_name(b)));
            vec![rate(format!("mem {}{block}", m.op), "MiB/s", bytes as f64 / mib)]
        }
        ("fileio", _, Some(bytes), _) => vec![rate(format!("fileio {}", m.op), "MiB/s", bytes as f64 / mib)],
        ("fileio", _, _, Some(ops)) => {
            let mut list = vec![rate(format!("fileio {} 4 KiB", m.op), "IOPS", ops as f64)];
            for p in ["p50", "p95", "p99"] {
                if let Some(latency) = get(&format!("{p}_ns")) {
                    list.push(Figure {
                        name: format!("fileio {} {p} latency", m.op),
                        unit: "µs",
                        higher_is_better: false,
                        value: latency as f64 / 1e3,
                    });
                }
            }
            list
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "MINIVIRT-GUEST-READY kernel=6.1.192 uptime=41.27\r\n\
        bench: cpu events=1600 elapsed_ns=2000000000 max_prime=10000 primes_per_event=1228\r\n\
        [   50.1] random: crng init done\r\n\
        bench: mem op=seq_read block=1024 bytes=536870912 elapsed_ns=250000000\n\
        bench: mem op=rnd_write block=1048576 bytes=536870912 elapsed_ns=500000000\n\
        bench: fileio op=seq_read block=1048576 bytes=67108864 elapsed_ns=100000000\n\
        bench: fileio op=rnd_read block=4096 ops=20000 elapsed_ns=2000000000 p50_ns=46921 p95_ns=91433 p99_ns=1442433\n\
        bench: cpu events=oops elapsed_ns=1\n\
        bench: disk op=x elapsed_ns=1\n\
        MINIVIRT-RUN-EXIT 0\n";

    #[test]
    fn result_lines_are_read_and_the_rest_is_skipped() {
        let measurements = parse(OUTPUT);
        assert_eq!(measurements.len(), 5, "{measurements:?}");
        assert_eq!(measurements[0].workload, "cpu");
        assert_eq!(measurements[0].values["events"], 1600);
        assert_eq!((measurements[1].op.as_str(), measurements[1].values["block"]), ("seq_read", 1024));
        assert_eq!(measurements[4].values["p99_ns"], 1_442_433);
        assert_eq!(parse_line("bench: cpu events=5"), None, "no elapsed time, no measurement");
    }

    #[test]
    fn figures_are_rates_and_latencies() {
        let all: Vec<Figure> = parse(OUTPUT).iter().flat_map(figures).collect();
        let named = |name: &str| all.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name}: {all:?}"));
        assert_eq!((named("cpu primes").value, named("cpu primes").unit), (800.0, "events/s"));
        assert_eq!(named("mem seq_read 1 KiB").value, 2048.0);
        assert_eq!(named("mem rnd_write 1 MiB").value, 1024.0);
        assert_eq!(named("fileio seq_read").value, 640.0);
        assert_eq!(named("fileio rnd_read 4 KiB").value, 10_000.0);
        let p95 = named("fileio rnd_read p95 latency");
        assert!((p95.value - 91.433).abs() < 1e-9 && !p95.higher_is_better && p95.unit == "µs");
    }

    #[test]
    fn the_guest_runs_all_three_in_one_command() {
        assert_eq!(
            guest_command("/dev/vda"),
            "/usr/bin/workloads cpu 10; /usr/bin/workloads mem; /usr/bin/workloads fileio /dev/vda"
        );
    }

    #[test]
    fn the_host_is_built_like_the_guest() {
        let build_sh = std::fs::read_to_string(crate::repo_root().join("labs/guest/build.sh")).unwrap();
        let at = build_sh.find("workloads/workloads.c").expect("build.sh builds the workloads");
        let command: String = build_sh[..at].rsplit("gcc ").next().unwrap().replace("\\\n", " ");
        let flags: Vec<&str> = command.split_whitespace().take_while(|w| w.starts_with('-') && *w != "-o").collect();
        assert_eq!(flags, GCC_FLAGS, "the guest's gcc flags in build.sh and the host's here differ");
    }

    #[test]
    fn the_host_copy_builds_and_runs() {
        let dir = std::env::temp_dir().join(format!("bench-workloads-{}", std::process::id()));
        let binary = build_host(&dir).unwrap();
        let output = Command::new(&binary).args(["cpu", "1"]).output().unwrap();
        let measurements = parse(&String::from_utf8_lossy(&output.stdout));
        assert_eq!(measurements.len(), 1, "{output:?}");
        assert_eq!(measurements[0].values["primes_per_event"], 1228, "the primes below 10000, less 2");
        assert!(measurements[0].values["elapsed_ns"] >= 1_000_000_000);
        let usage = Command::new(&binary).arg("fly").output().unwrap();
        assert_eq!(usage.status.code(), Some(2));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
