//! The measurement lab: boots a minivirt stage (and QEMU, on the same kernel and initramfs)
//! several times and reports boot time, memory overhead and VM exits as a Markdown table, JSON
//! and SVG plots; and runs the exit-reduction experiments of the course's paper as switches.
//!
//! The pieces, in the order a run uses them:
//! - [`vmm`]: one boot of a VMM as a child process, timed to the guest's marker line and to exit;
//!   [`minivirt`] and [`qemu`] say how to start each and where their figures come from;
//! - [`report`]: what was measured (serialized as the JSON of `schema/bench.schema.json`);
//! - [`summary`], [`markdown`], [`plot`]: min / median / max, the tables, the SVG plots;
//! - [`workloads`] and [`guest`]: `bench guest`, the same workload program in the guest and
//!   on the host, and its table and plot;
//! - [`progress`] and [`interrupt`]: a progress bar on a terminal, and Ctrl-C that keeps what
//!   was measured so far.
//!
//! # Resources
//! - JSON Schema draft 2020-12: <https://json-schema.org/draft/2020-12/json-schema-core>.
//! - `/proc/PID/smaps`: <https://docs.kernel.org/filesystems/proc.html>.
#![deny(missing_docs)]

pub mod experiments;
pub mod guest;
pub mod interrupt;
pub mod markdown;
pub mod minivirt;
pub mod plot;
pub mod progress;
pub mod qemu;
pub mod report;
pub mod smaps;
pub mod summary;
pub mod vmm;
pub mod workloads;

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `bench/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The environment variable that names a ready lab guest folder (as for the stages and the
/// checkpoints); empty counts as unset.
pub const GUEST_DIR_VAR: &str = "MINIVIRT_GUEST_DIR";

/// The lab guest: the folder [`GUEST_DIR_VAR`] names, else where `labs/guest/build.sh` puts it.
pub fn guest_dir() -> PathBuf {
    choose_guest_dir(std::env::var_os(GUEST_DIR_VAR))
}

/// [`guest_dir`] for a given value of [`GUEST_DIR_VAR`] (`None`: unset).
fn choose_guest_dir(var: Option<std::ffi::OsString>) -> PathBuf {
    var.filter(|v| !v.is_empty()).map_or_else(|| repo_root().join("labs/guest/out"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_is_the_variables_folder_when_it_is_set() {
        assert_eq!(choose_guest_dir(None), repo_root().join("labs/guest/out"));
        assert_eq!(choose_guest_dir(Some("".into())), repo_root().join("labs/guest/out"));
        assert_eq!(choose_guest_dir(Some("/srv/guest".into())), Path::new("/srv/guest"));
    }
}
