//! The lab guest (kernel, initramfs, disk image) that stages 4–7 boot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Where `labs/guest/build.sh` puts what it builds.
pub fn out_dir(repo: &Path) -> PathBuf {
    repo.join("labs/guest/out")
}

/// Builds the guest unless it is up to date (the script caches; a second run takes a second).
pub fn ensure_built(repo: &Path) -> Result<(), String> {
    // One build at a time within this process; the script itself locks across processes.
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let script = repo.join("labs/guest/build.sh");
    let status =
        Command::new("bash").arg(&script).status().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status}); its output above says why", script.display()))
    }
}
