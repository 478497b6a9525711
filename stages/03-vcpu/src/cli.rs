//! Command-line flags every machine-building stage shares from here on.

use crate::host_workarounds::WorkaroundMode;

/// `--mem` and `--host-workarounds`, flattened into each stage's own arguments.
#[derive(Debug, clap::Args)]
pub struct MachineArgs {
    /// Guest RAM size (K, M or G suffix).
    #[arg(long, default_value = "256M", value_parser = stage02::cli::parse_mem_size)]
    pub mem: u64,
    /// Trap-and-emulate what this host's KVM cannot (auto: when the host KVM is kvm_pvm).
    #[arg(long, value_enum, default_value_t = WorkaroundMode::Auto)]
    pub host_workarounds: WorkaroundMode,
}
