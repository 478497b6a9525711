//! The fuzz targets of minivirt: one function per thing a guest or a file controls, each taking
//! arbitrary bytes and checking, besides "no panic", the invariants its module documents.
//!
//! The same functions run in two ways:
//! - coverage-guided, under libFuzzer: `fuzz/fuzz_targets/<name>.rs` is one line that calls
//!   the function here (`cargo +nightly fuzz run <name>`, see `fuzz/README.md`);
//! - bounded, on the stable toolchain: `tests/bounded.rs` runs each one over its seed corpus
//!   (`fuzz/corpus/<name>/`) and a fixed number of random inputs, so `cargo test` exercises
//!   every target without nightly.
//!
//! A violated invariant is a panic whose message names the step and what was wrong.
#![deny(missing_docs)]

pub mod edu;
pub mod guest_ram;
pub mod loader;
pub mod pci;
pub mod serial;
pub mod toml_files;
pub mod virtio_checks;
pub mod virtio_mmio;
pub mod virtqueue;

pub use edu::edu;
pub use loader::kernel_loader;
pub use pci::pci;
pub use serial::serial;
pub use toml_files::{checkpoint_spec, qa_bank};
pub use virtio_mmio::virtio_mmio;
pub use virtqueue::virtqueue;

/// A fuzz target: its name (the file in `fuzz/fuzz_targets/` and the corpus folder) and body.
#[derive(Clone, Copy)]
pub struct Target {
    /// Name of the target and of its corpus folder.
    pub name: &'static str,
    /// Runs one input; panics on a violated invariant.
    pub run: fn(&[u8]),
    /// The longest input worth generating at random.
    pub max_len: usize,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "serial", run: serial, max_len: 512 },
    Target { name: "virtio_mmio", run: virtio_mmio, max_len: 1024 },
    Target { name: "virtqueue", run: virtqueue, max_len: 2048 },
    Target { name: "pci", run: pci, max_len: 1024 },
    Target { name: "edu", run: edu, max_len: 1024 },
    Target { name: "kernel_loader", run: kernel_loader, max_len: 8192 },
    Target { name: "qa_bank", run: qa_bank, max_len: 4096 },
    Target { name: "checkpoint_spec", run: checkpoint_spec, max_len: 4096 },
];
