//! Where the lab guest is: `labs/guest/out/`, built by `labs/guest/build.sh`.

use std::path::PathBuf;

/// The folder the guest build writes to (known when this crate is compiled).
pub fn out_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../labs/guest/out"))
}

/// The default kernel: the uncompressed ELF vmlinux (it skips the slow decompressor).
pub fn default_kernel() -> PathBuf {
    out_dir().join("vmlinux")
}

/// The default initrd: the uncompressed initramfs.
pub fn default_initrd() -> PathBuf {
    out_dir().join("initramfs.cpio")
}

/// A hint for when the default guest is missing.
pub fn build_hint() -> String {
    format!("build the lab guest first: bash {}/../build.sh", out_dir().display())
}
