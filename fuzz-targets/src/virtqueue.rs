//! Stage 6's split virtqueue and virtio-blk over guest memory that the input lays out: queue size
//! and areas, descriptors, indirect tables, request headers and sectors, ring indices, and
//! stray writes between notifications. The disk is 16 sectors in memory.
//!
//! Invariants: `Queue::enable` accepts exactly the setups the spec allows (a power-of-two size
//! within the maximum, aligned areas inside RAM); then, after every notification, the checks of
//! [`crate::virtio_checks`] (memory written only where allowed, used elements within the chain's
//! writable length, statuses and the image as §5.2.6 says).

use arbitrary::{Arbitrary, Unstructured};
use stage02::memory::{GuestAddress, GuestMemory};
use stage06::virtio::block::{VirtioBlock, SECTOR_SIZE, VIRTIO_BLK_F_FLUSH};
use stage06::virtio::mmio::{VirtioDevice, VIRTIO_F_VERSION_1};
use stage06::virtio::queue::{
    Queue, DESCRIPTOR_SIZE, MAX_QUEUE_SIZE, RING_ENTRIES_OFFSET, RING_FLAGS_OFFSET, RING_IDX_OFFSET, USED_ELEMENT_SIZE,
    VIRTIO_RING_F_INDIRECT_DESC,
};

use crate::guest_ram::TestRam;
use crate::virtio_checks::{Addr, DriverSide, MemDisk, Round, DISK_SIZE, VIRTIO_RAM};

/// The queue's size as the driver writes it to `QueueNum`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum QueueSize {
    /// `1 << (n % 10)`: 1 to 512, the last one above the device's maximum.
    PowerOfTwo(u8),
    /// Anything.
    Raw(u16),
}

/// A descriptor's length.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Len {
    /// 0 to 255 bytes.
    Small(u8),
    /// `n % 17` sectors.
    Sectors(u8),
    /// A request header, 16 bytes.
    Header,
    /// A status byte.
    Status,
    /// `n % 17` descriptors: an indirect table.
    Table(u8),
    /// Anything.
    Raw(u32),
}

impl Len {
    fn get(self) -> u32 {
        match self {
            Len::Small(n) => u32::from(n),
            Len::Sectors(n) => u32::from(n % 17) * SECTOR_SIZE as u32,
            Len::Header => 16,
            Len::Status => 1,
            Len::Table(n) => u32::from(n % 17) * DESCRIPTOR_SIZE as u32,
            Len::Raw(n) => n,
        }
    }
}

/// One descriptor as the driver writes it.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct DescSpec {
    addr: Addr,
    len: Len,
    /// NEXT 1, WRITE 2, INDIRECT 4, and bits no flag has.
    flags: u8,
    next: u8,
}

/// A table of descriptors written somewhere in RAM (for indirect descriptors to point at).
#[derive(Arbitrary, Debug)]
pub struct TableSpec {
    at: Addr,
    entries: Vec<DescSpec>,
}

/// A request type.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum RequestType {
    /// `VIRTIO_BLK_T_IN`.
    In,
    /// `VIRTIO_BLK_T_OUT`.
    Out,
    /// `VIRTIO_BLK_T_FLUSH`.
    Flush,
    /// `VIRTIO_BLK_T_GET_ID`.
    GetId,
    /// Anything.
    Raw(u32),
}

/// A sector number.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Sector {
    /// Near the start.
    Small(u8),
    /// So many sectors before the end (wrapping below 0).
    FromEnd(u8),
    /// Anything, overflows included.
    Raw(u64),
}

/// A request header written somewhere in RAM.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct HeaderSpec {
    /// Where.
    pub at: Addr,
    /// The request's type.
    pub request_type: RequestType,
    /// Its first sector.
    pub sector: Sector,
}

/// Bytes the driver (or a hostile guest) writes between notifications.
#[derive(Arbitrary, Debug)]
pub struct Poke {
    at: Addr,
    bytes: Vec<u8>,
}

/// What happens before one notification.
#[derive(Arbitrary, Debug)]
pub struct Notification {
    /// Heads put in the available ring, `avail.idx` bumped for each.
    heads: Vec<u8>,
    /// Then `avail.idx` set to this instead, if given.
    avail_idx: Option<u16>,
    /// Then these bytes written anywhere.
    pokes: Vec<Poke>,
}

/// One input of the virtqueue target.
#[derive(Arbitrary, Debug)]
pub struct VirtqueueInput {
    size: QueueSize,
    indirect: bool,
    flush: bool,
    read_only: bool,
    desc_table: Addr,
    avail_ring: Addr,
    used_ring: Addr,
    avail_flags: u16,
    descriptors: Vec<DescSpec>,
    tables: Vec<TableSpec>,
    headers: Vec<HeaderSpec>,
    notifications: Vec<Notification>,
}

thread_local! {
    static RAM: TestRam = TestRam::new(&VIRTIO_RAM);
    static DISK: MemDisk = MemDisk::new();
}

/// Runs one input: set the queue up, enable it, then serve each notification and check.
pub fn virtqueue(data: &[u8]) {
    let Ok(input) = Unstructured::new(data).arbitrary::<VirtqueueInput>() else { return };
    RAM.with(|ram| DISK.with(|disk| run(&input, ram, disk)));
}

fn run(input: &VirtqueueInput, ram: &TestRam, disk: &MemDisk) {
    ram.reset();
    disk.reset();
    let mem: &GuestMemory = ram.memory();
    let size = match input.size {
        QueueSize::PowerOfTwo(n) => 1u16 << (n % 10),
        QueueSize::Raw(n) => n,
    };
    let (desc, avail, used) = (input.desc_table.get(), input.avail_ring.get(), input.used_ring.get());
    write_descriptors(mem, desc, &input.descriptors);
    for table in &input.tables {
        write_descriptors(mem, table.at.get(), &table.entries);
    }
    for header in &input.headers {
        write_header(mem, *header);
    }
    let _ = mem.write_obj(GuestAddress(avail.wrapping_add(RING_FLAGS_OFFSET)), input.avail_flags);
    let _ = mem.write_obj(GuestAddress(avail.wrapping_add(RING_IDX_OFFSET)), 0u16);

    let mut features = 1u64 << VIRTIO_F_VERSION_1;
    if input.indirect {
        features |= 1 << VIRTIO_RING_F_INDIRECT_DESC;
    }
    if input.flush {
        features |= 1 << VIRTIO_BLK_F_FLUSH;
    }
    let mut queue = Queue::new(MAX_QUEUE_SIZE);
    queue.set_size(size);
    queue.set_desc_table(GuestAddress(desc));
    queue.set_avail_ring(GuestAddress(avail));
    queue.set_used_ring(GuestAddress(used));
    let before = ram.snapshot();
    let enabled = queue.enable(mem, features);
    let n = u64::from(size);
    let valid = size.is_power_of_two()
        && size <= MAX_QUEUE_SIZE
        && desc % 16 == 0
        && avail % 2 == 0
        && used % 4 == 0
        && ram.contains(desc, DESCRIPTOR_SIZE * n)
        && ram.contains(avail, RING_ENTRIES_OFFSET + 2 * n + 2)
        && ram.contains(used, RING_ENTRIES_OFFSET + USED_ELEMENT_SIZE * n + 2);
    assert_eq!(enabled.is_ok(), valid, "enable of size {size}, areas {desc:#x} {avail:#x} {used:#x}: {enabled:?}");
    assert!(ram.changed_since(&before).is_empty(), "enabling a queue wrote guest memory");
    if !valid {
        return;
    }

    let mut device = VirtioBlock::new(disk.open(input.read_only));
    let mut queues = vec![queue];
    device.activate(features, &queues).expect("a ready queue activates");
    let driver = DriverSide { indirect: input.indirect, read_only: input.read_only };
    let mut avail_idx = 0u16;
    for (round, notification) in input.notifications.iter().enumerate() {
        for &head in &notification.heads {
            let slot = u64::from(avail_idx % size);
            let _ = mem.write_obj(GuestAddress(avail + RING_ENTRIES_OFFSET + 2 * slot), u16::from(head));
            avail_idx = avail_idx.wrapping_add(1);
        }
        avail_idx = notification.avail_idx.unwrap_or(avail_idx);
        let _ = mem.write_obj(GuestAddress(avail + RING_IDX_OFFSET), avail_idx);
        for poke in &notification.pokes {
            let _ = mem.write(GuestAddress(poke.at.get()), &poke.bytes);
        }
        let before = ram.snapshot();
        let queue_before = queues[0].clone();
        let disk_before = disk.contents();
        let result = device.process_queue(0, &mut queues, mem);
        // The used ring was checked at enable: serving a queue never fails for the device.
        assert!(result.is_ok(), "notification {round}: {result:?}");
        let disk_after = disk.contents();
        Round {
            before: &before,
            queue_before: &queue_before,
            queue_after: &queues[0],
            disk_before: &disk_before,
            disk_after: &disk_after,
        }
        .check(ram, driver, &|| format!("notification {round}"));
    }
}

/// Writes `descriptors` as a table at `table` (what does not fit in RAM is dropped).
pub(crate) fn write_descriptors(mem: &GuestMemory, table: u64, descriptors: &[DescSpec]) {
    for (index, d) in descriptors.iter().enumerate().take(usize::from(MAX_QUEUE_SIZE)) {
        let Some(at) = table.checked_add(index as u64 * DESCRIPTOR_SIZE) else { return };
        let mut bytes = [0u8; 16];
        bytes[0..8].copy_from_slice(&d.addr.get().to_le_bytes());
        bytes[8..12].copy_from_slice(&d.len.get().to_le_bytes());
        bytes[12..14].copy_from_slice(&u16::from(d.flags).to_le_bytes());
        bytes[14..16].copy_from_slice(&u16::from(d.next).to_le_bytes());
        let _ = mem.write(GuestAddress(at), &bytes);
    }
}

/// Writes a request header (what does not fit in RAM is dropped).
pub(crate) fn write_header(mem: &GuestMemory, header: HeaderSpec) {
    use stage06::virtio::block::{VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
    let request_type = match header.request_type {
        RequestType::In => VIRTIO_BLK_T_IN,
        RequestType::Out => VIRTIO_BLK_T_OUT,
        RequestType::Flush => VIRTIO_BLK_T_FLUSH,
        RequestType::GetId => VIRTIO_BLK_T_GET_ID,
        RequestType::Raw(t) => t,
    };
    let sector = match header.sector {
        Sector::Small(n) => u64::from(n % 32),
        Sector::FromEnd(n) => (DISK_SIZE / SECTOR_SIZE).wrapping_sub(u64::from(n)),
        Sector::Raw(n) => n,
    };
    let mut bytes = [0u8; 16];
    bytes[0..4].copy_from_slice(&request_type.to_le_bytes());
    bytes[8..16].copy_from_slice(&sector.to_le_bytes());
    let _ = mem.write(GuestAddress(header.at.get()), &bytes);
}
