//! The virtio-mmio transport, version 2: a page of 32-bit registers through which the driver
//! finds a virtio device, negotiates features, sets up its queues and notifies it.
//!
//! Virtio separates the *device* (a block device, a network card: [`VirtioDevice`]) from the
//! *transport* that connects it to the guest (PCI, MMIO, channel I/O). MMIO is the simplest:
//! no bus enumeration, just a register window at an address the guest learns from its command
//! line (`virtio_mmio.device=4K@0xd0000000:5`) or device tree. The guest driver
//! (Linux `drivers/virtio/virtio_mmio.c`) then:
//!
//! 1. checks `MagicValue` ("virt"), `Version` (2) and `DeviceID` (0 means no device);
//! 2. walks the status handshake: `ACKNOWLEDGE`, `DRIVER`, reads `DeviceFeatures`, writes the
//!    features it accepts to `DriverFeatures`, sets `FEATURES_OK` and reads it back (the device
//!    clears it to refuse the features);
//! 3. for each queue: `QueueSel`, `QueueNumMax`, `QueueNum`, the three area addresses,
//!    `QueueReady = 1`;
//! 4. sets `DRIVER_OK`: the device is live. From then on the driver writes a queue index to
//!    `QueueNotify` when it has made buffers available, and the device raises an interrupt
//!    when it has used some; the driver reads `InterruptStatus` and writes it to
//!    `InterruptACK`.
//!
//! Writing 0 to `Status` resets the device at any time. This transport is modern only
//! (version 2, little-endian, `VIRTIO_F_VERSION_1` required): no legacy `QueuePFN`.
//!
//! The register offsets and the bits of `Status` and `InterruptStatus` are in `registers.rs`,
//! re-exported here; the transport's unit tests are in `tests.rs`.
//!
//! # Resources
//! - Virtio 1.2, §4.2.2 "MMIO Device Register Layout", §4.2.3 "MMIO-specific Initialization
//!   And Device Operation", §2.1 "Device Status Field", §2.2 "Feature Bits", §3.1 "Device
//!   Initialization", §6 "Reserved Feature Bits":
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.
//! - The driver: Linux `drivers/virtio/virtio_mmio.c` (`vm_setup_vq`, `vm_interrupt`,
//!   `vm_finalize_features`) and `drivers/virtio/virtio.c` (`virtio_features_ok`).
//! - Firecracker `src/vmm/src/devices/virtio/transport/mmio.rs`, which this follows.

use std::sync::Arc;

use stage02::bus::BusDevice;
use stage02::guest_error;
use stage02::memory::{GuestAddress, GuestMemory};

use super::queue::{Queue, QueueError, MAX_QUEUE_SIZE};

mod registers;
#[cfg(test)]
mod tests;

pub use registers::*;

/// Feature bit 32, `VIRTIO_F_VERSION_1` (§6): the device and driver speak virtio 1.x. A
/// version 2 MMIO device must offer it, and this one refuses drivers that do not accept it.
pub const VIRTIO_F_VERSION_1: u32 = 32;

/// Where guest errors of this module are reported from.
const SOURCE: &str = "virtio-mmio";

/// Errors of the transport and of the devices behind it.
#[derive(Debug, thiserror::Error)]
pub enum MmioError {
    /// The device declared a queue size the transport cannot use (a VMM bug).
    #[error("queue {index} has maximum size {size}: not a power of two between 1 and {MAX_QUEUE_SIZE}")]
    BadQueueMaxSize {
        /// The queue.
        index: usize,
        /// Its declared maximum size.
        size: u16,
    },
    /// The device does not offer `VIRTIO_F_VERSION_1` (a VMM bug: a modern transport needs it).
    #[error("the device does not offer VIRTIO_F_VERSION_1, which a version 2 virtio-mmio device must")]
    NoVersion1,
    /// The driver set `DRIVER_OK` without enabling a queue the device needs.
    #[error("queue {0} is not ready at DRIVER_OK")]
    QueueNotReady(usize),
    /// A queue failed in a way the device cannot get past (its used ring cannot be written).
    #[error("queue failure: {0}")]
    Queue(#[from] QueueError),
}

/// How the transport raises the device's interrupt line: one edge per event. It is stage 4's
/// trigger: the VMM passes an eventfd registered with KVM as an irqfd on the device's GSI
/// (writing it injects the interrupt without a vCPU exit); tests pass a counter.
pub use stage04::irq::Trigger;

/// A virtio device behind the transport: its identity, features and configuration space, and
/// the work it does on its queues.
///
/// The transport owns the queues and guest memory and calls these methods from the thread that
/// handles the access (a vCPU, or later an event loop): every call is short and never blocks on
/// the guest.
pub trait VirtioDevice: Send {
    /// The virtio device ID (§5: 1 network, 2 block, ...), shown in `DeviceID`.
    fn device_type(&self) -> u32;

    /// The feature bits the device offers, including transport ones such as
    /// [`VIRTIO_F_VERSION_1`] and `VIRTIO_F_INDIRECT_DESC`.
    fn device_features(&self) -> u64;

    /// One entry per queue: its maximum size (`QueueNumMax`), a power of two no larger than
    /// [`MAX_QUEUE_SIZE`].
    fn queue_max_sizes(&self) -> &[u16];

    /// The guest reads `data.len()` bytes of configuration space at `offset`. `data` arrives
    /// zeroed; bytes beyond the configuration space stay zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// The guest writes configuration space.
    fn write_config(&mut self, offset: u64, data: &[u8]);

    /// The driver set `DRIVER_OK` having accepted `driver_features`; `queues` are as it set
    /// them up.
    ///
    /// # Errors
    /// Why the device cannot work this way; the transport sets `DEVICE_NEEDS_RESET`.
    fn activate(&mut self, driver_features: u64, queues: &[Queue]) -> Result<(), MmioError>;

    /// The driver notified queue `queue_index` (ready, and the device active). Pops what is
    /// available, does the work, returns the buffers, and says whether the driver should get a
    /// used-buffer interrupt ([`Queue::needs_notification`] after at least one `add_used`).
    ///
    /// Guest mistakes in requests are the device's to report and survive.
    ///
    /// # Errors
    /// Only when the device cannot go on; the transport sets `DEVICE_NEEDS_RESET`.
    fn process_queue(&mut self, queue_index: usize, queues: &mut [Queue], mem: &GuestMemory)
        -> Result<bool, MmioError>;

    /// The driver reset the device: forget everything negotiated since.
    fn reset(&mut self);
}

/// A virtio device behind a virtio-mmio register window.
///
/// # Integration
/// The VMM installs it in three places (and a fourth later):
/// 1. the MMIO bus: `bus.insert("virtio-blk", base, MMIO_WINDOW_SIZE, Arc::new(Mutex::new(transport)))`,
///    with `base` inside the device hole and page-aligned;
/// 2. an interrupt: an eventfd registered with `KVM_IRQFD` on a free GSI, given to
///    [`MmioTransport::new`] as the trigger;
/// 3. the kernel command line: `virtio_mmio.device=4K@<base>:<gsi>`;
/// 4. (optional) one `KVM_IOEVENTFD` per queue on `base + QUEUE_NOTIFY_OFFSET`, 4 bytes,
///    datamatch the queue index: KVM then completes the notify write without a vCPU exit and
///    signals the eventfd; an event loop calls [`MmioTransport::handle_notify`] on the shared
///    transport. Without it, the write exits to the vCPU thread, which calls the same method
///    through [`BusDevice::write`].
pub struct MmioTransport<D, T> {
    device: D,
    mem: Arc<GuestMemory>,
    interrupt: T,
    queues: Vec<Queue>,
    /// `QueueSel`.
    queue_select: u32,
    /// `DeviceFeaturesSel`.
    device_features_select: u32,
    /// `DriverFeaturesSel`.
    driver_features_select: u32,
    /// What the driver wrote to `DriverFeatures`, both halves.
    driver_features: u64,
    /// The driver accepted a feature beyond bit 63 (we offer none): refuse `FEATURES_OK`.
    driver_features_beyond_64: bool,
    /// The device status field.
    device_status: u32,
    /// `InterruptStatus`.
    interrupt_status: u32,
}

impl<D: VirtioDevice, T: Trigger> MmioTransport<D, T> {
    /// Puts `device` behind a register window. `mem` is the guest RAM its queues live in;
    /// `interrupt` raises its interrupt line.
    ///
    /// # Errors
    /// [`MmioError::BadQueueMaxSize`] or [`MmioError::NoVersion1`] if the device is not
    /// something this transport can serve.
    ///
    /// # Example
    /// ```ignore
    /// let irq = stage04::irq::register_irqfd(&vm.fd, VIRTIO_BLK_GSI)?;
    /// let disk = open_disk(Path::new("disk.ext4"), false)?;
    /// let transport = MmioTransport::new(VirtioBlock::new(disk), Arc::clone(&vm.memory), irq)?;
    /// buses.mmio.insert("virtio-blk", VIRTIO_BLK_BASE, MMIO_WINDOW_SIZE, Arc::new(Mutex::new(transport)))?;
    /// cmdline.push_str(&format!(" virtio_mmio.device=4K@{VIRTIO_BLK_BASE:#x}:{VIRTIO_BLK_GSI}"));
    /// ```
    pub fn new(device: D, mem: Arc<GuestMemory>, interrupt: T) -> Result<Self, MmioError> {
        if device.device_features() & (1 << VIRTIO_F_VERSION_1) == 0 {
            return Err(MmioError::NoVersion1);
        }
        let mut queues = Vec::new();
        for (index, &size) in device.queue_max_sizes().iter().enumerate() {
            if !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
                return Err(MmioError::BadQueueMaxSize { index, size });
            }
            queues.push(Queue::new(size));
        }
        Ok(MmioTransport {
            device,
            mem,
            interrupt,
            queues,
            queue_select: 0,
            device_features_select: 0,
            driver_features_select: 0,
            driver_features: 0,
            driver_features_beyond_64: false,
            device_status: 0,
            interrupt_status: 0,
        })
    }

    /// The device behind the transport.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device behind the transport, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The queues, as the driver set them up.
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }

    /// The device status field, as the driver reads it.
    pub fn device_status(&self) -> u32 {
        self.device_status
    }

    /// `InterruptStatus`.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// The features both sides agreed on (meaningful once `FEATURES_OK` is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// The driver notified queue `queue_index`: the device processes it now, on this thread,
    /// and the driver gets a used-buffer interrupt if the device says so.
    ///
    /// A `QueueNotify` write arrives here from the vCPU thread that made it ([`BusDevice::write`]):
    /// the simplest correct design, at the price of doing the I/O on the vCPU. An ioeventfd on
    /// the notify register would deliver the same notification to another thread instead, which
    /// calls this method on the shared transport.
    pub fn handle_notify(&mut self, queue_index: u32) {
        if self.device_status & STATUS_DRIVER_OK == 0 {
            guest_error!(SOURCE, "queue {queue_index} notified before DRIVER_OK (status {:#x})", self.device_status);
            return;
        }
        if self.device_status & STATUS_DEVICE_NEEDS_RESET != 0 {
            // The device has stopped and said so; it waits for the driver to reset it.
            return;
        }
        let index = queue_index as usize;
        match self.queues.get(index) {
            None => {
                guest_error!(SOURCE, "notify for queue {queue_index}, which does not exist");
                return;
            }
            Some(queue) if !queue.is_ready() => {
                guest_error!(SOURCE, "notify for queue {queue_index}, which is not ready");
                return;
            }
            Some(_) => {}
        }
        match self.device.process_queue(index, &mut self.queues, &self.mem) {
            Ok(true) => self.raise_interrupt(INTERRUPT_USED_BUFFER),
            Ok(false) => {}
            Err(error) => self.fail(error),
        }
    }

    /// The device cannot go on: sets `DEVICE_NEEDS_RESET` and, if the driver is running,
    /// tells it with a configuration change interrupt (§2.1.2).
    fn fail(&mut self, error: MmioError) {
        guest_error!(SOURCE, "device needs reset: {error}");
        self.device_status |= STATUS_DEVICE_NEEDS_RESET;
        if self.device_status & STATUS_DRIVER_OK != 0 {
            self.raise_interrupt(INTERRUPT_CONFIG_CHANGE);
        }
    }

    /// Sets `reason` in `InterruptStatus` and raises the line. Every event gets its own edge,
    /// even if the driver has not acknowledged the previous one: its handler reads
    /// `InterruptStatus` once, so an event after that read needs a new interrupt to be seen.
    fn raise_interrupt(&mut self, reason: u32) {
        self.interrupt_status |= reason;
        if let Err(error) = self.interrupt.trigger() {
            eprintln!("[minivirt] {SOURCE}: cannot raise the interrupt: {error}");
        }
    }

    /// Writing 0 to `Status`: back to the state after power-on. "Upon reset, the device MUST
    /// clear all bits in InterruptStatus and ready bits in the QueueReady register" (§4.2.2.1).
    fn reset(&mut self) {
        self.device.reset();
        for queue in &mut self.queues {
            queue.reset();
        }
        self.queue_select = 0;
        self.device_features_select = 0;
        self.driver_features_select = 0;
        self.driver_features = 0;
        self.driver_features_beyond_64 = false;
        self.device_status = 0;
        self.interrupt_status = 0;
    }

    // qa:begin stage6-status-handshake
    /// The driver writes the device status field.
    ///
    /// The driver only ever adds bits, in the order of §3.1.1: `ACKNOWLEDGE`, `DRIVER`,
    /// `FEATURES_OK`, `DRIVER_OK` (or `FAILED` at any point); writing 0 resets. The device
    /// answers `FEATURES_OK` by keeping the bit (features accepted) or clearing it (refused,
    /// and the driver reads that back), and `DRIVER_OK` by activating the device.
    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let old = self.device_status;
        // Drivers write back what they read plus a new bit, so the device's own
        // DEVICE_NEEDS_RESET may come back: it is not the driver's to set or clear.
        let new = value & !STATUS_DEVICE_NEEDS_RESET;
        if new & !STATUS_DRIVER_BITS != 0 {
            guest_error!(SOURCE, "status {value:#x} has undefined bits");
            return;
        }
        if old & STATUS_DRIVER_BITS & !new != 0 {
            guest_error!(SOURCE, "status {value:#x} clears bits of {old:#x} without a reset");
            return;
        }
        let added = new & !old;
        let needs = |bit: u32, before: u32| added & bit == 0 || new & before != 0;
        let in_order = needs(STATUS_DRIVER, STATUS_ACKNOWLEDGE)
            && needs(STATUS_FEATURES_OK, STATUS_DRIVER)
            && needs(STATUS_DRIVER_OK, STATUS_FEATURES_OK);
        if !in_order {
            guest_error!(SOURCE, "status {value:#x} after {old:#x} skips a step of the handshake");
            return;
        }
        let mut new = new;
        if added & STATUS_FEATURES_OK != 0 {
            if let Some(reason) = self.refuse_features() {
                // The bit reads back clear: that is how the driver learns of the refusal.
                guest_error!(SOURCE, "features {:#x} refused: {reason}", self.driver_features);
                new &= !(STATUS_FEATURES_OK | STATUS_DRIVER_OK);
            }
        }
        self.device_status = new | (old & STATUS_DEVICE_NEEDS_RESET);
        if added & new & STATUS_DRIVER_OK != 0 {
            if let Err(error) = self.device.activate(self.driver_features, &self.queues) {
                self.fail(error);
            }
        }
    }

    /// Why the features the driver accepted cannot be used, if they cannot.
    fn refuse_features(&self) -> Option<String> {
        let offered = self.device.device_features();
        let unoffered = self.driver_features & !offered;
        if unoffered != 0 || self.driver_features_beyond_64 {
            Some(format!("accepts features the device does not offer ({unoffered:#x})"))
        } else if self.driver_features & (1 << VIRTIO_F_VERSION_1) == 0 {
            Some("does not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)".into())
        } else {
            None
        }
    }
    // qa:end stage6-status-handshake

    /// The driver writes `DriverFeatures`: allowed between `DRIVER` and `FEATURES_OK`.
    fn write_driver_features(&mut self, value: u32) {
        let negotiating = self.device_status & (STATUS_DRIVER | STATUS_FEATURES_OK) == STATUS_DRIVER;
        if !negotiating {
            guest_error!(SOURCE, "DriverFeatures written outside negotiation (status {:#x})", self.device_status);
            return;
        }
        let value = u64::from(value);
        match self.driver_features_select {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | value,
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | value << 32,
            _ => self.driver_features_beyond_64 |= value != 0,
        }
    }

    /// The selected queue, if the driver may change its setup now: after `FEATURES_OK`, before
    /// `DRIVER_OK`, and while the queue is not ready (§4.2.2.2).
    fn queue_for_setup(&mut self, register: &str) -> Option<&mut Queue> {
        let status = self.device_status;
        let setup_phase = STATUS_FEATURES_OK | STATUS_DRIVER_OK | STATUS_FAILED | STATUS_DEVICE_NEEDS_RESET;
        if status & setup_phase != STATUS_FEATURES_OK {
            guest_error!(SOURCE, "{register} written outside queue setup (status {status:#x})");
            return None;
        }
        let index = self.queue_select;
        match self.queues.get_mut(index as usize) {
            None => {
                guest_error!(SOURCE, "{register} written for queue {index}, which does not exist");
                None
            }
            Some(queue) if queue.is_ready() => {
                guest_error!(SOURCE, "{register} written while queue {index} is ready");
                None
            }
            Some(queue) => Some(queue),
        }
    }

    /// Sets half of one of the selected queue's area addresses.
    fn write_queue_address(
        &mut self,
        register: &str,
        value: u32,
        high: bool,
        get: fn(&Queue) -> GuestAddress,
        set: fn(&mut Queue, GuestAddress),
    ) {
        if let Some(queue) = self.queue_for_setup(register) {
            let old = get(queue).0;
            let value = u64::from(value);
            let new = if high { (old & 0xffff_ffff) | value << 32 } else { (old & !0xffff_ffff) | value };
            set(queue, GuestAddress(new));
        }
    }

    /// The driver writes `QueueReady`.
    fn write_queue_ready(&mut self, value: u32) {
        let index = self.queue_select;
        match value {
            // Allowed whenever: the device stops using the queue.
            0 => {
                if let Some(queue) = self.queues.get_mut(index as usize) {
                    queue.disable();
                }
            }
            1 => {
                let mem = Arc::clone(&self.mem);
                let features = self.driver_features;
                if let Some(queue) = self.queue_for_setup("QueueReady") {
                    if let Err(error) = queue.enable(&mem, features) {
                        // QueueReady reads back 0: the queue is not usable.
                        guest_error!(SOURCE, "queue {index} not enabled: {error}");
                    }
                }
            }
            _ => guest_error!(SOURCE, "QueueReady written with {value:#x}"),
        }
    }

    fn read_register(&self, offset: u64) -> Option<u32> {
        let selected_queue = self.queues.get(self.queue_select as usize);
        let value = match offset {
            MAGIC_VALUE_OFFSET => MMIO_MAGIC_VALUE,
            VERSION_OFFSET => MMIO_VERSION,
            DEVICE_ID_OFFSET => self.device.device_type(),
            VENDOR_ID_OFFSET => VENDOR_ID,
            DEVICE_FEATURES_OFFSET => {
                let features = self.device.device_features();
                match self.device_features_select {
                    0 => features as u32,
                    1 => (features >> 32) as u32,
                    _ => 0,
                }
            }
            QUEUE_NUM_MAX_OFFSET => selected_queue.map_or(0, |q| u32::from(q.max_size())),
            QUEUE_READY_OFFSET => selected_queue.map_or(0, |q| u32::from(q.is_ready())),
            INTERRUPT_STATUS_OFFSET => self.interrupt_status,
            STATUS_OFFSET => self.device_status,
            // No shared memory regions: "a length of -1" and "a base address of 0xffff...".
            SHM_LEN_LOW_OFFSET | SHM_LEN_HIGH_OFFSET | SHM_BASE_LOW_OFFSET | SHM_BASE_HIGH_OFFSET => u32::MAX,
            // Device configuration here never changes while the driver runs (no resize yet).
            CONFIG_GENERATION_OFFSET => 0,
            _ => return None,
        };
        Some(value)
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            DEVICE_FEATURES_SEL_OFFSET => self.device_features_select = value,
            DRIVER_FEATURES_OFFSET => self.write_driver_features(value),
            DRIVER_FEATURES_SEL_OFFSET => self.driver_features_select = value,
            QUEUE_SEL_OFFSET => self.queue_select = value,
            QUEUE_NUM_OFFSET => match u16::try_from(value) {
                Ok(size) => {
                    if let Some(queue) = self.queue_for_setup("QueueNum") {
                        queue.set_size(size);
                    }
                }
                Err(_) => guest_error!(SOURCE, "QueueNum {value} is beyond any queue size"),
            },
            QUEUE_READY_OFFSET => self.write_queue_ready(value),
            QUEUE_NOTIFY_OFFSET => self.handle_notify(value),
            // Bits the driver acknowledges stop being reported; undefined bits change nothing.
            INTERRUPT_ACK_OFFSET => self.interrupt_status &= !value,
            STATUS_OFFSET => self.set_status(value),
            QUEUE_DESC_LOW_OFFSET => {
                self.write_queue_address("QueueDescLow", value, false, Queue::desc_table, Queue::set_desc_table)
            }
            QUEUE_DESC_HIGH_OFFSET => {
                self.write_queue_address("QueueDescHigh", value, true, Queue::desc_table, Queue::set_desc_table)
            }
            QUEUE_DRIVER_LOW_OFFSET => {
                self.write_queue_address("QueueDriverLow", value, false, Queue::avail_ring, Queue::set_avail_ring)
            }
            QUEUE_DRIVER_HIGH_OFFSET => {
                self.write_queue_address("QueueDriverHigh", value, true, Queue::avail_ring, Queue::set_avail_ring)
            }
            QUEUE_DEVICE_LOW_OFFSET => {
                self.write_queue_address("QueueDeviceLow", value, false, Queue::used_ring, Queue::set_used_ring)
            }
            QUEUE_DEVICE_HIGH_OFFSET => {
                self.write_queue_address("QueueDeviceHigh", value, true, Queue::used_ring, Queue::set_used_ring)
            }
            // There are no regions to select; the length and base registers say so.
            SHM_SEL_OFFSET => {}
            _ => guest_error!(SOURCE, "write of {value:#x} to read-only or undefined register {offset:#x}"),
        }
    }
}

impl<D: VirtioDevice, T: Trigger> BusDevice for MmioTransport<D, T> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= CONFIG_SPACE_OFFSET {
            // Configuration space is accessed bytewise, in any size the field needs.
            self.device.read_config(offset - CONFIG_SPACE_OFFSET, data);
            return;
        }
        // "The driver MUST only use 32 bit wide and aligned reads and writes" for registers.
        if data.len() != 4 || !offset.is_multiple_of(4) {
            guest_error!(SOURCE, "{}-byte read at register offset {offset:#x}", data.len());
            return;
        }
        match self.read_register(offset) {
            Some(value) => data.copy_from_slice(&value.to_le_bytes()),
            None => guest_error!(SOURCE, "read of write-only or undefined register {offset:#x}"),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_SPACE_OFFSET {
            self.device.write_config(offset - CONFIG_SPACE_OFFSET, data);
            return;
        }
        match <[u8; 4]>::try_from(data) {
            Ok(bytes) if offset.is_multiple_of(4) => self.write_register(offset, u32::from_le_bytes(bytes)),
            _ => guest_error!(SOURCE, "{}-byte write at register offset {offset:#x}", data.len()),
        }
    }
}
