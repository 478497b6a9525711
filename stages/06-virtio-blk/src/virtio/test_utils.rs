//! Helpers shared by the unit tests of the virtio modules: the driver's side of a split virtqueue
//! and of the virtio-mmio handshake, written the way Linux's `virtio_ring.c` and `virtio_mmio.c`
//! do it, so that the device side is tested against an independent implementation of the layout.
//!
//! The interrupt line of the tests is stage 4's `stage04::irq::testing::CountingTrigger`.

use stage02::bus::BusDevice;
use stage02::memory::{GuestAddress, GuestMemory};

use super::mmio::{
    DEVICE_FEATURES_OFFSET, DEVICE_FEATURES_SEL_OFFSET, DRIVER_FEATURES_OFFSET, DRIVER_FEATURES_SEL_OFFSET,
    INTERRUPT_ACK_OFFSET, INTERRUPT_STATUS_OFFSET, QUEUE_DESC_LOW_OFFSET, QUEUE_DEVICE_LOW_OFFSET,
    QUEUE_DRIVER_LOW_OFFSET, QUEUE_NUM_MAX_OFFSET, QUEUE_NUM_OFFSET, QUEUE_READY_OFFSET, QUEUE_SEL_OFFSET,
    STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, STATUS_OFFSET,
};
use super::queue::{Queue, DESCRIPTOR_SIZE, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

/// One queue's three areas, at addresses the test chooses.
pub(crate) struct DriverQueue {
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
    pub size: u16,
    /// Our copy of `avail.idx`.
    pub avail_idx: u16,
}

impl DriverQueue {
    /// Areas at `base`, `base + 0x1000` and `base + 0x2000` (enough for 256 entries).
    pub fn at(base: u64, size: u16) -> Self {
        DriverQueue { desc_table: base, avail_ring: base + 0x1000, used_ring: base + 0x2000, size, avail_idx: 0 }
    }

    /// Writes descriptor `index` of the queue's table.
    pub fn set_desc(&self, mem: &GuestMemory, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        write_desc(mem, self.desc_table, index, addr, len, flags, next);
    }

    /// Writes a chain of `(addr, len, write_only)` buffers at descriptors `first..`, linked
    /// with NEXT; returns the head.
    pub fn add_chain(&self, mem: &GuestMemory, first: u16, buffers: &[(u64, u32, bool)]) -> u16 {
        for (i, &(addr, len, write)) in buffers.iter().enumerate() {
            let index = first + i as u16;
            let mut flags = if write { VIRTQ_DESC_F_WRITE } else { 0 };
            if i + 1 < buffers.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.set_desc(mem, index, addr, len, flags, index + 1);
        }
        first
    }

    /// Puts `head` in the next available ring slot, then bumps `avail.idx` (entry first).
    pub fn publish(&mut self, mem: &GuestMemory, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        mem.write_obj(GuestAddress(self.avail_ring + 4 + 2 * slot), head).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(mem, self.avail_idx);
    }

    /// Writes `avail.idx` directly (for tests that lie about it).
    pub fn set_avail_idx(&self, mem: &GuestMemory, idx: u16) {
        mem.write_obj(GuestAddress(self.avail_ring + 2), idx).unwrap();
    }

    /// Writes `avail.flags`.
    pub fn set_avail_flags(&self, mem: &GuestMemory, flags: u16) {
        mem.write_obj(GuestAddress(self.avail_ring), flags).unwrap();
    }

    /// `used.idx` as the device last published it.
    pub fn used_idx(&self, mem: &GuestMemory) -> u16 {
        mem.read_obj(GuestAddress(self.used_ring + 2)).unwrap()
    }

    /// Used ring entry `n` (free-running): `(id, len)`.
    pub fn used_elem(&self, mem: &GuestMemory, n: u16) -> (u32, u32) {
        let at = self.used_ring + 4 + 8 * u64::from(n % self.size);
        (mem.read_obj(GuestAddress(at)).unwrap(), mem.read_obj(GuestAddress(at + 4)).unwrap())
    }

    /// A device-side [`Queue`] set up on these areas (size, addresses), not yet enabled.
    pub fn device_queue(&self, max_size: u16) -> Queue {
        let mut queue = Queue::new(max_size);
        queue.set_size(self.size);
        queue.set_desc_table(GuestAddress(self.desc_table));
        queue.set_avail_ring(GuestAddress(self.avail_ring));
        queue.set_used_ring(GuestAddress(self.used_ring));
        queue
    }
}

/// Writes descriptor `index` of the table at `table` (the queue's or an indirect one).
pub(crate) fn write_desc(mem: &GuestMemory, table: u64, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let at = table + u64::from(index) * DESCRIPTOR_SIZE;
    mem.write_obj(GuestAddress(at), addr).unwrap();
    mem.write_obj(GuestAddress(at + 8), len).unwrap();
    mem.write_obj(GuestAddress(at + 12), flags).unwrap();
    mem.write_obj(GuestAddress(at + 14), next).unwrap();
}

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
