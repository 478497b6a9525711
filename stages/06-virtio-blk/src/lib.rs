//! Stage 6: virtio — the virtio-mmio transport, split virtqueues, and a virtio-blk disk.
//!
//! - [`virtio`]: the device side of virtio: [`virtio::queue`], [`virtio::mmio`],
//!   [`virtio::block`];
//! - [`disks`]: how `--disk` images become devices in a machine (window, interrupt,
//!   ioeventfd, command line);
//! - [`io_thread`]: the thread that serves queue notifications off the vCPUs;
//! - [`layout`]: where the disks' register windows and interrupts are;
//! - [`demo`]: `stage06 --demo virtqueue`, chains and disk requests without a guest.
#![deny(missing_docs)]

pub mod demo;
pub mod disks;
pub mod io_thread;
pub mod layout;
pub mod virtio;
