//! Stage 6's virtio-mmio transport in front of virtio-blk, under any sequence of register
//! accesses: every offset of the 4 KiB window, every access size, any value, mixed with the steps
//! of a real driver (Linux's feature negotiation and queue setup, well-formed requests) so that
//! random inputs reach the live device too.
//!
//! Invariants, after every access:
//! - the identification registers never change; `Status` holds only the bits of §2.1, and with
//!   `FEATURES_OK` the accepted features are offered ones including `VIRTIO_F_VERSION_1`;
//!   `DRIVER_OK` is only taken with queue 0 ready; `InterruptStatus` holds
//!   only its two bits, and an interrupt edge always comes with one of them set;
//! - a ready queue has a power-of-two size within the maximum and aligned areas inside RAM;
//! - writing 0 to `Status` resets everything the driver sees;
//! - around every notification, the checks of [`crate::virtio_checks`].

use arbitrary::{Arbitrary, Unstructured};
use stage02::bus::BusDevice;
use stage02::memory::GuestAddress;
use stage04::irq::testing::CountingTrigger;
use stage06::virtio::block::{VirtioBlock, SECTOR_SIZE, VIRTIO_ID_BLOCK};
use stage06::virtio::mmio::*;
use stage06::virtio::queue::{
    DESCRIPTOR_SIZE, MAX_QUEUE_SIZE, RING_ENTRIES_OFFSET, RING_IDX_OFFSET, USED_ELEMENT_SIZE,
    VIRTIO_RING_F_INDIRECT_DESC, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};

use crate::guest_ram::TestRam;
use crate::virtio_checks::{Addr, DriverSide, MemDisk, Round, VIRTIO_RAM};
use crate::virtqueue::{write_header, HeaderSpec, QueueSize, RequestType, Sector};

/// The registers of §4.2.2, for a fuzzer to pick by index.
const REGISTERS: [u64; 30] = [
    MAGIC_VALUE_OFFSET,
    VERSION_OFFSET,
    DEVICE_ID_OFFSET,
    VENDOR_ID_OFFSET,
    DEVICE_FEATURES_OFFSET,
    DEVICE_FEATURES_SEL_OFFSET,
    DRIVER_FEATURES_OFFSET,
    DRIVER_FEATURES_SEL_OFFSET,
    QUEUE_SEL_OFFSET,
    QUEUE_NUM_MAX_OFFSET,
    QUEUE_NUM_OFFSET,
    QUEUE_READY_OFFSET,
    QUEUE_NOTIFY_OFFSET,
    INTERRUPT_STATUS_OFFSET,
    INTERRUPT_ACK_OFFSET,
    STATUS_OFFSET,
    QUEUE_DESC_LOW_OFFSET,
    QUEUE_DESC_HIGH_OFFSET,
    QUEUE_DRIVER_LOW_OFFSET,
    QUEUE_DRIVER_HIGH_OFFSET,
    QUEUE_DEVICE_LOW_OFFSET,
    QUEUE_DEVICE_HIGH_OFFSET,
    SHM_SEL_OFFSET,
    SHM_LEN_LOW_OFFSET,
    SHM_LEN_HIGH_OFFSET,
    SHM_BASE_LOW_OFFSET,
    SHM_BASE_HIGH_OFFSET,
    CONFIG_GENERATION_OFFSET,
    CONFIG_SPACE_OFFSET,
    CONFIG_SPACE_OFFSET + 20,
];

/// Where an access goes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Register {
    /// One of the registers, by index.
    Known(u8),
    /// A byte of the configuration space.
    Config(u8),
    /// Any offset in the window.
    Raw(u16),
}

impl Register {
    fn offset(self) -> u64 {
        match self {
            Register::Known(i) => REGISTERS[usize::from(i) % REGISTERS.len()],
            Register::Config(n) => CONFIG_SPACE_OFFSET + u64::from(n),
            Register::Raw(n) => u64::from(n) % MMIO_WINDOW_SIZE,
        }
    }
}

/// An access size: the driver must use 4 for registers; the others are guest errors.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum AccessSize {
    /// 1 byte.
    One,
    /// 2 bytes.
    Two,
    /// 4 bytes.
    Four,
    /// 8 bytes.
    Eight,
}

impl AccessSize {
    fn len(self) -> usize {
        match self {
            AccessSize::One => 1,
            AccessSize::Two => 2,
            AccessSize::Four => 4,
            AccessSize::Eight => 8,
        }
    }
}

/// One step of the driver.
#[derive(Arbitrary, Debug)]
pub enum MmioOp {
    /// A read.
    Read {
        /// Where.
        register: Register,
        /// How wide.
        size: AccessSize,
    },
    /// A write of the low `size` bytes of `value`.
    Write {
        /// Where.
        register: Register,
        /// How wide.
        size: AccessSize,
        /// What.
        value: u64,
    },
    /// Reset, ACKNOWLEDGE, DRIVER, read the features, accept `wanted` (of the offered ones only
    /// if `honest`), FEATURES_OK: Linux's `virtio_dev_probe`.
    Negotiate {
        /// Features the driver wants.
        wanted: u64,
        /// Whether it accepts only offered features.
        honest: bool,
    },
    /// Select, size, addresses, ready: Linux's `vm_setup_vq`.
    SetupQueue {
        /// Which queue (only 0 exists).
        index: u8,
        /// `QueueNum`.
        size: QueueSize,
        /// Descriptor table.
        desc: Addr,
        /// Available ring.
        avail: Addr,
        /// Used ring.
        used: Addr,
    },
    /// Sets DRIVER_OK on top of the current status.
    DriverOk,
    /// Lays out a well-formed request on queue 0 (header, data, status at `buffer`), makes it
    /// available and notifies.
    Request {
        /// The request.
        request_type: RequestType,
        /// Its sector.
        sector: Sector,
        /// Sectors of data.
        sectors: u8,
        /// Where its buffers go.
        buffer: Addr,
    },
    /// Writes bytes anywhere in guest memory.
    Poke {
        /// Where.
        at: Addr,
        /// What.
        bytes: Vec<u8>,
    },
}

/// One input: a read-only or writable disk and the driver's steps.
#[derive(Arbitrary, Debug)]
pub struct MmioInput {
    read_only: bool,
    ops: Vec<MmioOp>,
}

thread_local! {
    static RAM: TestRam = TestRam::new(&VIRTIO_RAM);
    static DISK: MemDisk = MemDisk::new();
}

type Transport = MmioTransport<VirtioBlock, CountingTrigger>;

/// Runs one input on a freshly reset transport.
pub fn virtio_mmio(data: &[u8]) {
    let Ok(input) = Unstructured::new(data).arbitrary::<MmioInput>() else { return };
    RAM.with(|ram| DISK.with(|disk| run(&input, ram, disk)));
}

fn run(input: &MmioInput, ram: &TestRam, disk: &MemDisk) {
    ram.reset();
    disk.reset();
    let trigger = CountingTrigger::default();
    let device = VirtioBlock::new(disk.open(input.read_only));
    let mut transport =
        MmioTransport::new(device, ram.memory().clone(), trigger.clone()).expect("virtio-blk suits the transport");
    for (step, op) in input.ops.iter().enumerate() {
        let what = || format!("step {step} ({op:?})");
        let edges = trigger.count();
        let status_before = transport.device_status();
        let notifies = match op {
            MmioOp::Request { .. } => true,
            MmioOp::Write { register, size, .. } => register.offset() == QUEUE_NOTIFY_OFFSET && size.len() == 4,
            _ => false,
        };
        if let MmioOp::Request { request_type, sector, sectors, buffer } = *op {
            // The driver's part first: the device is judged on what the notification does.
            lay_out_request(&transport, ram, request_type, sector, sectors, buffer.get());
        }
        let before = notifies.then(|| (ram.snapshot(), transport.queues()[0].clone(), disk.contents()));
        apply(&mut transport, op, ram, &what);
        if let Some((memory_before, queue_before, disk_before)) = before {
            let driver = DriverSide {
                indirect: transport.driver_features() & (1 << VIRTIO_RING_F_INDIRECT_DESC) != 0,
                read_only: input.read_only,
            };
            Round {
                before: &memory_before,
                queue_before: &queue_before,
                queue_after: &transport.queues()[0],
                disk_before: &disk_before,
                disk_after: &disk.contents(),
            }
            .check(ram, driver, &what);
        }
        check_state(&mut transport, ram, status_before, &what);
        if trigger.count() > edges {
            assert_ne!(transport.interrupt_status(), 0, "{}: an interrupt without a reason", what());
        }
    }
}

fn read32(transport: &mut Transport, offset: u64) -> u32 {
    let mut data = [0u8; 4];
    transport.read(offset, &mut data);
    u32::from_le_bytes(data)
}

fn write32(transport: &mut Transport, offset: u64, value: u32) {
    transport.write(offset, &value.to_le_bytes());
}

fn apply(transport: &mut Transport, op: &MmioOp, ram: &TestRam, what: &dyn Fn() -> String) {
    match *op {
        MmioOp::Read { register, size } => {
            let mut data = vec![0xa5u8; size.len()];
            transport.read(register.offset(), &mut data);
            let offset = register.offset();
            if offset < CONFIG_SPACE_OFFSET && (size.len() != 4 || offset % 4 != 0) {
                assert!(data.iter().all(|&b| b == 0), "{}: a bad access reads {data:x?}", what());
            }
        }
        MmioOp::Write { register, size, value } => {
            let offset = register.offset();
            transport.write(offset, &value.to_le_bytes()[..size.len()]);
            if offset == STATUS_OFFSET && size.len() == 4 && value as u32 == 0 {
                assert_eq!(transport.device_status(), 0, "{}: status after reset", what());
                assert_eq!(transport.interrupt_status(), 0, "{}: interrupt status after reset", what());
                assert!(transport.queues().iter().all(|q| !q.is_ready()), "{}: a queue ready after reset", what());
            }
        }
        MmioOp::Negotiate { wanted, honest } => {
            write32(transport, STATUS_OFFSET, 0);
            write32(transport, STATUS_OFFSET, STATUS_ACKNOWLEDGE);
            write32(transport, STATUS_OFFSET, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
            write32(transport, DEVICE_FEATURES_SEL_OFFSET, 1);
            let high = read32(transport, DEVICE_FEATURES_OFFSET);
            write32(transport, DEVICE_FEATURES_SEL_OFFSET, 0);
            let low = read32(transport, DEVICE_FEATURES_OFFSET);
            let offered = u64::from(high) << 32 | u64::from(low);
            let accepted = if honest { wanted & offered } else { wanted };
            write32(transport, DRIVER_FEATURES_SEL_OFFSET, 1);
            write32(transport, DRIVER_FEATURES_OFFSET, (accepted >> 32) as u32);
            write32(transport, DRIVER_FEATURES_SEL_OFFSET, 0);
            write32(transport, DRIVER_FEATURES_OFFSET, accepted as u32);
            let status = read32(transport, STATUS_OFFSET);
            write32(transport, STATUS_OFFSET, status | STATUS_FEATURES_OK);
            let kept = read32(transport, STATUS_OFFSET) & STATUS_FEATURES_OK != 0;
            let acceptable = accepted & !offered == 0 && accepted & (1 << VIRTIO_F_VERSION_1) != 0;
            assert_eq!(kept, acceptable, "{}: FEATURES_OK for {accepted:#x} of {offered:#x}", what());
        }
        MmioOp::SetupQueue { index, size, desc, avail, used } => {
            let size = match size {
                QueueSize::PowerOfTwo(n) => 1u32 << (n % 10),
                QueueSize::Raw(n) => u32::from(n),
            };
            // Linux allocates the rings zeroed: `avail.idx` starts at 0.
            let entries = u64::from(size.min(u32::from(MAX_QUEUE_SIZE)));
            let _ = ram.memory().zero(GuestAddress(avail.get()), (RING_ENTRIES_OFFSET + 2 * entries + 2) as usize);
            let _ = ram.memory().zero(GuestAddress(used.get()), (RING_ENTRIES_OFFSET + 8 * entries + 2) as usize);
            write32(transport, QUEUE_SEL_OFFSET, u32::from(index % 2));
            write32(transport, QUEUE_NUM_OFFSET, size);
            for (low, address) in
                [(QUEUE_DESC_LOW_OFFSET, desc), (QUEUE_DRIVER_LOW_OFFSET, avail), (QUEUE_DEVICE_LOW_OFFSET, used)]
            {
                write32(transport, low, address.get() as u32);
                write32(transport, low + 4, (address.get() >> 32) as u32);
            }
            write32(transport, QUEUE_READY_OFFSET, 1);
        }
        MmioOp::DriverOk => {
            let status = read32(transport, STATUS_OFFSET);
            write32(transport, STATUS_OFFSET, status | STATUS_DRIVER_OK);
        }
        MmioOp::Request { .. } => write32(transport, QUEUE_NOTIFY_OFFSET, 0),
        MmioOp::Poke { at, ref bytes } => {
            let _ = ram.memory().write(GuestAddress(at.get()), bytes);
        }
    }
}

/// What a driver does for one request on queue 0 before it notifies: descriptors 0–2 (header,
/// data, status), head 0 in the next available slot, `avail.idx` bumped. Nothing if queue 0 is
/// not set up (the notification still goes out: a driver may be wrong about that).
fn lay_out_request(
    transport: &Transport,
    ram: &TestRam,
    request_type: RequestType,
    sector: Sector,
    sectors: u8,
    at: u64,
) {
    let mem = ram.memory();
    let queue = transport.queues()[0].clone();
    if queue.is_ready() {
        let data_len = u64::from(sectors % 5) * SECTOR_SIZE;
        let device_writes = matches!(request_type, RequestType::In | RequestType::GetId);
        let data_flags = if device_writes { VIRTQ_DESC_F_WRITE } else { 0 };
        let mut chain = vec![(at, 16u64, 0u16)];
        if data_len > 0 {
            chain.push((at.wrapping_add(16), data_len, data_flags));
        }
        chain.push((at.wrapping_add(16 + data_len), 1, VIRTQ_DESC_F_WRITE));
        let table = queue.desc_table().0;
        for (i, &(addr, len, flags)) in chain.iter().enumerate() {
            let next = if i + 1 < chain.len() { VIRTQ_DESC_F_NEXT } else { 0 };
            let at = table + i as u64 * DESCRIPTOR_SIZE;
            let _ = mem.write_obj(GuestAddress(at), addr);
            let _ = mem.write_obj(GuestAddress(at + 8), len as u32);
            let _ = mem.write_obj(GuestAddress(at + 12), flags | next);
            let _ = mem.write_obj(GuestAddress(at + 14), (i + 1) as u16);
        }
        write_header(mem, HeaderSpec { at: Addr::Raw(at), request_type, sector });
        let avail = queue.avail_ring().0;
        let idx: u16 = mem.read_obj(GuestAddress(avail + RING_IDX_OFFSET)).unwrap_or(0);
        let slot = u64::from(idx % queue.size());
        let _ = mem.write_obj(GuestAddress(avail + RING_ENTRIES_OFFSET + 2 * slot), 0u16);
        let _ = mem.write_obj(GuestAddress(avail + RING_IDX_OFFSET), idx.wrapping_add(1));
    }
}

/// The checks that hold after any access.
/// `status_before` is `Status` before the access.
fn check_state(transport: &mut Transport, ram: &TestRam, status_before: u32, what: &dyn Fn() -> String) {
    let identity = [
        (MAGIC_VALUE_OFFSET, MMIO_MAGIC_VALUE),
        (VERSION_OFFSET, MMIO_VERSION),
        (DEVICE_ID_OFFSET, VIRTIO_ID_BLOCK),
        (VENDOR_ID_OFFSET, VENDOR_ID),
    ];
    for (offset, value) in identity {
        assert_eq!(read32(transport, offset), value, "{}: register {offset:#x}", what());
    }
    let status = read32(transport, STATUS_OFFSET);
    assert_eq!(status, transport.device_status(), "{}: Status", what());
    assert_eq!(status & !(STATUS_DRIVER_BITS | STATUS_DEVICE_NEEDS_RESET), 0, "{}: Status {status:#x}", what());
    let offered = transport.device().device_features();
    if status & STATUS_FEATURES_OK != 0 {
        let features = transport.driver_features();
        assert_eq!(features & !offered, 0, "{}: accepted {features:#x} of {offered:#x}", what());
        assert_ne!(features & (1 << VIRTIO_F_VERSION_1), 0, "{}: accepted without VERSION_1", what());
    }
    // The device takes DRIVER_OK only with its queue ready (the driver may disable the queue
    // later: "to stop using the queue the driver MUST write zero to QueueReady", §4.2.2.2).
    let live = STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET;
    if status & live == STATUS_DRIVER_OK && status_before & STATUS_DRIVER_OK == 0 {
        assert!(transport.queues()[0].is_ready(), "{}: DRIVER_OK taken with queue 0 not ready", what());
    }
    let interrupts = read32(transport, INTERRUPT_STATUS_OFFSET);
    assert_eq!(interrupts, transport.interrupt_status(), "{}: InterruptStatus", what());
    assert_eq!(interrupts & !(INTERRUPT_USED_BUFFER | INTERRUPT_CONFIG_CHANGE), 0, "{}: {interrupts:#x}", what());
    for queue in transport.queues().iter().filter(|q| q.is_ready()) {
        let n = u64::from(queue.size());
        assert!(queue.size().is_power_of_two() && queue.size() <= MAX_QUEUE_SIZE, "{}: size {n}", what());
        let areas = [
            (queue.desc_table().0, 16, DESCRIPTOR_SIZE * n),
            (queue.avail_ring().0, 2, RING_ENTRIES_OFFSET + 2 * n + 2),
            (queue.used_ring().0, 4, RING_ENTRIES_OFFSET + USED_ELEMENT_SIZE * n + 2),
        ];
        for (address, align, len) in areas {
            assert!(address % align == 0 && ram.contains(address, len), "{}: area {address:#x}+{len:#x}", what());
        }
    }
}
