//! What the virtio targets share: a disk in memory, guest addresses a fuzzer can aim, an
//! independent walk of descriptor chains, and the checks made after the device served a queue.
//!
//! The checks judge the device by what the guest can see, with the driver's knowledge only:
//! guest memory before and after, the used ring, and the disk image before and after.
//! - Guest memory changed only in the used ring and in buffers the driver marked device-writable
//!   (in the queue's table or an indirect table it points to).
//! - Each used element names a head the driver made available, in order, and claims no more
//!   bytes than the writable buffers of that chain hold; a chain that cannot be followed (a loop,
//!   a `next` outside its table) is returned with length 0.
//! - When the requests do not overlap each other or the rings (a driver could make them, and then
//!   "what the device should have done" depends on its order of work), each request's status
//!   byte and length are the ones §5.2.6 asks for: IOERR for data past the end of the disk or not
//!   in whole sectors, UNSUPP for unknown types, OK otherwise; reads return the disk's bytes;
//!   and the image afterwards is exactly the image before with the successful writes applied
//!   in order. A request past the end therefore leaves the image unchanged.

use std::fs::File;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use arbitrary::Arbitrary;
use stage02::memory::GuestMemory;
use stage06::virtio::block::{
    open_disk, DiskImage, REQUEST_HEADER_SIZE, SECTOR_SIZE, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use stage06::virtio::queue::{
    Queue, DESCRIPTOR_SIZE, MAX_QUEUE_SIZE, RING_ENTRIES_OFFSET, RING_IDX_OFFSET, USED_ELEMENT_SIZE,
    VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};

use crate::guest_ram::{assert_writes_within, MemoryView, RangeSet, Snapshot, TestRam};

/// Guest RAM of the virtio targets: 64 KiB at 0, a hole, 32 KiB at 1 MiB.
pub const VIRTIO_RAM: [(u64, u64); 2] = [(0, LOW_SIZE), (HIGH_START, HIGH_SIZE)];
const LOW_SIZE: u64 = 0x1_0000;
const HIGH_START: u64 = 0x10_0000;
const HIGH_SIZE: u64 = 0x8000;
/// Size of the in-memory disk: 16 sectors, so that "past the end" is easy to reach.
pub const DISK_SIZE: u64 = 16 * SECTOR_SIZE;

/// A guest-physical address as a fuzzer can aim it: mostly inside one of the two regions or at
/// their ends, sometimes anywhere.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Addr {
    /// An offset into the low region.
    Low(u16),
    /// An offset into the high region.
    High(u16),
    /// So many bytes before the end of the low region (buffers across the hole).
    EndOfLow(u8),
    /// So many bytes before the end of the high region (buffers past the end of RAM).
    EndOfHigh(u8),
    /// Any address.
    Raw(u64),
}

impl Addr {
    /// The address.
    pub fn get(self) -> u64 {
        match self {
            Addr::Low(offset) => u64::from(offset) % LOW_SIZE,
            Addr::High(offset) => HIGH_START + u64::from(offset) % HIGH_SIZE,
            Addr::EndOfLow(back) => LOW_SIZE - u64::from(back),
            Addr::EndOfHigh(back) => HIGH_START + HIGH_SIZE - u64::from(back),
            Addr::Raw(address) => address,
        }
    }
}

/// A raw image in memory (a memfd), opened through `/proc/self/fd` like a file on disk.
pub struct MemDisk {
    file: File,
    path: PathBuf,
}

impl MemDisk {
    /// A disk of [`DISK_SIZE`] bytes.
    ///
    /// # Panics
    /// If the host refuses a memfd.
    pub fn new() -> MemDisk {
        // SAFETY: a valid NUL-terminated name and flags; the result is checked before use.
        let fd = unsafe { libc::memfd_create(c"minivirt-fuzz-disk".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(DISK_SIZE).expect("the memfd takes its size");
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        MemDisk { file, path }
    }

    /// Fills the image with a pattern that differs from guest RAM's.
    pub fn reset(&self) {
        let bytes: Vec<u8> = (0..DISK_SIZE).map(|i| (i as u8).wrapping_mul(31) ^ (i >> 9) as u8 ^ 0x5a).collect();
        self.file.write_all_at(&bytes, 0).expect("the memfd takes writes");
    }

    /// The image's bytes now.
    pub fn contents(&self) -> Vec<u8> {
        let mut bytes = vec![0; DISK_SIZE as usize];
        self.file.read_exact_at(&mut bytes, 0).expect("the memfd is readable");
        assert_eq!(self.file.metadata().map(|m| m.len()).ok(), Some(DISK_SIZE), "the image changed size");
        bytes
    }

    /// Opens the image for a device, as `--disk` would.
    pub fn open(&self, read_only: bool) -> DiskImage {
        open_disk(&self.path, read_only).expect("the memfd opens as a disk image")
    }
}

impl Default for MemDisk {
    fn default() -> Self {
        MemDisk::new()
    }
}

/// One buffer of a chain, as the driver wrote it.
#[derive(Debug, Clone, Copy)]
pub struct Buffer {
    /// Guest address.
    pub addr: u64,
    /// Length.
    pub len: u32,
    /// Device-writable.
    pub write: bool,
}

/// A raw descriptor read from a table.
struct RawDesc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn read_desc(view: &dyn MemoryView, table: u64, index: u16) -> Option<RawDesc> {
    let at = table.checked_add(u64::from(index) * DESCRIPTOR_SIZE)?;
    Some(RawDesc {
        addr: view.u64_at(at)?,
        len: view.u32_at(at.checked_add(8)?)?,
        flags: view.u16_at(at.checked_add(12)?)?,
        next: view.u16_at(at.checked_add(14)?)?,
    })
}

/// Follows chain `head` of the queue table at `table` (`size` entries), into at most one indirect
/// table if `indirect` was negotiated. `None` when the chain cannot be followed at all: a loop,
/// a `next` outside its table, a descriptor outside RAM, or an indirect descriptor that is not
/// allowed or not a whole table. Whether the buffers are acceptable is not judged here.
pub fn follow_chain(view: &dyn MemoryView, table: u64, size: u16, head: u16, indirect: bool) -> Option<Vec<Buffer>> {
    let (mut table, mut table_len, mut in_indirect) = (table, size, false);
    let mut visited = vec![false; usize::from(size.max(MAX_QUEUE_SIZE))];
    let mut buffers = Vec::new();
    let mut index = head;
    loop {
        if index >= table_len || std::mem::replace(&mut visited[usize::from(index)], true) {
            return None;
        }
        let desc = read_desc(view, table, index)?;
        if desc.flags & VIRTQ_DESC_F_INDIRECT != 0 {
            let entries = desc.len / DESCRIPTOR_SIZE as u32;
            let whole = desc.len % DESCRIPTOR_SIZE as u32 == 0 && (1..=u32::from(MAX_QUEUE_SIZE)).contains(&entries);
            if !indirect || in_indirect || desc.flags & VIRTQ_DESC_F_NEXT != 0 || !whole {
                return None;
            }
            (table, table_len, in_indirect) = (desc.addr, entries as u16, true);
            visited = vec![false; usize::from(MAX_QUEUE_SIZE)];
            index = 0;
            continue;
        }
        buffers.push(Buffer { addr: desc.addr, len: desc.len, write: desc.flags & VIRTQ_DESC_F_WRITE != 0 });
        if desc.flags & VIRTQ_DESC_F_NEXT == 0 {
            return Some(buffers);
        }
        index = desc.next;
    }
}

/// Every buffer the driver marked device-writable in the queue's table, and in each indirect
/// table that one of its descriptors points to: a superset of what any valid chain can offer.
fn writable_buffers(view: &dyn MemoryView, queue: &Queue, indirect: bool) -> RangeSet {
    let mut allowed = RangeSet::default();
    for index in 0..queue.size() {
        let Some(desc) = read_desc(view, queue.desc_table().0, index) else { continue };
        if desc.flags & VIRTQ_DESC_F_INDIRECT != 0 && indirect {
            let entries = (desc.len / DESCRIPTOR_SIZE as u32).min(u32::from(MAX_QUEUE_SIZE)) as u16;
            for entry in 0..entries {
                match read_desc(view, desc.addr, entry) {
                    Some(d) if d.flags & VIRTQ_DESC_F_WRITE != 0 => allowed.add(d.addr, u64::from(d.len)),
                    _ => {}
                }
            }
        } else if desc.flags & VIRTQ_DESC_F_WRITE != 0 {
            allowed.add(desc.addr, u64::from(desc.len));
        }
    }
    allowed
}

/// The bytes of the used ring the device writes: `idx` and the elements (not `flags`).
fn used_ring_writes(queue: &Queue) -> Range<u64> {
    let start = queue.used_ring().0 + RING_IDX_OFFSET;
    start..queue.used_ring().0 + RING_ENTRIES_OFFSET + USED_ELEMENT_SIZE * u64::from(queue.size())
}

/// How the driver set the queue up, as far as the checks need.
#[derive(Debug, Clone, Copy)]
pub struct DriverSide {
    /// Whether `VIRTIO_F_INDIRECT_DESC` was negotiated.
    pub indirect: bool,
    /// Whether the disk is read-only.
    pub read_only: bool,
}

/// What the device changed while it served one notification, and the checks on it.
pub struct Round<'a> {
    /// Guest memory before.
    pub before: &'a Snapshot,
    /// The queue before (its cursors say where the device was).
    pub queue_before: &'a Queue,
    /// The queue after.
    pub queue_after: &'a Queue,
    /// The image before.
    pub disk_before: &'a [u8],
    /// The image after.
    pub disk_after: &'a [u8],
}

impl Round<'_> {
    /// Runs every check of the module documentation; panics naming `what` on a violation.
    pub fn check(&self, ram: &TestRam, driver: DriverSide, what: &dyn Fn() -> String) {
        let (before, q0, q1) = (self.before, self.queue_before, self.queue_after);
        let after: &GuestMemory = ram.memory();

        // Memory: only the used ring and writable buffers. A buffer may be a descriptor table
        // itself, so what the driver's tables say afterwards counts too.
        let changed = ram.changed_since(before);
        if !q0.is_ready() {
            // The driver never enabled it: its addresses may be anything, and nothing is served.
            assert_writes_within(&changed, &RangeSet::default(), &|| format!("{}: a queue not ready", what()));
            assert!(self.disk_before == self.disk_after, "{}: the image changed", what());
            return;
        }
        let mut buffers = writable_buffers(before, q0, driver.indirect);
        buffers.extend(&writable_buffers(after, q0, driver.indirect));
        let used = used_ring_writes(q0);
        let mut allowed = buffers.clone();
        allowed.add(used.start, used.end - used.start);
        assert_writes_within(&changed, &allowed, &|| format!("{}: the device", what()));

        let consumed = q1.next_avail().wrapping_sub(q0.next_avail());
        let returned = q1.next_used().wrapping_sub(q0.next_used());
        assert!(consumed <= q0.size(), "{}: {consumed} chains taken from a ring of {}", what(), q0.size());
        assert!(returned <= consumed, "{}: {returned} chains returned, {consumed} taken", what());
        if returned == 0 {
            assert!(self.disk_before == self.disk_after, "{}: the image changed, no request completed", what());
            return;
        }
        let used_idx = after.u16_at(q0.used_ring().0 + RING_IDX_OFFSET);

        // The heads the driver offered, in order, those inside the table (others are dropped).
        let avail = q0.avail_ring().0;
        let offered: Vec<u16> = (0..consumed)
            .filter_map(|i| {
                let slot = q0.next_avail().wrapping_add(i) % q0.size();
                before.u16_at(avail + RING_ENTRIES_OFFSET + 2 * u64::from(slot))
            })
            .filter(|&head| head < q0.size())
            .collect();
        let elements: Vec<(u32, u32)> = (0..returned)
            .map(|i| {
                let slot = q0.next_used().wrapping_add(i) % q0.size();
                let at = q0.used_ring().0 + RING_ENTRIES_OFFSET + USED_ELEMENT_SIZE * u64::from(slot);
                (after.u32_at(at).unwrap_or(u32::MAX), after.u32_at(at + 4).unwrap_or(u32::MAX))
            })
            .collect();
        let chains: Vec<Option<Vec<Buffer>>> = offered
            .iter()
            .map(|&head| follow_chain(before, q0.desc_table().0, q0.size(), head, driver.indirect))
            .collect();

        // Unless a writable buffer covers the used ring (then a later request may have written
        // over an element), every element names a head of the table and claims no more than
        // the writable bytes of that chain, as the driver's tables said before or after.
        if !buffers.overlaps(&used) {
            for &(id, len) in &elements {
                let what = || format!("{}: used element ({id}, {len})", what());
                assert!(id < u32::from(q0.size()), "{}: head outside the table", what());
                let bound = [before as &dyn MemoryView, after as &dyn MemoryView]
                    .iter()
                    .filter_map(|view| follow_chain(*view, q0.desc_table().0, q0.size(), id as u16, driver.indirect))
                    .map(|chain| chain.iter().filter(|b| b.write).map(|b| u64::from(b.len)).sum::<u64>())
                    .max()
                    .unwrap_or(0);
                assert!(u64::from(len) <= bound, "{}: more than the {bound} writable bytes of its chain", what());
            }
        }

        // Requests that overlap each other or the rings make the expected outcome depend on
        // the order of the device's work: then only the bounds above are checked.
        if overlaps(q0, driver, before, &chains) {
            return;
        }
        assert_eq!(used_idx, Some(q1.next_used()), "{}: used.idx", what());
        assert_eq!(offered.len(), elements.len(), "{}: every head inside the table comes back", what());
        let mut disk = self.disk_before.to_vec();
        for (n, ((&head, &(id, len)), chain)) in offered.iter().zip(&elements).zip(&chains).enumerate() {
            let what = || format!("{}: used element {n} (head {head})", what());
            assert_eq!(id, u32::from(head), "{}: returns another head", what());
            let Some(chain) = chain else {
                assert_eq!(len, 0, "{}: a chain that cannot be followed is returned with length 0", what());
                continue;
            };
            let writable: u64 = chain.iter().filter(|b| b.write).map(|b| u64::from(b.len)).sum();
            assert!(u64::from(len) <= writable, "{}: claims {len} bytes of {writable} writable", what());
            if len > 0 {
                check_request(after, before, chain, len, &mut disk, driver, &what);
            }
        }
        assert!(disk == self.disk_after, "{}: the image is not the old one with the completed writes", what());
    }
}

/// Whether the buffers of the chains overlap each other, the rings, or the tables in a way that
/// lets one request change another's bytes.
fn overlaps(queue: &Queue, driver: DriverSide, before: &Snapshot, chains: &[Option<Vec<Buffer>>]) -> bool {
    // (range, written by the device)
    let mut ranges: Vec<(Range<u64>, bool)> = Vec::new();
    let size = u64::from(queue.size());
    ranges.push((queue.desc_table().0..queue.desc_table().0 + DESCRIPTOR_SIZE * size, false));
    ranges.push((queue.avail_ring().0..queue.avail_ring().0 + RING_ENTRIES_OFFSET + 2 * size + 2, false));
    ranges.push((used_ring_writes(queue), true));
    for index in 0..queue.size() {
        match read_desc(before, queue.desc_table().0, index) {
            Some(d) if d.flags & VIRTQ_DESC_F_INDIRECT != 0 && driver.indirect => {
                ranges.push((d.addr..d.addr.saturating_add(u64::from(d.len)), false))
            }
            _ => {}
        }
    }
    for buffer in chains.iter().flatten().flatten() {
        ranges.push((buffer.addr..buffer.addr.saturating_add(u64::from(buffer.len)), buffer.write));
    }
    ranges.retain(|(r, _)| !r.is_empty());
    ranges.sort_by_key(|(r, _)| r.start);
    // Sweep: the range reaching furthest so far, and whether a written range is among the open.
    let mut open: Option<(u64, bool)> = None;
    for (r, written) in ranges {
        match open {
            Some((end, open_written)) if r.start < end => {
                if written || open_written {
                    return true;
                }
                open = Some((end.max(r.end), false));
            }
            _ => open = Some((r.end, written)),
        }
    }
    false
}

/// Reads the first `buf.len()` bytes of the stream of `buffers` from `view`.
fn read_stream(view: &dyn MemoryView, buffers: &[Buffer], buf: &mut [u8]) -> bool {
    let mut done = 0;
    for b in buffers {
        if done == buf.len() {
            break;
        }
        let n = (b.len as usize).min(buf.len() - done);
        if !view.read_bytes(b.addr, &mut buf[done..done + n]) {
            return false;
        }
        done += n;
    }
    done == buf.len()
}

/// Checks one completed request: status, used length, data, and its effect on `disk`, a copy of
/// the image that the successful writes are applied to in order.
fn check_request(
    after: &GuestMemory,
    before: &Snapshot,
    chain: &[Buffer],
    len: u32,
    disk: &mut [u8],
    driver: DriverSide,
    what: &dyn Fn() -> String,
) {
    let first_writable = chain.iter().position(|b| b.write).unwrap_or(chain.len());
    let (readable, writable) = chain.split_at(first_writable);
    let Some(last) = writable.iter().rev().find(|b| b.len > 0) else {
        panic!("{}: {len} bytes used in a chain without a writable byte", what());
    };
    let status_at = last.addr + u64::from(last.len) - 1;
    let mut status = [0u8];
    assert!(after.read_bytes(status_at, &mut status), "{}: status byte at {status_at:#x} outside RAM", what());
    let [status] = status;
    let readable_len: u64 = readable.iter().map(|b| u64::from(b.len)).sum();
    let data_in: u64 = writable.iter().map(|b| u64::from(b.len)).sum::<u64>() - 1;
    let mut header = [0u8; REQUEST_HEADER_SIZE];
    if readable_len < REQUEST_HEADER_SIZE as u64 || !read_stream(before, readable, &mut header) {
        assert_eq!((status, len), (VIRTIO_BLK_S_IOERR, 1), "{}: a short header", what());
        return;
    }
    let request_type = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default());
    let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    let range = |data: u64| {
        let start = sector.checked_mul(SECTOR_SIZE)?;
        let end = start.checked_add(data)?;
        (data.is_multiple_of(SECTOR_SIZE) && end <= DISK_SIZE).then_some(start as usize..end as usize)
    };
    let what = || format!("{} (type {request_type}, sector {sector:#x})", what());
    match request_type {
        VIRTIO_BLK_T_IN => match range(data_in) {
            Some(on_disk) => {
                assert_eq!((status, u64::from(len)), (VIRTIO_BLK_S_OK, data_in + 1), "{}: a read", what());
                let mut data = vec![0; on_disk.len()];
                assert!(read_stream(after, writable, &mut data), "{}: data buffers", what());
                assert!(data == disk[on_disk], "{}: the data read is not the disk's", what());
            }
            None => assert_eq!((status, len), (VIRTIO_BLK_S_IOERR, 1), "{}: a read past the end", what()),
        },
        VIRTIO_BLK_T_OUT => match range(readable_len - REQUEST_HEADER_SIZE as u64) {
            Some(on_disk) if !driver.read_only => {
                assert_eq!((status, len), (VIRTIO_BLK_S_OK, 1), "{}: a write", what());
                let mut stream = vec![0; REQUEST_HEADER_SIZE + on_disk.len()];
                assert!(read_stream(before, readable, &mut stream), "{}: data buffers", what());
                disk[on_disk].copy_from_slice(&stream[REQUEST_HEADER_SIZE..]);
            }
            _ => assert_eq!((status, len), (VIRTIO_BLK_S_IOERR, 1), "{}: a write that must fail", what()),
        },
        VIRTIO_BLK_T_FLUSH => assert_eq!((status, len), (VIRTIO_BLK_S_OK, 1), "{}: a flush", what()),
        VIRTIO_BLK_T_GET_ID => {
            let id_len = data_in.min(VIRTIO_BLK_ID_BYTES as u64);
            assert_eq!((status, u64::from(len)), (VIRTIO_BLK_S_OK, id_len + 1), "{}: GET_ID", what());
        }
        _ => assert_eq!((status, len), (VIRTIO_BLK_S_UNSUPP, 1), "{}: an unknown type", what()),
    }
}
