//! SVG plots (`--plot DIR`), drawn with plotters' SVG backend only: no bitmap backend and no
//! system fonts (labels are SVG `<text>` elements the viewer renders).
//!
//! - `boot-time.svg`: every run's seconds to boot-complete per VMM (a dot each, a bar at the
//!   median), on a log scale since QEMU's TCG and minivirt here differ by one or two orders;
//! - `exits.svg`: exits per boot by reason (median of the runs), one stacked bar per experiment;
//! - `guest-ratio.svg` (`bench guest`): guest / host per workload figure (`crate::guest`).
//!
//! # Resources
//! - plotters: <https://docs.rs/plotters/0.3>.

use crate::report::{BenchReport, Group};
use crate::summary::Summary;
use plotters::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output folder could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// plotters failed while drawing (it reports its errors as text).
    #[error("cannot draw {}: {message}", path.display())]
    Draw {
        /// The file.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
}

const SIZE: (u32, u32) = (800, 480);

/// Writes the plots of `report` into `dir`; returns the files written.
///
/// # Errors
/// When the folder cannot be created or a file cannot be written.
pub fn write_plots(report: &BenchReport, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|source| PlotError::CreateDir { path: dir.into(), source })?;
    let mut written = Vec::new();
    let boot = dir.join("boot-time.svg");
    draw(&boot, |area| boot_time(report, area))?;
    written.push(boot);
    if report.groups.iter().any(|g| g.runs.iter().any(|r| r.exits.is_some())) {
        let exits = dir.join("exits.svg");
        draw(&exits, |area| exits_by_reason(report, area))?;
        written.push(exits);
    }
    if let Some(workloads) = &report.workloads {
        written.push(crate::guest::write_ratio_plot(workloads, dir)?);
    }
    Ok(written)
}

pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(path: &Path, plot: impl FnOnce(&Area) -> DrawResult) -> Result<(), PlotError> {
    draw_sized(path, SIZE, plot)
}

/// Draws one SVG file of `size` pixels with `plot`.
pub(crate) fn draw_sized(
    path: &Path,
    size: (u32, u32),
    plot: impl FnOnce(&Area) -> DrawResult,
) -> Result<(), PlotError> {
    let area = SVGBackend::new(path, size).into_drawing_area();
    let result = area
        .fill(&WHITE)
        .map_err(|e| e.to_string())
        .and_then(|()| plot(&area).map_err(|e| e.to_string()))
        .and_then(|()| area.present().map_err(|e| e.to_string()));
    result.map_err(|message| PlotError::Draw { path: path.into(), message })
}

/// A category axis: group `i` sits at x = i; the label formatter names it.
fn category_label(groups: &[Group], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 0.01 && i >= 0.0 {
        groups.get(i as usize).map_or(String::new(), |g| g.name.clone())
    } else {
        String::new()
    }
}

fn boot_time(report: &BenchReport, area: &Area) -> DrawResult {
    let groups = &report.groups;
    let seconds: Vec<f64> = groups.iter().flat_map(|g| g.runs.iter().filter_map(|r| r.ready_s)).collect();
    let low = seconds.iter().copied().fold(f64::INFINITY, f64::min).min(1.0) / 2.0;
    let high = seconds.iter().copied().fold(0.0, f64::max).max(10.0) * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption("Seconds to the guest's boot-complete marker, per run", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..(groups.len() as f64 - 0.5), (low..high).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(groups.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| category_label(groups, *x))
        .y_desc("seconds (log scale)")
        .disable_x_mesh()
        .draw()?;
    for (i, group) in groups.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let runs = group.runs.iter().filter_map(|r| r.ready_s);
        chart.draw_series(runs.map(|s| Circle::new((i as f64, s), 4, color.filled())))?;
        if let Some(m) = Summary::of(group.runs.iter().filter_map(|r| r.ready_s)) {
            let bar = [(i as f64 - 0.25, m.median), (i as f64 + 0.25, m.median)];
            chart.draw_series(std::iter::once(PathElement::new(bar, color.stroke_width(2))))?;
        }
    }
    Ok(())
}

fn exits_by_reason(report: &BenchReport, area: &Area) -> DrawResult {
    let groups = &report.groups;
    let reasons: Vec<String> = groups
        .iter()
        .flat_map(|g| g.runs.iter().filter_map(|r| r.exits.as_ref()))
        .flat_map(|e| e.by_reason.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Median per reason per group: the stacked bar's segments.
    let medians: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| {
            reasons
                .iter()
                .map(|reason| {
                    let counts = g.runs.iter().filter_map(|r| r.exits.as_ref());
                    Summary::of(counts.map(|e| e.by_reason.get(reason).copied().unwrap_or(0) as f64))
                        .map_or(0.0, |s| s.median)
                })
                .collect()
        })
        .collect();
    let top = medians.iter().map(|m| m.iter().sum::<f64>()).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("VM exits per boot by reason (median of the runs)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..(groups.len() as f64 - 0.5), 0.0..top)?;
    chart
        .configure_mesh()
        .x_labels(groups.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| category_label(groups, *x))
        .y_desc("exits that reached the VMM")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .disable_x_mesh()
        .draw()?;
    for (r, reason) in reasons.iter().enumerate() {
        let color = Palette99::pick(r).to_rgba();
        let bars = medians.iter().enumerate().map(|(i, m)| {
            let base: f64 = m[..r].iter().sum();
            Rectangle::new([(i as f64 - 0.3, base), (i as f64 + 0.3, base + m[r])], color.filled())
        });
        chart
            .draw_series(bars)?
            .label(reason.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::tests::{boot_report, run};

    /// plotters writes each label as `<text …>\nLABEL\n</text>`.
    fn has_text(svg: &str, label: &str) -> bool {
        svg.contains(&format!(">\n{label}\n</text>"))
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bench-plot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_boot_plot_has_a_dot_per_run_and_names_the_vmms() {
        let dir = temp_dir("boot");
        let files = write_plots(&boot_report(), &dir).unwrap();
        assert_eq!(files, [dir.join("boot-time.svg"), dir.join("exits.svg")]);
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 4, "3 minivirt runs and 1 QEMU run");
        assert!(has_text(&svg, "minivirt stage08") && has_text(&svg, "QEMU 7.2.0 (TCG)"), "{svg}");
        assert!(svg.contains("Seconds to the guest"), "the caption is there");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_exits_plot_stacks_the_reasons() {
        let mut report = BenchReport::new("exits", "");
        report.groups.push(Group {
            name: "baseline".into(),
            runs: vec![run(80.0, 1000, 800, 2)],
            ..Default::default()
        });
        report.groups.push(Group { name: "quiet".into(), runs: vec![run(60.0, 250, 200, 2)], ..Default::default() });
        let dir = temp_dir("exits");
        let files = write_plots(&report, &dir).unwrap();
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        // Two reasons × two experiments, two legend swatches, the legend box and the background.
        assert!(svg.matches("<rect").count() >= 6, "{svg}");
        assert!(has_text(&svg, "io_out") && has_text(&svg, "mmio_read") && has_text(&svg, "quiet"), "{svg}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unwritable_folder_is_one_error() {
        let err = write_plots(&boot_report(), Path::new("/proc/no-such/dir")).unwrap_err();
        assert!(err.to_string().starts_with("cannot create /proc/no-such/dir"), "{err}");
    }
}
