//! Where the lab guest is: `labs/guest/out/`, built by `labs/guest/build.sh`, or the folder
//! that `MINIVIRT_GUEST_DIR` names.
//!
//! An instructor can build the guest once (`labs/guest/build.sh --out DIR`) and hand the folder
//! out; with `MINIVIRT_GUEST_DIR=DIR` every default path (`--kernel`, `--initrd`, stage 8's
//! `System.map`) points into it, and the checkpoints use it instead of building their own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable that names a ready guest folder (absolute, or relative to the
/// current folder). Empty counts as unset.
pub const GUEST_DIR_VAR: &str = "MINIVIRT_GUEST_DIR";

/// The folder the guest build writes to (known when this crate is compiled).
pub fn out_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../labs/guest/out"))
}

/// The guest folder in use: `MINIVIRT_GUEST_DIR` when it is set, else [`out_dir`].
pub fn guest_dir() -> PathBuf {
    choose_guest_dir(std::env::var_os(GUEST_DIR_VAR))
}

/// [`guest_dir`] for a given value of `MINIVIRT_GUEST_DIR` (`None`: unset).
pub fn choose_guest_dir(var: Option<OsString>) -> PathBuf {
    var.filter(|v| !v.is_empty()).map_or_else(out_dir, PathBuf::from)
}

/// The default kernel: the uncompressed ELF vmlinux (it skips the slow decompressor).
pub fn default_kernel() -> PathBuf {
    guest_dir().join("vmlinux")
}

/// The default initrd: the uncompressed initramfs.
pub fn default_initrd() -> PathBuf {
    guest_dir().join("initramfs.cpio")
}

/// A hint for when the default guest is missing.
pub fn build_hint() -> String {
    hint_for(std::env::var_os(GUEST_DIR_VAR))
}

/// [`build_hint`] for a given value of `MINIVIRT_GUEST_DIR` (`None`: unset).
fn hint_for(var: Option<OsString>) -> String {
    match var.filter(|v| !v.is_empty()) {
        Some(dir) => format!(
            "{GUEST_DIR_VAR}={} is not a complete lab guest (build one with labs/guest/build.sh --out DIR)",
            Path::new(&dir).display()
        ),
        None => format!("build the lab guest first: bash {}/../build.sh", out_dir().display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_moves_every_default_and_empty_means_unset() {
        assert_eq!(choose_guest_dir(None), out_dir());
        assert_eq!(choose_guest_dir(Some(OsString::new())), out_dir());
        assert!(out_dir().ends_with("labs/guest/out"));
        assert_eq!(choose_guest_dir(Some("/srv/guest".into())), Path::new("/srv/guest"));
        assert_eq!(choose_guest_dir(Some("guest".into())), Path::new("guest"), "relative to the current folder");
    }

    #[test]
    fn the_hint_names_the_variable_when_it_is_set() {
        assert_eq!(
            hint_for(Some("/srv/guest".into())),
            "MINIVIRT_GUEST_DIR=/srv/guest is not a complete lab guest (build one with labs/guest/build.sh --out DIR)"
        );
        assert!(hint_for(None).starts_with("build the lab guest first: bash "), "{}", hint_for(None));
        assert!(hint_for(None).ends_with("labs/guest/out/../build.sh"));
    }
}
