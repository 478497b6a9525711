//! What a `bench` command measured: the data behind the tables and plots, written as JSON with
//! `--json FILE` (format: `bench/schema/bench.schema.json`).

use serde::Serialize;
use std::collections::BTreeMap;

/// The version of the JSON format; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// One boot of one VMM.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BootRun {
    /// Seconds from starting the VMM to the guest's marker line (`MINIVIRT-GUEST-READY`);
    /// `None` if it never came.
    pub ready_s: Option<f64>,
    /// Seconds from starting the VMM to its exit (or to being stopped).
    pub exit_s: f64,
    /// Seconds to boot-complete by the VMM's own boot timer (stage 8's timeline), if it has one.
    pub boot_timer_s: Option<f64>,
    /// Exits that reached the VMM (user space), if the VMM counts them.
    pub exits: Option<ExitCounts>,
    /// Guest instructions KVM emulated during the run (its `insn_emulation` counter, from stage
    /// 8's statistics), where the host offers the counter. On hosts that emulate guest kernel
    /// code (this course's nested KVM) this is the boot's work, and unlike the times it does not
    /// change with the machine's load.
    pub emulated_instructions: Option<u64>,
    /// The VMM's own memory in bytes: resident set minus the guest RAM mapping's resident set.
    pub overhead_bytes: Option<u64>,
    /// Where `overhead_bytes` comes from and when it was taken.
    pub overhead_source: Option<String>,
    /// Why the run did not finish normally (timeout, interrupted, exit status), if it did not.
    pub failure: Option<String>,
}

/// Exits of one boot, by reason and by guest function.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExitCounts {
    /// All exits.
    pub total: u64,
    /// By reason (`io_out`, `mmio_read`, … as in stage 8's statistics).
    pub by_reason: BTreeMap<String, u64>,
    /// The guest functions with the most exits, most first.
    pub top_functions: Vec<FunctionExits>,
}

/// Exits caused by one guest function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionExits {
    /// The kernel function (or `[user mode]`).
    pub function: String,
    /// How many exits.
    pub exits: u64,
}

/// Several boots under the same conditions: one VMM (`bench boot`) or one switch (`bench exits`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Group {
    /// What the table's row calls it: `minivirt stage08`, `QEMU 7.2.0 (TCG)`, `quiet`.
    pub name: String,
    /// What differs from the baseline (kernel options, VMM flags); empty for the baseline.
    pub switch: String,
    /// The acceleration used (`kvm`, `tcg`), for QEMU.
    pub accel: Option<String>,
    /// Notes for the reader: why an accelerator was chosen, what a switch does.
    pub notes: Vec<String>,
    /// The boots, in order.
    pub runs: Vec<BootRun>,
}

/// What `bench guest` measured: the same workloads in the guest (one boot per run, the boot
/// itself in [`BenchReport::groups`]) and on the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkloadReport {
    /// The size of the scratch disk (the guest's `/dev/vda`, the host's file), in bytes.
    pub disk_bytes: u64,
    /// How the host ran them (the program, the file).
    pub host_notes: Vec<String>,
    /// Each host run.
    pub host: Vec<WorkloadRun>,
    /// Each guest run (one boot each).
    pub guest: Vec<WorkloadRun>,
}

/// The results of one run of all the workloads.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkloadRun {
    /// One per result line, in order.
    pub measurements: Vec<Measurement>,
    /// Why results are missing, if some are.
    pub failure: Option<String>,
}

/// One result line of the workloads program (`bench: mem op=seq_read block=1024 bytes=… elapsed_ns=…`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Measurement {
    /// `cpu`, `mem` or `fileio`.
    pub workload: String,
    /// The operation (`seq_read`, `rnd_write`, …); empty for `cpu`.
    pub op: String,
    /// Every other `key=value` of the line: counts, bytes, nanoseconds.
    pub values: BTreeMap<String, u64>,
}

/// Everything one `bench` command measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BenchReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `boot`, `exits` or `guest`.
    pub command: String,
    /// The guest kernel command line options every boot had (besides each VMM's own).
    pub append: String,
    /// Whether Ctrl-C stopped the command before all runs were done.
    pub interrupted: bool,
    /// What was not measured and why (`QEMU is not installed …`).
    pub skipped: Vec<String>,
    /// The measurements.
    pub groups: Vec<Group>,
    /// `bench guest`: the workloads' results in the guest and on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workloads: Option<WorkloadReport>,
}

impl BenchReport {
    /// An empty report of `command`.
    pub fn new(command: &str, append: &str) -> BenchReport {
        BenchReport {
            schema_version: SCHEMA_VERSION,
            command: command.into(),
            append: append.into(),
            ..Default::default()
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings, numbers and maps with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
