//! `bench`: the measurement lab in one command. `bench boot` boots a minivirt stage (and QEMU)
//! several times; `bench exits` runs the exit-reduction experiments; `bench guest` runs the
//! same workloads in the guest and on the host. Each prints a Markdown table, and writes JSON
//! (`--json FILE`) and SVG plots (`--plot DIR`). Ctrl-C stops the runs and writes what was
//! measured so far.

use bench::experiments;
use bench::guest::{self, DEFAULT_DISK_MIB};
use bench::minivirt::{self, MinivirtBoot};
use bench::qemu::{self, QemuBoot};
use bench::report::{BenchReport, BootRun, Group, WorkloadReport};
use bench::{interrupt, markdown, plot, progress, workloads};
use clap::{Args, Parser, Subcommand};
use std::error::Error;
use std::path::{Path, PathBuf};
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
    /// The same workloads (CPU, memory, file I/O on a virtio-blk disk) in the guest, in one
    /// boot per run with a scratch disk, and on the host: host, guest and guest/host.
    Guest {
        /// The scratch disk's size in MiB (the guest's /dev/vda, the host's file).
        #[arg(long, default_value_t = DEFAULT_DISK_MIB, value_parser = clap::value_parser!(u64).range(2..=4096))]
        disk_mib: u64,
        #[command(flatten)]
        common: Common,
    },
}

/// `--append`'s default, which `bench guest` and the disk experiments replace with their own
/// `minivirt_run`.
const DEFAULT_APPEND: &str = "minivirt_run=\"true\"";

#[derive(Args)]
struct Common {
    /// Boots per VMM (or per experiment).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// The minivirt stage to boot (4 to 8; 8 gives exits by reason and memory).
    #[arg(long, default_value_t = minivirt::LAST_STAGE, value_parser = clap::value_parser!(u8).range(4..=8))]
    stage: u8,
    /// Guest kernel options; the lab guest's /init runs minivirt_run and powers off.
    #[arg(long, default_value = DEFAULT_APPEND)]
    append: String,
    /// The stage binary to run instead of building it with cargo.
    #[arg(long, value_name = "PATH")]
    vmm: Option<PathBuf>,
    /// The guest's RAM in MiB, for minivirt (`--mem`) and QEMU (`-m`) alike: the guest kernel
    /// sets up a `struct page` for every 4 KiB of it, which is a large part of a boot here.
    #[arg(long, default_value_t = qemu::DEFAULT_RAM_MIB, value_parser = clap::value_parser!(u64).range(64..=4096))]
    mem_mib: u64,
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
        Commands::Guest { disk_mib, common } => (guest(common, *disk_mib)?, common),
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

/// The stage binary: `--vmm`, or the stage built as one would ship it.
fn vmm_binary(common: &Common) -> Result<PathBuf, Box<dyn Error>> {
    if let Some(path) = &common.vmm {
        return Ok(path.clone());
    }
    eprintln!(
        "bench: building {} (cargo profile `{}`, static; a first build takes a minute or two)",
        minivirt::binary_name(common.stage),
        minivirt::VMM_PROFILE
    );
    Ok(minivirt::build_stage(common.stage)?)
}

/// How to boot `binary` with `append` and the common options.
fn minivirt_boot(common: &Common, binary: &Path, append: &str) -> MinivirtBoot {
    MinivirtBoot {
        binary: binary.to_path_buf(),
        stage: common.stage,
        append: append.to_string(),
        flags: vec!["--mem".into(), format!("{}M", common.mem_mib)],
        timeout: Duration::from_secs(common.timeout),
    }
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
    let minivirt = minivirt_boot(common, &vmm_binary(common)?, &common.append);
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
        "boots the lab guest's vmlinux (ELF) and initramfs.cpio with `{name} --mem {}M --append '{}'`",
        common.mem_mib, common.append
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
            ram_mib: common.mem_mib,
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
    let binary = vmm_binary(common)?;
    for experiment in chosen {
        if interrupt::interrupted() {
            break;
        }
        let run = if experiment.disk { run_command(common, experiments::DISK_RUN) } else { common.append.clone() };
        let append = format!("{} {run}", experiment.append).trim().to_string();
        let mut boot = minivirt_boot(common, &binary, &append);
        let mut switch = vec![experiment.append.to_string()];
        if experiment.disk {
            let disk = scratch_dir().join("scratch-exits.img");
            guest::create_disk(&disk, DEFAULT_DISK_MIB << 20)
                .map_err(|e| format!("cannot create {}: {e}", disk.display()))?;
            boot.flags.extend(["--disk".to_string(), disk.display().to_string()]);
            switch.push(format!("--disk scratch-exits.img minivirt_run=\"{}\"", experiments::DISK_RUN));
        }
        boot.flags.extend(experiment.flags.iter().map(|f| f.to_string()));
        switch.extend(experiment.flags.iter().map(|f| f.to_string()));
        let mut group = Group {
            name: experiment.name.into(),
            switch: switch.join(" ").trim().to_string(),
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

/// Where `bench` keeps its scratch disks and the host's workload binary: `target/bench`.
fn scratch_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| bench::repo_root().join("target"), Into::into);
    target.join("bench")
}

/// The kernel options of a boot that runs `command`: the user's `--append` unless it is the
/// default (whose `minivirt_run` this one replaces), then `minivirt_run="command"`.
fn run_command(common: &Common, command: &str) -> String {
    let extra = if common.append == DEFAULT_APPEND { "" } else { common.append.as_str() };
    format!("{extra} minivirt_run=\"{command}\"").trim().to_string()
}

fn guest(common: &Common, disk_mib: u64) -> Result<BenchReport, Box<dyn Error>> {
    let dir = scratch_dir();
    let host_binary = workloads::build_host(&dir)?;
    let disk = dir.join("scratch.img");
    let disk_bytes = disk_mib << 20;
    let append = run_command(common, &workloads::guest_command("/dev/vda"));
    let mut boot = minivirt_boot(common, &vmm_binary(common)?, &append);
    boot.flags.extend(["--disk".to_string(), disk.display().to_string()]);

    let mut report = BenchReport::new("guest", &append);
    let mut results = WorkloadReport {
        disk_bytes,
        host_notes: vec![format!(
            "{} (gcc {}, the guest's build) on {}, the guest's disk image",
            host_binary.display(),
            workloads::GCC_FLAGS.join(" "),
            disk.display()
        )],
        ..Default::default()
    };
    let name = minivirt::binary_name(common.stage);
    let mut group = Group { name: format!("minivirt {name}"), ..Default::default() };
    group
        .notes
        .push(format!("boots with `{name} --disk {} --append '{append}'`: all workloads in one boot", disk.display()));
    // A boot and a host run per step of the bar.
    let bar = progress::boots(u64::from(common.runs) * 2);
    let work = std::env::temp_dir();
    for i in 1..=common.runs {
        if interrupt::interrupted() {
            break;
        }
        guest::create_disk(&disk, disk_bytes).map_err(|e| format!("cannot create {}: {e}", disk.display()))?;
        bar.set_message(format!("guest run {i}/{}: booting {name}", common.runs));
        let (run, console) = boot.run_with_console(&work)?;
        progress::note(&bar, &format!("guest run {i}: {}", markdown::run_line(&run)));
        bar.inc(1);
        if run.failure.as_deref().is_some_and(|f| f.starts_with("interrupted")) {
            break;
        }
        let guest_run = guest::guest_run(&console);
        progress::note(&bar, &format!("guest run {i}: {} results", guest_run.measurements.len()));
        group.runs.push(run);
        results.guest.push(guest_run);

        bar.set_message(format!("host run {i}/{}", common.runs));
        let host_run = guest::host_run(&host_binary, &disk);
        bar.inc(1);
        progress::note(&bar, &format!("host run {i}: {} results", host_run.measurements.len()));
        let stopped = host_run.failure.as_deref().is_some_and(|f| f.starts_with("interrupted"));
        if !stopped {
            results.host.push(host_run);
        }
    }
    bar.finish_and_clear();
    report.groups.push(group);
    report.workloads = Some(results);
    report.interrupted = interrupt::interrupted();
    Ok(report)
}
