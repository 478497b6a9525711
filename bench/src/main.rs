//! `bench`: the measurement lab in one command. `bench boot` boots a minivirt stage (and QEMU)
//! several times; `bench exits` runs the exit-reduction experiments. Both print a Markdown
//! table, and write JSON (`--json FILE`) and SVG plots (`--plot DIR`). Ctrl-C stops the runs
//! and writes what was measured so far.

use bench::experiments;
use bench::minivirt::{self, MinivirtBoot};
use bench::qemu::{self, QemuBoot};
use bench::report::{BenchReport, BootRun, Group};
use bench::{interrupt, markdown, plot, progress};
use clap::{Args, Parser, Subcommand};
use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The measurement lab: boot time, memory overhead and VM exits, as tables, JSON and plots.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Boot a minivirt stage N times (and QEMU with --qemu): time to boot-complete and to exit,
    /// exits per boot, VMM memory overhead; min / median / max per VMM.
    Boot {
        /// Also boot QEMU on the same kernel, initramfs and guest command (if installed).
        #[arg(long)]
        qemu: bool,
        #[command(flatten)]
        common: Common,
    },
    /// The exit-reduction experiments: exits per boot and boot time, each switch against the
    /// baseline.
    Exits {
        /// Only these experiments (comma-separated; the baseline always runs). Names:
        /// baseline, quiet, io-delay-0x80, nohz-off, pci-off, combined.
        #[arg(long, default_value = "")]
        only: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct Common {
    /// Boots per VMM (or per experiment).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// The minivirt stage to boot (4 to 8; 8 gives exits by reason and memory).
    #[arg(long, default_value_t = minivirt::LAST_STAGE, value_parser = clap::value_parser!(u8).range(4..=8))]
    stage: u8,
    /// Guest kernel options; the lab guest's /init runs minivirt_run and powers off.
    #[arg(long, default_value = "minivirt_run=\"true\"")]
    append: String,
    /// The stage binary to run instead of building it with cargo.
    #[arg(long, value_name = "PATH")]
    vmm: Option<PathBuf>,
    /// Seconds after which one boot is stopped.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Write everything measured as JSON (schema: bench/schema/bench.schema.json).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write SVG plots into this folder.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    interrupt::install();
    match run(&cli) {
        Ok(report) if report.interrupted => ExitCode::from(130),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<BenchReport, Box<dyn Error>> {
    let (report, common) = match &cli.command {
        Commands::Boot { qemu, common } => (boot(common, *qemu)?, common),
        Commands::Exits { only, common } => (exits(common, only)?, common),
    };
    print!("{}", markdown::table(&report));
    if let Some(path) = &common.json {
        std::fs::write(path, report.to_json()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    if let Some(dir) = &common.plot {
        for file in plot::write_plots(&report, dir)? {
            eprintln!("bench: wrote {}", file.display());
        }
    }
    Ok(report)
}

/// The stage binary and how to boot it with `append`.
fn minivirt_boot(common: &Common, append: &str) -> Result<MinivirtBoot, Box<dyn Error>> {
    let binary = match &common.vmm {
        Some(path) => path.clone(),
        None => minivirt::build_stage(common.stage)?,
    };
    Ok(MinivirtBoot {
        binary,
        stage: common.stage,
        append: append.to_string(),
        flags: Vec::new(),
        timeout: Duration::from_secs(common.timeout),
    })
}

/// Boots `runs` times into `group`, one progress step each; stops at Ctrl-C.
fn measure(
    group: &mut Group,
    runs: u32,
    bar: &indicatif::ProgressBar,
    mut boot: impl FnMut() -> Result<BootRun, Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    for i in 1..=runs {
        if interrupt::interrupted() {
            break;
        }
        bar.set_message(format!("{} run {i}/{runs}", group.name));
        let run = boot()?;
        progress::note(bar, &format!("{} run {i}: {}", group.name, markdown::run_line(&run)));
        let stop = run.failure.as_deref().is_some_and(|f| f.starts_with("interrupted"));
        // A run cut short by Ctrl-C measured nothing whole: it is not kept.
        if !stop {
            group.runs.push(run);
        }
        bar.inc(1);
    }
    Ok(())
}

fn boot(common: &Common, with_qemu: bool) -> Result<BenchReport, Box<dyn Error>> {
    let mut report = BenchReport::new("boot", &common.append);
    let minivirt = minivirt_boot(common, &common.append)?;
    let qemu_binary = if with_qemu { qemu::find() } else { None };
    if with_qemu && qemu_binary.is_none() {
        let skipped = format!("QEMU: {} is not on PATH; install it with `{}`", qemu::QEMU, qemu::INSTALL_HINT);
        eprintln!("bench: skipped {skipped}");
        report.skipped.push(skipped);
    }
    let total = u64::from(common.runs) * if qemu_binary.is_some() { 2 } else { 1 };
    let bar = progress::boots(total);
    let work = std::env::temp_dir();

    let name = minivirt::binary_name(common.stage);
    let mut group = Group { name: format!("minivirt {name}"), ..Default::default() };
    group.notes.push(format!(
        "boots the lab guest's vmlinux (ELF) and initramfs.cpio with `{name} --append '{}'`",
        common.append
    ));
    let result = measure(&mut group, common.runs, &bar, || Ok(minivirt.run(&work)?));
    report.groups.push(group);
    result?;

    if let Some(binary) = qemu_binary.filter(|_| !interrupt::interrupted()) {
        let guest = bench::guest_dir();
        let qemu = QemuBoot {
            qemu: binary.clone(),
            kernel: guest.join("bzImage"),
            initrd: guest.join("initramfs.cpio"),
            append: common.append.clone(),
            timeout: Duration::from_secs(common.timeout),
        };
        bar.set_message("QEMU: probing KVM");
        let (accel, why) = qemu.choose_accel()?;
        progress::note(&bar, &format!("QEMU: {why}"));
        let mut group = Group {
            name: format!("QEMU {} ({})", qemu::version(&binary), accel.name().to_uppercase()),
            accel: Some(accel.name().into()),
            notes: vec![why],
            ..Default::default()
        };
        let result = measure(&mut group, common.runs, &bar, || Ok(qemu.run(accel)?));
        report.groups.push(group);
        result?;
    }
    bar.finish_and_clear();
    report.interrupted = interrupt::interrupted();
    Ok(report)
}

fn exits(common: &Common, only: &str) -> Result<BenchReport, Box<dyn Error>> {
    let chosen = experiments::select(only)?;
    let mut report = BenchReport::new("exits", &common.append);
    let bar = progress::boots(u64::from(common.runs) * chosen.len() as u64);
    let work = std::env::temp_dir();
    for experiment in chosen {
        if interrupt::interrupted() {
            break;
        }
        let append = format!("{} {}", experiment.append, common.append).trim().to_string();
        let boot = minivirt_boot(common, &append)?;
        let mut group = Group {
            name: experiment.name.into(),
            switch: experiment.append.into(),
            notes: vec![experiment.what.into()],
            ..Default::default()
        };
        let result = measure(&mut group, common.runs, &bar, || Ok(boot.run(&work)?));
        report.groups.push(group);
        result?;
    }
    bar.finish_and_clear();
    report.interrupted = interrupt::interrupted();
    Ok(report)
}
