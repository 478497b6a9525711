//! The lab guest (kernel, initramfs, disk image) that stages 4–7 boot: built by
//! `labs/guest/build.sh` into `labs/guest/out/`, or ready in the folder [`GUEST_DIR_VAR`]
//! names (an instructor's, built once with `build.sh --out DIR`), which is then never built.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The environment variable that names a ready guest folder; the stage binaries read it too
/// (`stage04::guest`). Empty counts as unset.
pub const GUEST_DIR_VAR: &str = "MINIVIRT_GUEST_DIR";

/// The files of a guest folder that the stages and checkpoints read.
pub const GUEST_FILES: [&str; 5] = ["vmlinux", "bzImage", "System.map", "initramfs.cpio", "disk.ext4"];

/// Where `labs/guest/build.sh` puts what it builds.
pub fn out_dir(repo: &Path) -> PathBuf {
    repo.join("labs/guest/out")
}

/// The guest folder the checkpoints use (`{guest}` in a checkpoint file): [`GUEST_DIR_VAR`]
/// made absolute when it is set, else [`out_dir`].
pub fn guest_dir(repo: &Path) -> PathBuf {
    choose_guest_dir(repo, std::env::var_os(GUEST_DIR_VAR))
}

/// [`guest_dir`] for a given value of the variable (`None`: unset).
fn choose_guest_dir(repo: &Path, var: Option<OsString>) -> PathBuf {
    match var.filter(|v| !v.is_empty()) {
        Some(dir) => std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir)),
        None => out_dir(repo),
    }
}

/// Makes sure the guest is there: with [`GUEST_DIR_VAR`] set, checks that its folder has every
/// one of [`GUEST_FILES`] (one line naming the first missing one, and nothing is built);
/// otherwise builds it unless it is up to date (the script caches; a second run takes a second).
pub fn ensure_built(repo: &Path) -> Result<(), String> {
    match std::env::var_os(GUEST_DIR_VAR).filter(|v| !v.is_empty()) {
        Some(dir) => check_complete(Path::new(&dir)),
        None => run_build_script(repo),
    }
}

/// One line naming the first of [`GUEST_FILES`] that the ready guest folder `dir` lacks.
fn check_complete(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{GUEST_DIR_VAR}={}: no such folder", dir.display()));
    }
    match GUEST_FILES.into_iter().find(|file| !dir.join(file).is_file()) {
        Some(file) => Err(format!(
            "{GUEST_DIR_VAR}={} is not a complete lab guest: it has no {file} (build one with labs/guest/build.sh --out DIR)",
            dir.display()
        )),
        None => Ok(()),
    }
}

fn run_build_script(repo: &Path) -> Result<(), String> {
    // One build at a time within this process; the script itself locks across processes.
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let script = repo.join("labs/guest/build.sh");
    // Its progress lines go to stderr: stdout belongs to the caller's report (grade's tables).
    let status = Command::new("bash")
        .arg(&script)
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status}); its output above says why", script.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_names_the_guest_folder_made_absolute() {
        let repo = Path::new("/repo");
        assert_eq!(choose_guest_dir(repo, None), Path::new("/repo/labs/guest/out"));
        assert_eq!(choose_guest_dir(repo, Some(OsString::new())), Path::new("/repo/labs/guest/out"), "empty: unset");
        assert_eq!(choose_guest_dir(repo, Some("/srv/guest".into())), Path::new("/srv/guest"));
        let relative = choose_guest_dir(repo, Some("guest".into()));
        assert_eq!(relative, std::env::current_dir().unwrap().join("guest"));
    }

    #[test]
    fn an_incomplete_folder_names_its_first_missing_file() {
        let dir = std::env::temp_dir().join(format!("checkpoints-guest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["vmlinux", "bzImage", "System.map", "disk.ext4"] {
            std::fs::write(dir.join(file), b"x").unwrap();
        }
        let err = check_complete(&dir).unwrap_err();
        assert_eq!(
            err,
            format!(
                "MINIVIRT_GUEST_DIR={} is not a complete lab guest: it has no initramfs.cpio (build one with labs/guest/build.sh --out DIR)",
                dir.display()
            )
        );
        std::fs::write(dir.join("initramfs.cpio"), b"x").unwrap();
        assert_eq!(check_complete(&dir), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(check_complete(&dir).unwrap_err(), format!("MINIVIRT_GUEST_DIR={}: no such folder", dir.display()));
    }
}
