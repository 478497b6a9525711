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

/// Size of the register window: the `4K` of `virtio_mmio.device=4K@<base>:<irq>`.
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;

/// `MagicValue` (R): [`MMIO_MAGIC_VALUE`].
pub const MAGIC_VALUE_OFFSET: u64 = 0x000;
/// `Version` (R): [`MMIO_VERSION`].
pub const VERSION_OFFSET: u64 = 0x004;
/// `DeviceID` (R): the virtio device type (2 = block); 0 would mean "no device here".
pub const DEVICE_ID_OFFSET: u64 = 0x008;
/// `VendorID` (R): [`VENDOR_ID`].
pub const VENDOR_ID_OFFSET: u64 = 0x00c;
/// `DeviceFeatures` (R): 32 of the device's feature bits, chosen by `DeviceFeaturesSel`.
pub const DEVICE_FEATURES_OFFSET: u64 = 0x010;
/// `DeviceFeaturesSel` (W): which 32 bits `DeviceFeatures` shows (0: bits 0-31, 1: 32-63).
pub const DEVICE_FEATURES_SEL_OFFSET: u64 = 0x014;
/// `DriverFeatures` (W): 32 of the feature bits the driver accepts, chosen by `DriverFeaturesSel`.
pub const DRIVER_FEATURES_OFFSET: u64 = 0x020;
/// `DriverFeaturesSel` (W): which 32 bits a `DriverFeatures` write sets.
pub const DRIVER_FEATURES_SEL_OFFSET: u64 = 0x024;
/// `QueueSel` (W): the queue the other `Queue*` registers apply to.
pub const QUEUE_SEL_OFFSET: u64 = 0x030;
/// `QueueNumMax` (R): the selected queue's maximum size; 0 if there is no such queue.
pub const QUEUE_NUM_MAX_OFFSET: u64 = 0x034;
/// `QueueNum` (W): the size the driver chose for the selected queue.
pub const QUEUE_NUM_OFFSET: u64 = 0x038;
/// `QueueReady` (RW): 1 enables the selected queue, 0 disables it.
pub const QUEUE_READY_OFFSET: u64 = 0x044;
/// `QueueNotify` (W): the driver writes a queue index when it made buffers available.
pub const QUEUE_NOTIFY_OFFSET: u64 = 0x050;
/// `InterruptStatus` (R): why the interrupt was raised ([`INTERRUPT_USED_BUFFER`],
/// [`INTERRUPT_CONFIG_CHANGE`]).
pub const INTERRUPT_STATUS_OFFSET: u64 = 0x060;
/// `InterruptACK` (W): the driver writes the `InterruptStatus` bits it has handled.
pub const INTERRUPT_ACK_OFFSET: u64 = 0x064;
/// `Status` (RW): the device status field (§2.1); writing 0 resets the device.
pub const STATUS_OFFSET: u64 = 0x070;
/// `QueueDescLow` (W): low 32 bits of the selected queue's descriptor table address.
pub const QUEUE_DESC_LOW_OFFSET: u64 = 0x080;
/// `QueueDescHigh` (W): high 32 bits of the descriptor table address.
pub const QUEUE_DESC_HIGH_OFFSET: u64 = 0x084;
/// `QueueDriverLow` (W): low 32 bits of the available ring ("Driver Area") address.
pub const QUEUE_DRIVER_LOW_OFFSET: u64 = 0x090;
/// `QueueDriverHigh` (W): high 32 bits of the available ring address.
pub const QUEUE_DRIVER_HIGH_OFFSET: u64 = 0x094;
/// `QueueDeviceLow` (W): low 32 bits of the used ring ("Device Area") address.
pub const QUEUE_DEVICE_LOW_OFFSET: u64 = 0x0a0;
/// `QueueDeviceHigh` (W): high 32 bits of the used ring address.
pub const QUEUE_DEVICE_HIGH_OFFSET: u64 = 0x0a4;
/// `SHMSel` (W): selects a shared memory region. We have none.
pub const SHM_SEL_OFFSET: u64 = 0x0ac;
/// `SHMLenLow` (R): low 32 bits of the selected region's length (all ones: no such region).
pub const SHM_LEN_LOW_OFFSET: u64 = 0x0b0;
/// `SHMLenHigh` (R): high 32 bits of the region's length.
pub const SHM_LEN_HIGH_OFFSET: u64 = 0x0b4;
/// `SHMBaseLow` (R): low 32 bits of the region's address (all ones: no such region).
pub const SHM_BASE_LOW_OFFSET: u64 = 0x0b8;
/// `SHMBaseHigh` (R): high 32 bits of the region's address.
pub const SHM_BASE_HIGH_OFFSET: u64 = 0x0bc;
/// `ConfigGeneration` (R): changes whenever the device configuration space changes.
pub const CONFIG_GENERATION_OFFSET: u64 = 0x0fc;
/// `Config` (RW): the device-specific configuration space starts here, accessed bytewise.
pub const CONFIG_SPACE_OFFSET: u64 = 0x100;

/// The value of `MagicValue`: "virt" read as a little-endian u32.
pub const MMIO_MAGIC_VALUE: u32 = 0x7472_6976;
/// The value of `Version`: 2, the modern (virtio 1.x) register layout.
pub const MMIO_VERSION: u32 = 2;
/// The value of `VendorID`: "MNVT" as a little-endian u32 (0x54564e4d).
///
/// Linux's virtio drivers match any vendor, so the value is ours to choose. We do not borrow
/// QEMU's 0x554d4551 ("QEMU"): the guest would be told it runs on a QEMU device, which it
/// does not.
pub const VENDOR_ID: u32 = u32::from_le_bytes(*b"MNVT");

/// Device status bit `ACKNOWLEDGE` (§2.1): the guest found the device.
pub const STATUS_ACKNOWLEDGE: u32 = 1;
/// Device status bit `DRIVER`: the guest has a driver for it.
pub const STATUS_DRIVER: u32 = 2;
/// Device status bit `DRIVER_OK`: the driver is set up; the device is live.
pub const STATUS_DRIVER_OK: u32 = 4;
/// Device status bit `FEATURES_OK`: the driver finished feature negotiation (and the device
/// accepted: it stays set only if the device agrees).
pub const STATUS_FEATURES_OK: u32 = 8;
/// Device status bit `DEVICE_NEEDS_RESET`: set by the device when it cannot go on.
pub const STATUS_DEVICE_NEEDS_RESET: u32 = 0x40;
/// Device status bit `FAILED`: the driver gave up on the device.
pub const STATUS_FAILED: u32 = 0x80;
/// The status bits the driver may set.
pub const STATUS_DRIVER_BITS: u32 =
    STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK | STATUS_FEATURES_OK | STATUS_FAILED;

/// `InterruptStatus` bit 0, "Used Buffer Notification": a queue has new used buffers.
pub const INTERRUPT_USED_BUFFER: u32 = 1;
/// `InterruptStatus` bit 1, "Configuration Change Notification" (also sent with
/// `DEVICE_NEEDS_RESET`).
pub const INTERRUPT_CONFIG_CHANGE: u32 = 2;

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

/// Helpers for tests of this transport and of the devices behind it.
#[cfg(test)]
pub(crate) mod test_utils {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// An interrupt line that counts its edges.
    #[derive(Clone, Default)]
    pub(crate) struct CountingTrigger(pub Arc<AtomicU32>);

    impl CountingTrigger {
        pub fn count(&self) -> u32 {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Trigger for CountingTrigger {
        fn trigger(&self) -> std::io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    pub(crate) fn read32(device: &mut impl BusDevice, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        device.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

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
    pub(crate) fn setup_queue(
        device: &mut impl BusDevice,
        index: u32,
        size: u32,
        desc: u64,
        avail: u64,
        used: u64,
    ) -> u32 {
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
}

#[cfg(test)]
mod tests {
    use super::test_utils::*;
    use super::*;
    use crate::virtio::queue::VIRTIO_RING_F_INDIRECT_DESC;
    use crate::virtio::test_utils::DriverQueue;

    const VERSION_1: u64 = 1 << VIRTIO_F_VERSION_1;
    /// A device feature of ours, to negotiate.
    const F_ECHO_EXTRA: u64 = 1 << 3;

    /// A device with two queues that returns every chain with its writable length.
    #[derive(Default)]
    struct EchoDevice {
        activated: Option<u64>,
        resets: u32,
        config_writes: Vec<(u64, Vec<u8>)>,
        /// Make `process_queue` fail, as a device with a broken backend would.
        broken: bool,
        /// Require queue 1 at activation.
        needs_queue_1: bool,
    }

    impl VirtioDevice for EchoDevice {
        fn device_type(&self) -> u32 {
            0x2a
        }
        fn device_features(&self) -> u64 {
            VERSION_1 | F_ECHO_EXTRA | 1 << VIRTIO_RING_F_INDIRECT_DESC
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16, 8]
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            let config = *b"ECHOCONF";
            for (i, byte) in data.iter_mut().enumerate() {
                if let Some(&b) = config.get(offset as usize + i) {
                    *byte = b;
                }
            }
        }
        fn write_config(&mut self, offset: u64, data: &[u8]) {
            self.config_writes.push((offset, data.to_vec()));
        }
        fn activate(&mut self, driver_features: u64, queues: &[Queue]) -> Result<(), MmioError> {
            if self.needs_queue_1 && !queues[1].is_ready() {
                return Err(MmioError::QueueNotReady(1));
            }
            self.activated = Some(driver_features);
            Ok(())
        }
        fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemory) -> Result<bool, MmioError> {
            if self.broken {
                return Err(MmioError::QueueNotReady(index));
            }
            let queue = &mut queues[index];
            let mut used = false;
            while let Some(next) = queue.pop(mem) {
                match next {
                    Ok(chain) => {
                        let len = chain.writable().iter().map(|d| d.len).sum();
                        queue.add_used(mem, chain.head(), len)?;
                        used = true;
                    }
                    Err(error) => {
                        if let Some(head) = error.head() {
                            queue.add_used(mem, head, 0)?;
                            used = true;
                        }
                        if error.stops_queue() {
                            break;
                        }
                    }
                }
            }
            Ok(used && queue.needs_notification(mem)?)
        }
        fn reset(&mut self) {
            self.activated = None;
            self.resets += 1;
        }
    }

    type Transport = MmioTransport<EchoDevice, CountingTrigger>;

    fn transport() -> (Transport, Arc<GuestMemory>, CountingTrigger) {
        let mem = Arc::new(GuestMemory::new(&[(0, 0x2_0000)]).unwrap());
        let trigger = CountingTrigger::default();
        let transport = MmioTransport::new(EchoDevice::default(), Arc::clone(&mem), trigger.clone()).unwrap();
        (transport, mem, trigger)
    }

    /// Negotiated, queue 0 set up at 0x1000 with 16 entries, DRIVER_OK.
    fn running() -> (Transport, Arc<GuestMemory>, CountingTrigger, DriverQueue) {
        let (mut t, mem, trigger) = transport();
        assert_ne!(negotiate(&mut t, u64::MAX) & STATUS_FEATURES_OK, 0);
        let driver = DriverQueue::at(0x1000, 16);
        assert_eq!(setup_queue(&mut t, 0, 16, driver.desc_table, driver.avail_ring, driver.used_ring), 1);
        driver_ok(&mut t);
        (t, mem, trigger, driver)
    }

    #[test]
    fn test_identification_registers() {
        let (mut t, _, _) = transport();
        assert_eq!(read32(&mut t, MAGIC_VALUE_OFFSET), MMIO_MAGIC_VALUE);
        assert_eq!(read32(&mut t, MAGIC_VALUE_OFFSET).to_le_bytes(), *b"virt");
        assert_eq!(read32(&mut t, VERSION_OFFSET), MMIO_VERSION);
        assert_eq!(read32(&mut t, DEVICE_ID_OFFSET), 0x2a);
        assert_eq!(read32(&mut t, VENDOR_ID_OFFSET), 0x5456_4e4d);
        assert_eq!(read32(&mut t, CONFIG_GENERATION_OFFSET), 0);
        assert_eq!(read32(&mut t, SHM_LEN_LOW_OFFSET), u32::MAX, "no shared memory region");
    }

    #[test]
    fn test_device_features_by_select() {
        let (mut t, _, _) = transport();
        let offered = t.device().device_features();
        write32(&mut t, DEVICE_FEATURES_SEL_OFFSET, 0);
        assert_eq!(read32(&mut t, DEVICE_FEATURES_OFFSET), offered as u32);
        write32(&mut t, DEVICE_FEATURES_SEL_OFFSET, 1);
        assert_eq!(read32(&mut t, DEVICE_FEATURES_OFFSET), 1, "VIRTIO_F_VERSION_1 is bit 0 of the high word");
        write32(&mut t, DEVICE_FEATURES_SEL_OFFSET, 2);
        assert_eq!(read32(&mut t, DEVICE_FEATURES_OFFSET), 0);
    }

    #[test]
    fn test_handshake_accepts_offered_features() {
        let (mut t, _, _) = transport();
        let status = negotiate(&mut t, VERSION_1 | F_ECHO_EXTRA | 1 << 40);
        assert_eq!(status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        assert_eq!(t.driver_features(), VERSION_1 | F_ECHO_EXTRA);
        driver_ok(&mut t);
        assert_eq!(read32(&mut t, STATUS_OFFSET) & STATUS_DRIVER_OK, STATUS_DRIVER_OK);
        assert_eq!(t.device().activated, Some(VERSION_1 | F_ECHO_EXTRA));
    }

    #[test]
    fn test_features_ok_refused_without_version_1() {
        let (mut t, _, _) = transport();
        let status = negotiate(&mut t, F_ECHO_EXTRA);
        assert_eq!(status & STATUS_FEATURES_OK, 0, "FEATURES_OK reads back clear");
        // DRIVER_OK cannot follow a refused FEATURES_OK.
        driver_ok(&mut t);
        assert_eq!(read32(&mut t, STATUS_OFFSET) & STATUS_DRIVER_OK, 0);
        assert_eq!(t.device().activated, None);
        // The driver gives up: FAILED is accepted.
        write32(&mut t, STATUS_OFFSET, status | STATUS_FAILED);
        assert_eq!(read32(&mut t, STATUS_OFFSET), status | STATUS_FAILED);
    }

    #[test]
    fn test_features_ok_refused_for_unoffered_features() {
        let (mut t, _, _) = transport();
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE);
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write32(&mut t, DRIVER_FEATURES_SEL_OFFSET, 1);
        write32(&mut t, DRIVER_FEATURES_OFFSET, 1);
        write32(&mut t, DRIVER_FEATURES_SEL_OFFSET, 0);
        write32(&mut t, DRIVER_FEATURES_OFFSET, 1 << 5);
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        assert_eq!(read32(&mut t, STATUS_OFFSET) & STATUS_FEATURES_OK, 0);

        // Beyond bit 63 counts as well.
        let (mut t, _, _) = transport();
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write32(&mut t, DRIVER_FEATURES_SEL_OFFSET, 1);
        write32(&mut t, DRIVER_FEATURES_OFFSET, 1);
        write32(&mut t, DRIVER_FEATURES_SEL_OFFSET, 2);
        write32(&mut t, DRIVER_FEATURES_OFFSET, 1);
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        assert_eq!(read32(&mut t, STATUS_OFFSET) & STATUS_FEATURES_OK, 0);
    }

    #[test]
    fn test_driver_features_only_written_during_negotiation() {
        let (mut t, _, _) = transport();
        write32(&mut t, DRIVER_FEATURES_OFFSET, 0xffff_ffff);
        assert_eq!(t.driver_features(), 0, "before DRIVER");
        negotiate(&mut t, VERSION_1);
        write32(&mut t, DRIVER_FEATURES_SEL_OFFSET, 0);
        write32(&mut t, DRIVER_FEATURES_OFFSET, F_ECHO_EXTRA as u32);
        assert_eq!(t.driver_features(), VERSION_1, "after FEATURES_OK");
    }

    #[test]
    fn test_status_handshake_order_is_enforced() {
        let (mut t, _, _) = transport();
        write32(&mut t, STATUS_OFFSET, STATUS_DRIVER);
        assert_eq!(read32(&mut t, STATUS_OFFSET), 0, "DRIVER without ACKNOWLEDGE");
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
        assert_eq!(read32(&mut t, STATUS_OFFSET), 0, "DRIVER_OK without FEATURES_OK");
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        assert_eq!(read32(&mut t, STATUS_OFFSET), STATUS_ACKNOWLEDGE | STATUS_DRIVER, "two steps at once");
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE);
        assert_eq!(read32(&mut t, STATUS_OFFSET), STATUS_ACKNOWLEDGE | STATUS_DRIVER, "bits cannot be cleared");
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER | 0x10);
        assert_eq!(read32(&mut t, STATUS_OFFSET), STATUS_ACKNOWLEDGE | STATUS_DRIVER, "undefined bit");
    }

    #[test]
    fn test_queue_registers_only_during_setup() {
        let (mut t, _, _) = transport();
        // Before FEATURES_OK.
        write32(&mut t, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write32(&mut t, QUEUE_NUM_OFFSET, 4);
        assert_eq!(t.queues()[0].size(), 16);
        negotiate(&mut t, VERSION_1);
        write32(&mut t, QUEUE_SEL_OFFSET, 1);
        write32(&mut t, QUEUE_NUM_OFFSET, 4);
        write32(&mut t, QUEUE_DESC_LOW_OFFSET, 0x1000);
        write32(&mut t, QUEUE_DESC_HIGH_OFFSET, 0);
        assert_eq!(t.queues()[1].size(), 4);
        assert_eq!(t.queues()[1].desc_table(), GuestAddress(0x1000));
        // Not while ready.
        assert_eq!(setup_queue(&mut t, 0, 16, 0x4000, 0x5000, 0x6000), 1);
        write32(&mut t, QUEUE_DESC_LOW_OFFSET, 0x8000);
        assert_eq!(t.queues()[0].desc_table(), GuestAddress(0x4000));
        // Not after DRIVER_OK.
        driver_ok(&mut t);
        write32(&mut t, QUEUE_SEL_OFFSET, 1);
        write32(&mut t, QUEUE_NUM_OFFSET, 8);
        assert_eq!(t.queues()[1].size(), 4);
        write32(&mut t, QUEUE_READY_OFFSET, 1);
        assert_eq!(read32(&mut t, QUEUE_READY_OFFSET), 0);
    }

    #[test]
    fn test_queue_num_max_and_missing_queues() {
        let (mut t, _, _) = transport();
        for (index, max) in [(0, 16), (1, 8), (2, 0), (u32::MAX, 0)] {
            write32(&mut t, QUEUE_SEL_OFFSET, index);
            assert_eq!(read32(&mut t, QUEUE_NUM_MAX_OFFSET), max, "queue {index}");
            assert_eq!(read32(&mut t, QUEUE_READY_OFFSET), 0);
        }
        negotiate(&mut t, VERSION_1);
        write32(&mut t, QUEUE_SEL_OFFSET, 2);
        write32(&mut t, QUEUE_NUM_OFFSET, 4);
        write32(&mut t, QUEUE_READY_OFFSET, 1);
        assert_eq!(read32(&mut t, QUEUE_READY_OFFSET), 0);
    }

    #[test]
    fn test_queue_ready_checks_the_areas() {
        let (mut t, _, _) = transport();
        negotiate(&mut t, VERSION_1);
        assert_eq!(setup_queue(&mut t, 0, 16, 0x1008, 0x2000, 0x3000), 0, "misaligned descriptor table");
        assert_eq!(setup_queue(&mut t, 0, 16, 0x1000, 0x2000, 0x1_0000_3000), 0, "used ring above RAM");
        assert_eq!(setup_queue(&mut t, 0, 12, 0x1000, 0x2000, 0x3000), 0, "size not a power of two");
        assert_eq!(setup_queue(&mut t, 0, 16, 0x1000, 0x2000, 0x3000), 1);
        write32(&mut t, QUEUE_READY_OFFSET, 0);
        assert_eq!(read32(&mut t, QUEUE_READY_OFFSET), 0, "disabled");
    }

    #[test]
    fn test_notify_processes_the_queue_and_interrupts() {
        let (mut t, mem, trigger, mut driver) = running();
        let head = driver.add_chain(&mem, 0, &[(0x8000, 16, false), (0x9000, 100, true)]);
        driver.publish(&mem, head);
        write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
        assert_eq!(driver.used_idx(&mem), 1);
        assert_eq!(driver.used_elem(&mem, 0), (0, 100));
        assert_eq!(trigger.count(), 1);
        assert_eq!(read32(&mut t, INTERRUPT_STATUS_OFFSET), INTERRUPT_USED_BUFFER);
        write32(&mut t, INTERRUPT_ACK_OFFSET, INTERRUPT_USED_BUFFER);
        assert_eq!(read32(&mut t, INTERRUPT_STATUS_OFFSET), 0);
        // Nothing new: no interrupt.
        write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
        assert_eq!(trigger.count(), 1);
    }

    #[test]
    fn test_no_interrupt_when_the_driver_asks_for_none() {
        let (mut t, mem, trigger, mut driver) = running();
        driver.set_avail_flags(&mem, crate::virtio::queue::VIRTQ_AVAIL_F_NO_INTERRUPT);
        driver.add_chain(&mem, 0, &[(0x9000, 1, true)]);
        driver.publish(&mem, 0);
        t.handle_notify(0);
        assert_eq!(driver.used_idx(&mem), 1, "the buffer is used");
        assert_eq!((trigger.count(), t.interrupt_status()), (0, 0), "but not announced");
    }

    #[test]
    fn test_notify_is_ignored_before_driver_ok_and_for_bad_queues() {
        let (mut t, mem, trigger) = transport();
        negotiate(&mut t, VERSION_1);
        let mut driver = DriverQueue::at(0x1000, 16);
        setup_queue(&mut t, 0, 16, driver.desc_table, driver.avail_ring, driver.used_ring);
        driver.add_chain(&mem, 0, &[(0x9000, 1, true)]);
        driver.publish(&mem, 0);
        write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
        assert_eq!((driver.used_idx(&mem), trigger.count()), (0, 0), "no buffer used before DRIVER_OK");
        driver_ok(&mut t);
        for queue in [1, 2, 0x1_0000] {
            write32(&mut t, QUEUE_NOTIFY_OFFSET, queue);
        }
        assert_eq!(driver.used_idx(&mem), 0, "queue 1 is not ready, 2 does not exist");
        write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
        assert_eq!(driver.used_idx(&mem), 1);
    }

    #[test]
    fn test_malformed_chain_is_returned_and_the_queue_goes_on() {
        let (mut t, mem, trigger, mut driver) = running();
        driver.set_desc(&mem, 0, 0x9000, 16, crate::virtio::queue::VIRTQ_DESC_F_NEXT, 0);
        driver.publish(&mem, 0);
        driver.add_chain(&mem, 1, &[(0x9000, 7, true)]);
        driver.publish(&mem, 1);
        t.handle_notify(0);
        assert_eq!(driver.used_idx(&mem), 2);
        assert_eq!(driver.used_elem(&mem, 0), (0, 0), "the looping chain comes back unused");
        assert_eq!(driver.used_elem(&mem, 1), (1, 7));
        assert_eq!(trigger.count(), 1);
        assert_eq!(t.device_status() & STATUS_DEVICE_NEEDS_RESET, 0);
    }

    #[test]
    fn test_device_failure_sets_needs_reset_and_config_interrupt() {
        let (mut t, mem, trigger, mut driver) = running();
        t.device_mut().broken = true;
        driver.add_chain(&mem, 0, &[(0x9000, 1, true)]);
        driver.publish(&mem, 0);
        write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
        assert_ne!(read32(&mut t, STATUS_OFFSET) & STATUS_DEVICE_NEEDS_RESET, 0);
        assert_eq!(take_interrupt(&mut t), INTERRUPT_CONFIG_CHANGE);
        assert_eq!(trigger.count(), 1);
        // The device stays stopped, even if it could work again, until the driver resets it.
        t.device_mut().broken = false;
        write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
        assert_eq!(driver.used_idx(&mem), 0);
        // A driver writing back the status it read does not clear DEVICE_NEEDS_RESET.
        let status = read32(&mut t, STATUS_OFFSET);
        write32(&mut t, STATUS_OFFSET, status | STATUS_FAILED);
        assert_eq!(read32(&mut t, STATUS_OFFSET), status | STATUS_FAILED);
        write32(&mut t, STATUS_OFFSET, 0);
        assert_eq!(read32(&mut t, STATUS_OFFSET), 0);
    }

    #[test]
    fn test_activation_failure_sets_needs_reset() {
        let (mut t, _, trigger) = transport();
        t.device_mut().needs_queue_1 = true;
        negotiate(&mut t, VERSION_1);
        setup_queue(&mut t, 0, 16, 0x1000, 0x2000, 0x3000);
        driver_ok(&mut t);
        let status = read32(&mut t, STATUS_OFFSET);
        assert_eq!(
            status & (STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET),
            STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET
        );
        assert_eq!((take_interrupt(&mut t), trigger.count()), (INTERRUPT_CONFIG_CHANGE, 1));
    }

    #[test]
    fn test_reset_clears_queues_features_and_interrupts() {
        let (mut t, mem, _, mut driver) = running();
        driver.add_chain(&mem, 0, &[(0x9000, 1, true)]);
        driver.publish(&mem, 0);
        t.handle_notify(0);
        assert_ne!(t.interrupt_status(), 0);
        write32(&mut t, STATUS_OFFSET, 0);
        assert_eq!(read32(&mut t, STATUS_OFFSET), 0);
        assert_eq!(read32(&mut t, INTERRUPT_STATUS_OFFSET), 0);
        assert_eq!(t.driver_features(), 0);
        assert_eq!(t.device().activated, None);
        assert_eq!(t.device().resets, 2, "once at negotiate(), once now");
        write32(&mut t, QUEUE_SEL_OFFSET, 0);
        assert_eq!(read32(&mut t, QUEUE_READY_OFFSET), 0);
        assert_eq!((t.queues()[0].next_avail(), t.queues()[0].desc_table()), (0, GuestAddress(0)));
        // And it comes up again, reading the rings from the start.
        let (mut driver, mem) = (DriverQueue::at(0x4000, 8), mem);
        negotiate(&mut t, VERSION_1);
        assert_eq!(setup_queue(&mut t, 0, 8, driver.desc_table, driver.avail_ring, driver.used_ring), 1);
        driver_ok(&mut t);
        driver.add_chain(&mem, 0, &[(0x9000, 3, true)]);
        driver.publish(&mem, 0);
        t.handle_notify(0);
        assert_eq!(driver.used_elem(&mem, 0), (0, 3));
    }

    #[test]
    fn test_bad_access_sizes_are_ignored() {
        let (mut t, _, _) = transport();
        let mut two = [0xffu8; 2];
        t.read(MAGIC_VALUE_OFFSET, &mut two);
        assert_eq!(two, [0, 0]);
        let mut eight = [0xffu8; 8];
        t.read(MAGIC_VALUE_OFFSET, &mut eight);
        assert_eq!(eight, [0; 8]);
        let mut four = [0xffu8; 4];
        t.read(MAGIC_VALUE_OFFSET + 1, &mut four);
        assert_eq!(four, [0; 4], "misaligned");
        t.read(QUEUE_NUM_OFFSET, &mut four);
        assert_eq!(four, [0; 4], "write-only register");
        t.read(0x0f0, &mut four);
        assert_eq!(four, [0; 4], "undefined register");
        t.write(STATUS_OFFSET, &[STATUS_ACKNOWLEDGE as u8]);
        assert_eq!(read32(&mut t, STATUS_OFFSET), 0, "a 1-byte status write is not a status write");
        write32(&mut t, MAGIC_VALUE_OFFSET, 0);
        assert_eq!(read32(&mut t, MAGIC_VALUE_OFFSET), MMIO_MAGIC_VALUE, "read-only");
    }

    #[test]
    fn test_config_space_is_byte_granular() {
        let (mut t, _, _) = transport();
        let mut byte = [0u8];
        t.read(CONFIG_SPACE_OFFSET + 4, &mut byte);
        assert_eq!(&byte, b"C");
        let mut word = [0u8; 2];
        t.read(CONFIG_SPACE_OFFSET + 1, &mut word);
        assert_eq!(&word, b"CH");
        let mut long = [0xffu8; 8];
        t.read(CONFIG_SPACE_OFFSET + 4, &mut long);
        assert_eq!(&long, b"CONF\0\0\0\0", "beyond the config space reads as zero");
        t.read(MMIO_WINDOW_SIZE - 4, &mut long[..4]);
        assert_eq!(&long[..4], &[0; 4]);
        t.write(CONFIG_SPACE_OFFSET + 2, &[7]);
        assert_eq!(t.device().config_writes, [(2, vec![7])]);
    }

    #[test]
    fn test_new_refuses_unusable_devices() {
        struct Bad(u16, u64);
        impl VirtioDevice for Bad {
            fn device_type(&self) -> u32 {
                1
            }
            fn device_features(&self) -> u64 {
                self.1
            }
            fn queue_max_sizes(&self) -> &[u16] {
                std::slice::from_ref(&self.0)
            }
            fn read_config(&self, _: u64, _: &mut [u8]) {}
            fn write_config(&mut self, _: u64, _: &[u8]) {}
            fn activate(&mut self, _: u64, _: &[Queue]) -> Result<(), MmioError> {
                Ok(())
            }
            fn process_queue(&mut self, _: usize, _: &mut [Queue], _: &GuestMemory) -> Result<bool, MmioError> {
                Ok(false)
            }
            fn reset(&mut self) {}
        }
        let mem = Arc::new(GuestMemory::new(&[(0, 0x1000)]).unwrap());
        let new =
            |size, features| MmioTransport::new(Bad(size, features), Arc::clone(&mem), CountingTrigger::default());
        for size in [0, 3, 512] {
            assert!(matches!(new(size, VERSION_1), Err(MmioError::BadQueueMaxSize { index: 0, .. })));
        }
        assert!(matches!(new(256, 0), Err(MmioError::NoVersion1)));
        assert!(new(256, VERSION_1).is_ok());
    }
}
