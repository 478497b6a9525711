//! Stage 8 in a machine: one call puts the inspection tools in, one call reports at the end.
//!
//! ```text
//! let inspector = Inspector::attach(&mut machine, &args.inspect)?; // hooks, boot timer, monitor
//! let _console = console::attach_console_with_monitor(&machine, Some(inspector.console_monitor()))?;
//! let reason = machine.boot()?;
//! inspector.finish()?;                                              // --stats, --stats-json
//! ```

use crate::boot_timer::{BootTimer, BOOT_TIMER_PORT, BOOT_TIMER_SIZE};
use crate::host::{guest_ram_ranges, memory_usage, KvmExitCounters, KvmVcpuStats, VcpuStatsFd};
use crate::monitor::server::{parse_address, MonitorError, MonitorServer};
use crate::monitor::session::{MachineView, Session};
use crate::recorder::ExitRecorder;
use crate::stats::profile::Profile;
use crate::stats::report::{StatsReport, DEFAULT_TOP};
use crate::stats::timeline::{BootEvent, BootTimeline};
use crate::stats::ExitStats;
use crate::symbols::{self, SymbolTable, SymbolsError};
use crate::vcpus::VcpuAccess;
use kvm_ioctls::VcpuFd;
use stage02::bus::BusError;
use stage02::memory::GuestMemory;
use stage03::exit_hook::ExitHook;
use stage04::machine::Machine;
use stage05::event_loop::ConsoleMonitor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Stage 8's flags.
#[derive(Debug, Default, clap::Args)]
pub struct InspectArgs {
    /// Serve the monitor on a Unix socket (`unix:PATH`), one session per connection.
    #[arg(long, value_name = "unix:PATH", value_parser = |text: &str| parse_address(text).map_err(|e| e.to_string()))]
    pub monitor: Option<PathBuf>,
    /// Print exit statistics, hot spots, the boot timeline and memory when the VM stops.
    #[arg(long)]
    pub stats: bool,
    /// Write the same statistics as JSON (schema: stages/08-inspect/schema/stats.schema.json).
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// The guest kernel's System.map, to name guest functions (default: the lab guest's).
    #[arg(long, value_name = "PATH")]
    pub symbols: Option<PathBuf>,
    /// Sample every vCPU's RIP this many times a second and print where the guest spends its time.
    #[arg(long, value_name = "HZ", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub profile: Option<u32>,
}

/// Why the inspection tools could not be attached or could not report.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The System.map named with --symbols is unusable.
    #[error(transparent)]
    Symbols(#[from] SymbolsError),
    /// The boot timer's port is taken.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The monitor could not listen.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// The statistics file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    StatsJson {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The termination signals could not be blocked.
    #[error("cannot block termination signals: {0}")]
    Signals(#[source] std::io::Error),
    /// The profiler thread could not start.
    #[error("cannot start the profiler: {0}")]
    Profiler(#[source] std::io::Error),
}

/// What stage 8 added to a machine; keep it until the VM stops, then call [`Inspector::finish`].
pub struct Inspector {
    program: &'static str,
    print_stats: bool,
    stats_json: Option<PathBuf>,
    report: Arc<ReportSources>,
    view: Arc<MachineView>,
    profiler: Option<Profiler>,
    _monitor: Option<MonitorServer>,
}

/// Everything a statistics report is made of.
struct ReportSources {
    memory: Arc<GuestMemory>,
    stats: Arc<ExitStats>,
    timeline: Arc<BootTimeline>,
    kvm: Arc<KvmStatsFds>,
    profile: Option<Arc<Profile>>,
    symbols: Option<(Arc<SymbolTable>, String)>,
}

impl ReportSources {
    fn report(&self) -> StatsReport {
        let symbols = self.symbols.as_ref().map(|(table, origin)| (table.as_ref(), origin.as_str()));
        let mut report = StatsReport::new(&self.stats.snapshot(), symbols, DEFAULT_TOP);
        report.kvm = Some(self.kvm.counters());
        report.timeline = Some(self.timeline.report());
        report.memory = memory_usage(&guest_ram_ranges(&self.memory)).ok();
        report.profile = self.profile.as_ref().map(|p| p.report(symbols.map(|(table, _)| table), DEFAULT_TOP));
        report
    }
}

impl Inspector {
    /// Adds stage 8 to `machine`: the vCPU access and exit-recording hooks, the boot timer at
    /// port 0x3f0, the guest's symbols, and (when asked) the monitor socket and the profiler.
    pub fn attach(machine: &mut Machine, args: &InspectArgs) -> Result<Inspector, InspectError> {
        let started = Instant::now();
        // The monitor and profiler threads start before the console turns SIGINT, SIGTERM and
        // SIGHUP into events; blocked here, they reach the console's signalfd, not these threads.
        stage05::signals::block_in_this_thread().map_err(InspectError::Signals)?;
        let (memory, buses) = (Arc::clone(&machine.vm.memory), Arc::clone(&machine.vm.buses));
        let control = Arc::clone(&machine.control);
        let vcpus = Arc::new(VcpuAccess::new(Arc::clone(&control), machine.vcpu_count()));
        machine.add_exit_hook(vcpus.clone());

        let timeline = Arc::new(BootTimeline::new(started));
        let boot_timer = BootTimer::with_events(Arc::clone(&timeline));
        buses.pio.insert(
            "boot-timer",
            u64::from(BOOT_TIMER_PORT),
            BOOT_TIMER_SIZE,
            Arc::new(Mutex::new(boot_timer)),
        )?;

        let symbols = load_symbols(machine.program(), args.symbols.as_ref())?;
        let profile = args.profile.map(|_| Arc::new(Profile::new()));
        // Statistics are always kept: the monitor's `info stats` may ask at any time.
        let stats = Arc::new(ExitStats::new(usize::from(machine.vcpu_count())));
        let kvm = Arc::new(KvmStatsFds::default());
        machine.add_exit_hook(Arc::new(ExitRecorder::new(stats.clone(), timeline.clone(), buses.clone())));
        machine.add_exit_hook(kvm.clone());
        let report = Arc::new(ReportSources {
            memory: Arc::clone(&memory),
            stats,
            timeline: Arc::clone(&timeline),
            kvm,
            profile: profile.clone(),
            symbols: symbols.clone(),
        });

        let stats_text = {
            let report = Arc::clone(&report);
            Arc::new(move || report.report().to_text()) as Arc<dyn Fn() -> String + Send + Sync>
        };
        let view = Arc::new(MachineView {
            memory,
            buses,
            vcpus: Arc::clone(&vcpus),
            control,
            symbols: symbols.map(|(table, _)| table),
            stats: Some(stats_text),
        });
        let monitor = match &args.monitor {
            Some(path) => Some(MonitorServer::start(path, Arc::clone(&view))?),
            None => None,
        };
        let profiler = match (args.profile, profile) {
            (Some(hz), Some(profile)) => Some(Profiler::start(hz, vcpus, profile).map_err(InspectError::Profiler)?),
            _ => None,
        };
        Ok(Inspector {
            program: machine.program(),
            print_stats: args.stats,
            stats_json: args.stats_json.clone(),
            report,
            view,
            profiler,
            _monitor: monitor,
        })
    }

    /// A monitor session for the console, which Ctrl-A c switches to.
    pub fn console_monitor(&self) -> Box<dyn ConsoleMonitor> {
        Box::new(Session::new(Arc::clone(&self.view)))
    }

    /// After the VM stopped: stops the profiler and prints or writes the statistics asked for.
    pub fn finish(mut self) -> Result<(), InspectError> {
        if let Some(profiler) = self.profiler.take() {
            profiler.stop();
        }
        let sources = &self.report;
        sources.timeline.mark(BootEvent::Stop);
        let report = sources.report();
        if self.print_stats || sources.profile.is_some() {
            eprintln!("{}: statistics\n{}", self.program, report.to_text());
        }
        if let Some(path) = &self.stats_json {
            std::fs::write(path, report.to_json())
                .map_err(|source| InspectError::StatsJson { path: path.clone(), source })?;
        }
        Ok(())
    }
}

/// The guest's System.map: the one asked for (an error if unusable), else the lab guest's if
/// it is there (silently none if not: the tables then show addresses).
fn load_symbols(program: &str, path: Option<&PathBuf>) -> Result<Option<(Arc<SymbolTable>, String)>, InspectError> {
    let (path, required) = match path {
        Some(path) => (path.clone(), true),
        None => (symbols::default_path(), false),
    };
    match SymbolTable::load(&path) {
        Ok(table) => Ok(Some((Arc::new(table), path.display().to_string()))),
        Err(e) if required => Err(e.into()),
        Err(_) => {
            eprintln!("{program}: no guest symbols ({} is missing): hot spots show addresses", path.display());
            Ok(None)
        }
    }
}

/// KVM's own counters for each vCPU, opened on the vCPU's thread when it starts.
#[derive(Default)]
struct KvmStatsFds {
    fds: Mutex<Vec<VcpuStatsFd>>,
    not_offered: Mutex<Option<String>>,
}

impl KvmStatsFds {
    fn counters(&self) -> KvmExitCounters {
        if let Some(reason) = self.not_offered.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return KvmExitCounters::not_offered(reason);
        }
        let fds = self.fds.lock().unwrap_or_else(|e| e.into_inner());
        let snapshots: Vec<_> = fds.iter().filter_map(|fd| fd.read().ok()).collect();
        KvmExitCounters::from_snapshots(&snapshots)
    }
}

impl ExitHook for KvmStatsFds {
    fn vcpu_started(&self, _vcpu: u8, fd: &VcpuFd) {
        match KvmVcpuStats::open(fd) {
            KvmVcpuStats::Offered(stats) => self.fds.lock().unwrap_or_else(|e| e.into_inner()).push(stats),
            KvmVcpuStats::NotOffered(reason) => {
                *self.not_offered.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
            }
        }
    }
}

/// The sampling profiler: a thread that visits each vCPU HZ times a second and notes where
/// it was (RIP) and whether in user mode.
struct Profiler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Profiler {
    fn start(hz: u32, vcpus: Arc<VcpuAccess>, profile: Arc<Profile>) -> std::io::Result<Profiler> {
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs(1) / hz;
        let thread = {
            let stop = Arc::clone(&stop);
            stage03::threads::spawn("profiler", move || {
                while !stop.load(Ordering::Relaxed) {
                    for id in 0..vcpus.count() {
                        let profile = Arc::clone(&profile);
                        // A vCPU that is not running (yet, or any more) is simply not sampled.
                        let _ = vcpus.with_vcpu(id, move |fd| {
                            if let (Ok(regs), Ok(sregs)) = (fd.get_regs(), fd.get_sregs()) {
                                profile.record(regs.rip, sregs.cs.selector & 3 == 3);
                            }
                        });
                    }
                    std::thread::sleep(period);
                }
            })?
        };
        Ok(Profiler { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
