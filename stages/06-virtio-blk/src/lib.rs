//! Stage 6: virtio (the transport, the split virtqueue and the block device; the wiring into a
//! booting VM and the stage binary are still to come).
#![deny(missing_docs)]

pub mod virtio;
