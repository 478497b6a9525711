//! Virtio: paravirtual devices that the guest drives through shared-memory queues.
//!
//! - [`queue`]: the split virtqueue, seen from the device;
//! - [`driver`]: the same queue seen from the guest's driver (the demo and the tests use it);
//! - [`mmio`]: the virtio-mmio transport (registers, status handshake, notifications,
//!   interrupts) and the [`mmio::VirtioDevice`] trait for what sits behind it;
//! - [`block`]: virtio-blk, a disk backed by a raw image file.
//!
//! # Resources
//! - Virtual I/O Device (VIRTIO) Version 1.2:
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.

pub mod block;
pub mod driver;
pub mod mmio;
pub mod queue;
#[cfg(test)]
pub(crate) mod test_utils;
