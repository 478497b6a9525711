//! The virtio-mmio register window as the driver sees it: the offset of every register, the
//! values of the identification registers, and the bits of `Status` and `InterruptStatus`, named
//! after the spec.
//!
//! # Resources
//! - Virtio 1.2, §4.2.2 "MMIO Device Register Layout", §2.1 "Device Status Field":
//!   <https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html>.

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
