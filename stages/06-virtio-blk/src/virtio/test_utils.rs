//! Helpers shared by the unit tests of the virtio modules: the driver's side of the virtio-mmio
//! handshake, written the way Linux's `virtio_mmio.c` does it, and (re-exported) the driver's
//! side of a split virtqueue from [`super::driver`].
//!
//! The interrupt line of the tests is stage 4's `stage04::irq::testing::CountingTrigger`.

use stage02::bus::BusDevice;

pub(crate) use super::driver::{write_desc, DriverQueue};

use super::mmio::{
    DEVICE_FEATURES_OFFSET, DEVICE_FEATURES_SEL_OFFSET, DRIVER_FEATURES_OFFSET, DRIVER_FEATURES_SEL_OFFSET,
    INTERRUPT_ACK_OFFSET, INTERRUPT_STATUS_OFFSET, QUEUE_DESC_LOW_OFFSET, QUEUE_DEVICE_LOW_OFFSET,
    QUEUE_DRIVER_LOW_OFFSET, QUEUE_NUM_MAX_OFFSET, QUEUE_NUM_OFFSET, QUEUE_READY_OFFSET, QUEUE_SEL_OFFSET,
    STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, STATUS_OFFSET,
};

// The driver side of the virtio-mmio transport.

/// Reads a 32-bit register, as every register access of the driver is.
pub(crate) fn read32(device: &mut impl BusDevice, offset: u64) -> u32 {
    let mut data = [0u8; 4];
    device.read(offset, &mut data);
    u32::from_le_bytes(data)
}

/// Writes a 32-bit register.
pub(crate) fn write32(device: &mut impl BusDevice, offset: u64, value: u32) {
    device.write(offset, &value.to_le_bytes());
}

/// What Linux's `virtio_dev_probe` does up to `FEATURES_OK`: reset, ACKNOWLEDGE, DRIVER,
/// read the device features, accept `wanted & offered`, FEATURES_OK. Returns the status
/// read back.
pub(crate) fn negotiate(device: &mut impl BusDevice, wanted: u64) -> u32 {
    write32(device, STATUS_OFFSET, 0);
    write32(device, STATUS_OFFSET, STATUS_ACKNOWLEDGE);
    write32(device, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    write32(device, DEVICE_FEATURES_SEL_OFFSET, 1);
    let high = read32(device, DEVICE_FEATURES_OFFSET);
    write32(device, DEVICE_FEATURES_SEL_OFFSET, 0);
    let low = read32(device, DEVICE_FEATURES_OFFSET);
    let accepted = wanted & (u64::from(high) << 32 | u64::from(low));
    write32(device, DRIVER_FEATURES_SEL_OFFSET, 1);
    write32(device, DRIVER_FEATURES_OFFSET, (accepted >> 32) as u32);
    write32(device, DRIVER_FEATURES_SEL_OFFSET, 0);
    write32(device, DRIVER_FEATURES_OFFSET, accepted as u32);
    let status = read32(device, STATUS_OFFSET);
    write32(device, STATUS_OFFSET, status | STATUS_FEATURES_OK);
    read32(device, STATUS_OFFSET)
}

/// What `vm_setup_vq` does for queue `index`: select, check, size, addresses, ready.
/// Returns `QueueReady` read back.
pub(crate) fn setup_queue(device: &mut impl BusDevice, index: u32, size: u32, desc: u64, avail: u64, used: u64) -> u32 {
    write32(device, QUEUE_SEL_OFFSET, index);
    assert_eq!(read32(device, QUEUE_READY_OFFSET), 0, "queue already in use");
    assert!(read32(device, QUEUE_NUM_MAX_OFFSET) >= size);
    write32(device, QUEUE_NUM_OFFSET, size);
    for (low, value) in
        [(QUEUE_DESC_LOW_OFFSET, desc), (QUEUE_DRIVER_LOW_OFFSET, avail), (QUEUE_DEVICE_LOW_OFFSET, used)]
    {
        write32(device, low, value as u32);
        write32(device, low + 4, (value >> 32) as u32);
    }
    write32(device, QUEUE_READY_OFFSET, 1);
    read32(device, QUEUE_READY_OFFSET)
}

/// Sets DRIVER_OK on top of the current status.
pub(crate) fn driver_ok(device: &mut impl BusDevice) {
    let status = read32(device, STATUS_OFFSET);
    write32(device, STATUS_OFFSET, status | STATUS_DRIVER_OK);
}

/// What `vm_interrupt` does: read InterruptStatus, acknowledge it, return it.
pub(crate) fn take_interrupt(device: &mut impl BusDevice) -> u32 {
    let status = read32(device, INTERRUPT_STATUS_OFFSET);
    write32(device, INTERRUPT_ACK_OFFSET, status);
    status
}
