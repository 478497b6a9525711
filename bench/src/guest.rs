//! `bench guest`: the same workloads in the guest and on the host (the seed report's sysbench
//! rows), as a table of host, guest and guest/host per figure, and a plot of the ratios.
//!
//! One boot runs every workload (a boot costs minutes on a nested-KVM host): the guest gets a
//! fresh scratch disk as `/dev/vda` and runs `workloads cpu`, `mem` and `fileio /dev/vda` from
//! `minivirt_run`; then the host runs the same program on the same image file.
//!
//! # Resources
//! - sysbench's cpu, memory and fileio tests: <https://github.com/akopytov/sysbench>.

use crate::markdown;
use crate::plot::{self, PlotError};
use crate::report::{BenchReport, WorkloadReport, WorkloadRun};
use crate::summary::Summary;
use crate::workloads::{self, Figure};
use plotters::prelude::*;
use std::fmt::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Result lines one complete run prints: cpu, 6 block sizes × 4 memory operations, and
/// sequential write, sequential read and random read.
pub const EXPECTED_LINES: usize = 1 + 6 * 4 + 3;
/// The scratch disk's default size.
pub const DEFAULT_DISK_MIB: u64 = 64;

/// Goals of the issue: a figure's guest/host ratio and the least it should be.
pub const GOALS: &[(&str, f64, &str)] = &[
    ("cpu primes", 0.95, "guest CPU within 5 % of the host"),
    ("fileio seq_read", 0.70, "virtio-blk sequential read at least 70 % of the host's"),
];

/// (Re)creates the scratch disk: `bytes` of zeros (sparse), so every run starts alike. Its
/// folder is made too: `bench exits` may be the first command to write under `target/bench`.
///
/// # Errors
/// When the file cannot be written.
pub fn create_disk(path: &Path, bytes: u64) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::File::create(path)?;
    file.set_len(bytes)
}

/// What one guest boot printed, as a run: its result lines, and why some are missing (the
/// program's own error line, the shell's exit status), if some are.
pub fn guest_run(console: &str) -> WorkloadRun {
    let measurements = workloads::parse(console);
    let exit = console.lines().find_map(|l| l.trim().strip_prefix("MINIVIRT-RUN-EXIT "));
    let errors: Vec<&str> = console.lines().map(str::trim).filter(|l| l.starts_with("workloads: ")).collect();
    let failure = if measurements.len() >= EXPECTED_LINES && errors.is_empty() {
        None
    } else {
        let mut why = format!("the guest printed {} of {EXPECTED_LINES} results", measurements.len());
        match exit {
            Some(status) => {
                let _ = write!(why, " (exit status {status})");
            }
            None => why.push_str(" (no MINIVIRT-RUN-EXIT line)"),
        }
        if !errors.is_empty() {
            let _ = write!(why, ": {}", errors.join("; "));
        }
        Some(why)
    };
    WorkloadRun { measurements, failure }
}

/// Runs the three workloads on the host with `binary`, the file I/O on `disk`; stops between
/// them at Ctrl-C. Each runs in its own process group with stdin from /dev/null, like a VMM.
pub fn host_run(binary: &Path, disk: &Path) -> WorkloadRun {
    let mut run = WorkloadRun::default();
    for args in workloads::runs(&disk.display().to_string()) {
        if crate::interrupt::interrupted() {
            run.failure = Some("interrupted (Ctrl-C)".into());
            break;
        }
        let output = Command::new(binary).args(&args).stdin(Stdio::null()).process_group(0).output();
        match output {
            Ok(out) => {
                run.measurements.extend(workloads::parse(&String::from_utf8_lossy(&out.stdout)));
                if !out.status.success() {
                    let message = String::from_utf8_lossy(&out.stderr);
                    run.failure =
                        Some(format!("{} {}: {}", args.join(" "), out.status, crate::vmm::last_line(&message)));
                    break;
                }
            }
            Err(e) => {
                run.failure = Some(format!("cannot run {}: {e}", binary.display()));
                break;
            }
        }
    }
    run
}

/// Every figure of every run of one side, by figure name in first-seen order.
fn figures_by_name(runs: &[WorkloadRun]) -> Vec<(Figure, Vec<f64>)> {
    let mut table: Vec<(Figure, Vec<f64>)> = Vec::new();
    for figure in runs.iter().flat_map(|r| r.measurements.iter()).flat_map(workloads::figures) {
        match table.iter_mut().find(|(f, _)| f.name == figure.name) {
            Some((_, values)) => values.push(figure.value),
            None => {
                let value = figure.value;
                table.push((figure, vec![value]));
            }
        }
    }
    table
}

/// One row: a figure's host and guest medians and their ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The figure (its value is unused).
    pub figure: Figure,
    /// The host's runs.
    pub host: Option<Summary>,
    /// The guest's runs.
    pub guest: Option<Summary>,
}

impl Row {
    /// guest / host of the medians.
    pub fn ratio(&self) -> Option<f64> {
        match (self.host, self.guest) {
            (Some(h), Some(g)) if h.median > 0.0 => Some(g.median / h.median),
            _ => None,
        }
    }
}

/// The rows, in the order the host's program printed them (then any only the guest has).
pub fn rows(report: &WorkloadReport) -> Vec<Row> {
    let host = figures_by_name(&report.host);
    let guest = figures_by_name(&report.guest);
    let mut names: Vec<&Figure> = host.iter().map(|(f, _)| f).collect();
    names.extend(guest.iter().map(|(f, _)| f).filter(|f| !host.iter().any(|(h, _)| h.name == f.name)));
    let side = |list: &[(Figure, Vec<f64>)], name: &str| {
        list.iter().find(|(f, _)| f.name == name).and_then(|(_, v)| Summary::of(v.iter().copied()))
    };
    names
        .into_iter()
        .map(|f| Row { figure: f.clone(), host: side(&host, &f.name), guest: side(&guest, &f.name) })
        .collect()
}

/// A value with a sensible number of decimals for its size.
fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn median(summary: Option<Summary>) -> String {
    summary.map_or_else(|| "–".into(), |s| number(s.median))
}

/// `bench guest`'s table: one row per figure, the goals, then the footer of the boots.
pub fn table(report: &BenchReport) -> String {
    let Some(workloads) = &report.workloads else {
        return markdown::footer(report);
    };
    let runs = |side: &[WorkloadRun]| side.len();
    let mut text = format!(
        "| workload | unit | host (median of {}) | guest (median of {}) | guest/host |\n|---|---|---|---|---|\n",
        runs(&workloads.host),
        runs(&workloads.guest)
    );
    let rows = rows(workloads);
    for row in &rows {
        let ratio = row.ratio().map_or_else(|| "–".into(), |r| format!("{r:.2}"));
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {ratio} |",
            row.figure.name,
            row.figure.unit,
            median(row.host),
            median(row.guest)
        );
    }
    text.push_str("\nFor the latencies a ratio above 1 means the guest is slower; for the rates, below 1.\n");
    let mut goals = String::new();
    for (name, least, what) in GOALS {
        if let Some(ratio) = rows.iter().find(|r| r.figure.name == *name).and_then(Row::ratio) {
            let verdict = if ratio >= *least { "met" } else { "not met" };
            let _ = writeln!(goals, "- {what}: guest/host {ratio:.2} (goal ≥ {least:.2}): {verdict}");
        }
    }
    if !goals.is_empty() {
        text.push('\n');
        text.push_str(&goals);
    }
    let mut notes = String::new();
    let _ = writeln!(notes, "- scratch disk: {} MiB", workloads.disk_bytes >> 20);
    for note in &workloads.host_notes {
        let _ = writeln!(notes, "- host: {note}");
    }
    for (side, list) in [("host", &workloads.host), ("guest", &workloads.guest)] {
        for (i, run) in list.iter().enumerate() {
            if let Some(why) = &run.failure {
                let _ = writeln!(notes, "- {side} run {}: {why}", i + 1);
            }
        }
    }
    text.push('\n');
    text.push_str(&notes);
    text + &markdown::footer(report)
}

/// Draws `guest-ratio.svg` in `dir`: one horizontal bar per figure, guest/host on a log
/// scale with a line at 1 (the same speed).
///
/// # Errors
/// When the file cannot be drawn.
pub fn write_ratio_plot(workloads: &WorkloadReport, dir: &Path) -> Result<PathBuf, PlotError> {
    let path = dir.join("guest-ratio.svg");
    let rows: Vec<(String, f64)> = rows(workloads)
        .into_iter()
        .filter_map(|r| Some((format!("{} ({})", r.figure.name, r.figure.unit), r.ratio()?)))
        .collect();
    let height = 120 + 22 * rows.len().max(1) as u32;
    plot::draw_sized(&path, (900, height), |area| {
        let low = rows.iter().map(|r| r.1).fold(1.0, f64::min).max(1e-4) / 2.0;
        let high = rows.iter().map(|r| r.1).fold(1.0, f64::max) * 2.0;
        let count = rows.len();
        let label = |y: &f64| -> String {
            let i = y.round();
            if (y - i).abs() < 0.01 && i >= 0.0 {
                rows.get(i as usize).map_or(String::new(), |r| r.0.clone())
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(area)
            .caption("Guest / host per workload (log scale; 1 = the host's speed)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(300)
            .build_cartesian_2d((low..high).log_scale(), -0.5..(count as f64 - 0.5))?;
        chart
            .configure_mesh()
            .y_labels(count.max(1) * 2 + 1)
            .y_label_formatter(&label)
            .x_desc("guest / host")
            .disable_y_mesh()
            .draw()?;
        let bars = rows.iter().enumerate().map(|(i, (_, ratio))| {
            let color = if *ratio >= 1.0 { GREEN.mix(0.7) } else { RED.mix(0.7) };
            Rectangle::new([(low, i as f64 - 0.35), (*ratio, i as f64 + 0.35)], color.filled())
        });
        chart.draw_series(bars)?;
        let one = [(1.0, -0.5), (1.0, count as f64 - 0.5)];
        chart.draw_series(std::iter::once(PathElement::new(one, BLACK.stroke_width(2))))?;
        Ok(())
    })?;
    Ok(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{Group, Measurement};

    #[test]
    fn the_scratch_disk_gets_its_folder_and_its_size() {
        let dir = std::env::temp_dir().join(format!("minivirt-bench-disk-{}", std::process::id()));
        let path = dir.join("target/bench/scratch.img");
        create_disk(&path, 8 << 20).expect("a scratch disk in a folder that does not exist yet");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8 << 20);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn measurement_of<'a>(run: &'a WorkloadRun, workload: &str, op: &str) -> Option<&'a Measurement> {
        run.measurements.iter().find(|m| m.workload == workload && m.op == op)
    }

    fn line(text: &str) -> String {
        format!("{text}\n")
    }

    /// A complete output of the program with the given CPU events (in 10 s), sequential read
    /// time and random-read p99.
    pub(crate) fn output(cpu_events: u64, seq_read_ns: u64, p99_ns: u64) -> String {
        let mut text = line(&format!("bench: cpu events={cpu_events} elapsed_ns=10000000000 max_prime=10000"));
        for block in [1024, 4096, 16384, 65536, 262144, 1048576] {
            for op in ["seq_read", "seq_write", "rnd_read", "rnd_write"] {
                text += &line(&format!("bench: mem op={op} block={block} bytes=536870912 elapsed_ns=250000000"));
            }
        }
        text += &line("bench: fileio op=seq_write block=1048576 bytes=67108864 elapsed_ns=200000000");
        text += &line(&format!("bench: fileio op=seq_read block=1048576 bytes=67108864 elapsed_ns={seq_read_ns}"));
        text += &line(&format!(
            "bench: fileio op=rnd_read block=4096 ops=1000 elapsed_ns=1000000000 p50_ns=50000 p95_ns=90000 p99_ns={p99_ns}"
        ));
        text
    }

    pub(crate) fn guest_report() -> BenchReport {
        let mut report = BenchReport::new("guest", "minivirt_run=\"…\"");
        report.groups.push(Group {
            name: "minivirt stage08".into(),
            runs: vec![crate::markdown::tests::run(80.0, 1000, 800, 2)],
            ..Default::default()
        });
        let console =
            format!("MINIVIRT-GUEST-READY\r\n{}MINIVIRT-RUN-EXIT 0\r\n", output(9600, 200_000_000, 2_000_000))
                .replace('\n', "\r\n");
        report.workloads = Some(WorkloadReport {
            disk_bytes: 64 << 20,
            host_notes: vec!["target/bench/workloads on target/bench/scratch.img".into()],
            host: vec![
                guest_run(&output(10000, 100_000_000, 100_000)),
                guest_run(&output(10200, 100_000_000, 100_000)),
            ],
            guest: vec![guest_run(&console)],
        });
        report
    }

    #[test]
    fn a_complete_console_is_one_run_without_failure() {
        let report = guest_report();
        let guest = &report.workloads.as_ref().unwrap().guest[0];
        assert_eq!((guest.measurements.len(), &guest.failure), (EXPECTED_LINES, &None));
        assert_eq!(measurement_of(guest, "fileio", "rnd_read").unwrap().values["p99_ns"], 2_000_000);
    }

    #[test]
    fn a_broken_run_says_what_is_missing() {
        let console = "bench: cpu events=5 elapsed_ns=10\nworkloads: cannot open the file or disk with O_RDWR|O_DIRECT (errno 2)\nMINIVIRT-RUN-EXIT 1\n";
        let run = guest_run(console);
        assert_eq!(
            run.failure.as_deref(),
            Some("the guest printed 1 of 28 results (exit status 1): workloads: cannot open the file or disk with O_RDWR|O_DIRECT (errno 2)")
        );
        assert_eq!(
            guest_run("").failure.as_deref(),
            Some("the guest printed 0 of 28 results (no MINIVIRT-RUN-EXIT line)")
        );
    }

    #[test]
    fn the_table_has_host_guest_and_ratio_per_figure() {
        let text = table(&guest_report());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "| workload | unit | host (median of 2) | guest (median of 1) | guest/host |");
        // 1010 events/s on the host (median of 1000 and 1020), 960 in the guest.
        assert_eq!(lines[2], "| cpu primes | events/s | 1010 | 960 | 0.95 |");
        assert!(text.contains("| mem seq_read 1 KiB | MiB/s | 2048 | 2048 | 1.00 |"), "{text}");
        assert!(text.contains("| fileio seq_read | MiB/s | 640 | 320 | 0.50 |"), "{text}");
        assert!(text.contains("| fileio rnd_read p99 latency | µs | 100 | 2000 | 20.00 |"), "{text}");
        assert_eq!(lines.iter().filter(|l| l.starts_with("| mem ")).count(), 24);
        assert!(text.contains("- guest CPU within 5 % of the host: guest/host 0.95 (goal ≥ 0.95): met"), "{text}");
        assert!(text.contains("sequential read at least 70 % of the host's: guest/host 0.50 (goal ≥ 0.70): not met"));
        assert!(
            text.contains("- scratch disk: 64 MiB") && text.contains("- host: target/bench/workloads on"),
            "{text}"
        );
    }

    #[test]
    fn the_ratio_plot_has_a_bar_per_figure() {
        let dir = std::env::temp_dir().join(format!("bench-guest-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = guest_report();
        let path = write_ratio_plot(report.workloads.as_ref().unwrap(), &dir).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        // 28 result lines give 31 figures (the random read gives IOPS and three latencies).
        assert_eq!(rows(report.workloads.as_ref().unwrap()).len(), 31);
        assert!(svg.matches("<rect").count() >= 31, "{svg}");
        assert!(svg.contains(">\ncpu primes (events/s)\n</text>"), "{svg}");
        assert!(svg.contains(">\nfileio rnd_read p99 latency (µs)\n</text>"), "{svg}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
