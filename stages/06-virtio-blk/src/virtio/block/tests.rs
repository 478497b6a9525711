//! Unit tests of virtio-blk, driven through the virtio-mmio transport the way Linux drives it:
//! every request type, every mistake a request can make, host failures of the image, the
//! configuration space, and a fuzz loop of arbitrary guest memory and registers.

use super::*;
use crate::virtio::mmio::{
    MmioTransport, CONFIG_SPACE_OFFSET, DEVICE_ID_OFFSET, INTERRUPT_USED_BUFFER, QUEUE_NOTIFY_OFFSET,
    STATUS_DEVICE_NEEDS_RESET, STATUS_FEATURES_OK, STATUS_OFFSET,
};
use crate::virtio::queue::{VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use crate::virtio::test_utils::*;
use crate::virtio::test_utils::{write_desc, DriverQueue};
use stage02::bus::BusDevice;
use stage02::memory::GuestAddress;
use stage04::irq::testing::CountingTrigger;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Where request headers, data and status bytes go in guest memory.
const HEADER: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;
const STATUS: u64 = 0x1_0100;
const ALL_FEATURES: u64 = u64::MAX;

/// A file in the temporary directory, removed when dropped.
pub(crate) struct TempFile(pub PathBuf);

impl TempFile {
    pub fn with_contents(contents: &[u8]) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("minivirt-blk-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    pub fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A disk image whose sector `n` is filled with byte `n`.
fn patterned(sectors: u8) -> Vec<u8> {
    (0..sectors).flat_map(|n| [n; SECTOR_SIZE as usize]).collect()
}

type Transport = MmioTransport<VirtioBlock, CountingTrigger>;

/// A running virtio-blk device, driven the way Linux drives it.
struct Harness {
    transport: Transport,
    mem: Arc<GuestMemory>,
    trigger: CountingTrigger,
    driver: DriverQueue,
    file: TempFile,
    /// Used ring entries read so far.
    used_seen: u16,
}

impl Harness {
    fn new(contents: &[u8], read_only: bool) -> Self {
        Self::with_features(contents, read_only, ALL_FEATURES)
    }

    fn with_features(contents: &[u8], read_only: bool, features: u64) -> Self {
        let file = TempFile::with_contents(contents);
        let disk = open_disk(&file.0, read_only).unwrap();
        let mem = Arc::new(GuestMemory::new(&[(0, 0x4_0000), (0x10_0000, 0x1_0000)]).unwrap());
        let trigger = CountingTrigger::default();
        let mut transport = MmioTransport::new(VirtioBlock::new(disk), Arc::clone(&mem), trigger.clone()).unwrap();
        assert_eq!(read32(&mut transport, DEVICE_ID_OFFSET), VIRTIO_ID_BLOCK);
        assert_ne!(negotiate(&mut transport, features) & STATUS_FEATURES_OK, 0);
        let driver = DriverQueue::at(0x1000, QUEUE_SIZE);
        assert_eq!(
            setup_queue(
                &mut transport,
                0,
                u32::from(QUEUE_SIZE),
                driver.desc_table,
                driver.avail_ring,
                driver.used_ring
            ),
            1
        );
        driver_ok(&mut transport);
        Harness { transport, mem, trigger, driver, file, used_seen: 0 }
    }

    fn write_header(&self, request_type: u32, sector: u64) {
        self.mem.write_obj(GuestAddress(HEADER), request_type).unwrap();
        self.mem.write_obj(GuestAddress(HEADER + 4), 0u32).unwrap();
        self.mem.write_obj(GuestAddress(HEADER + 8), sector).unwrap();
        self.mem.write_obj(GuestAddress(STATUS), 0xffu8).unwrap();
    }

    /// Publishes the chain at `head`, notifies, takes the interrupt; returns the used
    /// element's length.
    fn submit(&mut self, head: u16) -> u32 {
        self.driver.publish(&self.mem, head).unwrap();
        write32(&mut self.transport, QUEUE_NOTIFY_OFFSET, 0);
        assert_eq!(take_interrupt(&mut self.transport), INTERRUPT_USED_BUFFER);
        assert_eq!(self.driver.used_idx(&self.mem).unwrap(), self.used_seen.wrapping_add(1));
        let (id, len) = self.driver.used_elem(&self.mem, self.used_seen).unwrap();
        self.used_seen = self.used_seen.wrapping_add(1);
        assert_eq!(id, u32::from(head));
        len
    }

    /// A request as Linux builds it: header, data buffers, status, each its own
    /// descriptor. Returns (status byte, used length).
    fn request(&mut self, request_type: u32, sector: u64, data: &[(u64, u32)], device_writes: bool) -> (u8, u32) {
        self.write_header(request_type, sector);
        let mut buffers = vec![(HEADER, 16, false)];
        buffers.extend(data.iter().map(|&(addr, len)| (addr, len, device_writes)));
        buffers.push((STATUS, 1, true));
        let head = self.driver.add_chain(&self.mem, 0, &buffers).unwrap();
        let len = self.submit(head);
        (self.status(), len)
    }

    fn status(&self) -> u8 {
        self.mem.read_obj(GuestAddress(STATUS)).unwrap()
    }

    fn guest_bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        self.mem.read(GuestAddress(addr), &mut bytes).unwrap();
        bytes
    }
}

#[test]
fn test_read_request_end_to_end() {
    let mut h = Harness::new(&patterned(8), false);
    // Two data buffers, one of them in the second RAM region.
    let (status, len) = h.request(VIRTIO_BLK_T_IN, 2, &[(DATA, 512), (0x10_0000, 1024)], true);
    assert_eq!((status, len), (VIRTIO_BLK_S_OK, 1024 + 512 + 1));
    assert_eq!(h.guest_bytes(DATA, 512), [2; 512]);
    assert_eq!(h.guest_bytes(0x10_0000, 1024), [[3u8; 512], [4; 512]].concat());
    assert_eq!(h.trigger.count(), 1);
}

#[test]
fn test_write_request_end_to_end() {
    let mut h = Harness::new(&patterned(8), false);
    h.mem.write(GuestAddress(DATA), &[0xab; 1024]).unwrap();
    let (status, len) = h.request(VIRTIO_BLK_T_OUT, 5, &[(DATA, 1024)], false);
    assert_eq!((status, len), (VIRTIO_BLK_S_OK, 1), "only the status byte was written");
    let mut expected = patterned(8);
    expected[5 * 512..7 * 512].fill(0xab);
    assert_eq!(h.file.contents(), expected);
    // And it reads back.
    let (status, _) = h.request(VIRTIO_BLK_T_IN, 6, &[(DATA + 0x1000, 512)], true);
    assert_eq!(status, VIRTIO_BLK_S_OK);
    assert_eq!(h.guest_bytes(DATA + 0x1000, 512), [0xab; 512]);
}

#[test]
fn test_large_request_crosses_io_chunks() {
    let sectors = 200u8; // 100 KiB: two bounce-buffer rounds.
    let mut h = Harness::new(&patterned(sectors), false);
    let len = u32::from(sectors) * 512;
    let (status, used) = h.request(VIRTIO_BLK_T_IN, 0, &[(DATA, len)], true);
    assert_eq!((status, used), (VIRTIO_BLK_S_OK, len + 1));
    assert_eq!(h.guest_bytes(DATA, len as usize), patterned(sectors));
    h.mem.write(GuestAddress(DATA), &vec![0x5a; len as usize]).unwrap();
    assert_eq!(h.request(VIRTIO_BLK_T_OUT, 0, &[(DATA, len)], false).0, VIRTIO_BLK_S_OK);
    assert_eq!(h.file.contents(), vec![0x5a; len as usize]);
}

#[test]
fn test_request_through_indirect_table() {
    let mut h = Harness::new(&patterned(4), false);
    h.write_header(VIRTIO_BLK_T_IN, 1);
    let table = 0x8000;
    write_desc(&h.mem, table, 0, HEADER, 16, VIRTQ_DESC_F_NEXT, 1).unwrap();
    write_desc(&h.mem, table, 1, DATA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2).unwrap();
    write_desc(&h.mem, table, 2, DATA + 512, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3).unwrap();
    write_desc(&h.mem, table, 3, STATUS, 1, VIRTQ_DESC_F_WRITE, 0).unwrap();
    h.driver.set_desc(&h.mem, 7, table, 4 * 16, VIRTQ_DESC_F_INDIRECT, 0).unwrap();
    assert_eq!(h.submit(7), 1025);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK);
    assert_eq!(h.guest_bytes(DATA, 1024), [[1u8; 512], [2; 512]].concat());
}

#[test]
fn test_any_descriptor_layout_is_accepted() {
    // Header split in two, data and status in one writable buffer (§2.7.4).
    let mut h = Harness::new(&patterned(4), false);
    h.write_header(VIRTIO_BLK_T_IN, 3);
    let head =
        h.driver.add_chain(&h.mem, 10, &[(HEADER, 5, false), (HEADER + 5, 11, false), (DATA, 513, true)]).unwrap();
    assert_eq!(h.submit(head), 513);
    assert_eq!(h.guest_bytes(DATA, 512), [3; 512]);
    assert_eq!(h.guest_bytes(DATA + 512, 1), [VIRTIO_BLK_S_OK]);
}

#[test]
fn test_read_only_disk_refuses_writes() {
    let mut h = Harness::new(&patterned(4), true);
    assert_ne!(h.transport.driver_features() & (1 << VIRTIO_BLK_F_RO), 0, "VIRTIO_BLK_F_RO offered");
    h.mem.write(GuestAddress(DATA), &[0xee; 512]).unwrap();
    let (status, len) = h.request(VIRTIO_BLK_T_OUT, 0, &[(DATA, 512)], false);
    assert_eq!((status, len), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(h.file.contents(), patterned(4), "the file is unchanged");
    // Reads and flushes still work.
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 0, &[(DATA, 512)], true).0, VIRTIO_BLK_S_OK);
    assert_eq!(h.request(VIRTIO_BLK_T_FLUSH, 0, &[], true).0, VIRTIO_BLK_S_OK);
}

#[test]
fn test_out_of_range_sectors_fail() {
    let mut h = Harness::new(&patterned(8), false);
    for (sector, len) in [(8, 512), (7, 1024), (u64::MAX / 512, 512), (u64::MAX, 512), (1 << 55, 0)] {
        let (status, used) = h.request(VIRTIO_BLK_T_IN, sector, &[(DATA, len)], true);
        assert_eq!((status, used), (VIRTIO_BLK_S_IOERR, 1), "read at sector {sector:#x}");
        let (status, _) = h.request(VIRTIO_BLK_T_OUT, sector, &[(DATA, len)], false);
        assert_eq!(status, VIRTIO_BLK_S_IOERR, "write at sector {sector:#x}");
    }
    assert_eq!(h.file.contents(), patterned(8));
    // The last sector is fine.
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 7, &[(DATA, 512)], true), (VIRTIO_BLK_S_OK, 513));
}

#[test]
fn test_partial_sectors_fail() {
    let mut h = Harness::new(&patterned(4), false);
    assert_eq!(h.request(VIRTIO_BLK_T_OUT, 0, &[(DATA, 100)], false), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 0, &[(DATA, 512), (DATA + 512, 3)], true), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(h.file.contents(), patterned(4));
}

#[test]
fn test_get_id_returns_the_serial() {
    let mut h = Harness::new(&patterned(1), false);
    h.mem.write(GuestAddress(DATA), &[0xff; 20]).unwrap();
    let (status, len) = h.request(VIRTIO_BLK_T_GET_ID, 0, &[(DATA, 20)], true);
    assert_eq!((status, len), (VIRTIO_BLK_S_OK, 21));
    let mut expected = [0u8; 20];
    expected[..12].copy_from_slice(b"minivirt-vda");
    assert_eq!(h.guest_bytes(DATA, 20), expected);
}

#[test]
fn test_serial_is_cut_to_20_bytes() {
    let file = TempFile::with_contents(&patterned(1));
    let device = VirtioBlock::new(open_disk(&file.0, true).unwrap()).with_serial("a-serial-longer-than-twenty");
    assert_eq!(&device.serial, b"a-serial-longer-than");
}

#[test]
fn test_flush_succeeds() {
    let mut h = Harness::new(&patterned(1), false);
    assert_eq!(h.request(VIRTIO_BLK_T_FLUSH, 0, &[], true), (VIRTIO_BLK_S_OK, 1));
}

#[test]
fn test_writes_are_stable_without_negotiated_flush() {
    // Nothing observable but success here; the point is the code path (sync after write).
    let features = ALL_FEATURES & !(1 << VIRTIO_BLK_F_FLUSH);
    let mut h = Harness::with_features(&patterned(2), false, features);
    h.mem.write(GuestAddress(DATA), &[1; 512]).unwrap();
    assert_eq!(h.request(VIRTIO_BLK_T_OUT, 1, &[(DATA, 512)], false).0, VIRTIO_BLK_S_OK);
    assert_eq!(&h.file.contents()[512..], &[1; 512]);
}

#[test]
fn test_unknown_request_types_are_unsupported() {
    let mut h = Harness::new(&patterned(1), false);
    for request_type in [2, 5, 11, 13, 0x8000_0000] {
        assert_eq!(h.request(request_type, 0, &[], true), (VIRTIO_BLK_S_UNSUPP, 1), "type {request_type}");
    }
}

#[test]
fn test_short_header_and_missing_status() {
    let mut h = Harness::new(&patterned(1), false);
    h.write_header(VIRTIO_BLK_T_IN, 0);
    let head = h.driver.add_chain(&h.mem, 0, &[(HEADER, 8, false), (STATUS, 1, true)]).unwrap();
    assert_eq!(h.submit(head), 1);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR);
    // No writable byte: the chain comes back with nothing written.
    let head = h.driver.add_chain(&h.mem, 0, &[(HEADER, 16, false), (DATA, 512, false)]).unwrap();
    assert_eq!(h.submit(head), 0);
    let head = h.driver.add_chain(&h.mem, 0, &[(HEADER, 16, false), (DATA, 0, true)]).unwrap();
    assert_eq!(h.submit(head), 0);
}

/// Each guest mistake in the ring, then a valid request that must work.
#[test]
fn test_device_survives_malformed_chains() {
    let mut h = Harness::new(&patterned(4), false);
    let check_next_request_works = |h: &mut Harness| {
        let (status, len) = h.request(VIRTIO_BLK_T_IN, 1, &[(DATA, 512)], true);
        assert_eq!((status, len), (VIRTIO_BLK_S_OK, 513));
        assert_eq!(h.guest_bytes(DATA, 512), [1; 512]);
        assert_eq!(h.transport.device_status() & STATUS_DEVICE_NEEDS_RESET, 0);
    };
    let errors_before = stage02::guest_error::count();

    // A looping chain comes back unused.
    h.driver.set_desc(&h.mem, 20, HEADER, 16, VIRTQ_DESC_F_NEXT, 21).unwrap();
    h.driver.set_desc(&h.mem, 21, DATA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 20).unwrap();
    assert_eq!(h.submit(20), 0);
    check_next_request_works(&mut h);

    // A chain longer than the queue: 256 descriptors, then one more through the last.
    for i in 0..QUEUE_SIZE {
        h.driver.set_desc(&h.mem, i, DATA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, (i + 1) % QUEUE_SIZE).unwrap();
    }
    assert_eq!(h.submit(0), 0);
    check_next_request_works(&mut h);

    // A buffer outside RAM.
    h.write_header(VIRTIO_BLK_T_IN, 0);
    let head =
        h.driver.add_chain(&h.mem, 30, &[(HEADER, 16, false), (0x5_0000, 512, true), (STATUS, 1, true)]).unwrap();
    assert_eq!(h.submit(head), 0);
    assert_eq!(h.status(), 0xff, "nothing written");
    check_next_request_works(&mut h);

    // A head index out of range: consumed, nothing to give back.
    h.driver.publish(&h.mem, QUEUE_SIZE).unwrap();
    write32(&mut h.transport, QUEUE_NOTIFY_OFFSET, 0);
    assert_eq!(h.driver.used_idx(&h.mem).unwrap(), h.used_seen);
    check_next_request_works(&mut h);

    // avail.idx jumping by more than the queue size: nothing consumed, then the driver
    // (here, the test) puts it right and the queue goes on.
    let honest = h.driver.avail_idx;
    h.driver.set_avail_idx(&h.mem, honest.wrapping_add(QUEUE_SIZE + 1)).unwrap();
    write32(&mut h.transport, QUEUE_NOTIFY_OFFSET, 0);
    assert_eq!(h.driver.used_idx(&h.mem).unwrap(), h.used_seen);
    h.driver.set_avail_idx(&h.mem, honest).unwrap();
    check_next_request_works(&mut h);

    assert!(stage02::guest_error::count() >= errors_before + 5);
}

#[test]
fn test_requests_processed_in_one_notification() {
    let mut h = Harness::new(&patterned(4), false);
    for i in 0..3u16 {
        let sector_header = HEADER + 0x20 * u64::from(i);
        h.mem.write_obj(GuestAddress(sector_header), VIRTIO_BLK_T_IN).unwrap();
        h.mem.write_obj(GuestAddress(sector_header + 8), u64::from(i)).unwrap();
        let data = DATA + 0x200 * u64::from(i);
        let status = STATUS + u64::from(i);
        let head = h
            .driver
            .add_chain(&h.mem, 3 * i, &[(sector_header, 16, false), (data, 512, true), (status, 1, true)])
            .unwrap();
        h.driver.publish(&h.mem, head).unwrap();
    }
    write32(&mut h.transport, QUEUE_NOTIFY_OFFSET, 0);
    assert_eq!(h.driver.used_idx(&h.mem).unwrap(), 3);
    assert_eq!(h.trigger.count(), 1, "one interrupt for the batch");
    assert_eq!(h.guest_bytes(DATA, 1536), patterned(3));
    assert_eq!(h.guest_bytes(STATUS, 3), [VIRTIO_BLK_S_OK; 3]);
}

#[test]
fn test_config_space_layout() {
    let h = Harness::new(&patterned(16), false);
    let mut transport = h.transport;
    let mut capacity = [0u8; 8];
    transport.read(CONFIG_SPACE_OFFSET + CONFIG_CAPACITY_OFFSET as u64, &mut capacity);
    assert_eq!(u64::from_le_bytes(capacity), 16);
    assert_eq!(read32(&mut transport, CONFIG_SPACE_OFFSET + CONFIG_SEG_MAX_OFFSET as u64), SEG_MAX);
    assert_eq!(read32(&mut transport, CONFIG_SPACE_OFFSET + CONFIG_BLK_SIZE_OFFSET as u64), 512);
    assert_eq!(read32(&mut transport, CONFIG_SPACE_OFFSET + CONFIG_SIZE_MAX_OFFSET as u64), 0);
    assert_eq!(read32(&mut transport, CONFIG_SPACE_OFFSET + CONFIG_GEOMETRY_OFFSET as u64), 0);
    // Byte by byte, as a driver may read it; and past the end.
    let mut byte = [0u8];
    transport.read(CONFIG_SPACE_OFFSET, &mut byte);
    assert_eq!(byte, [16]);
    assert_eq!(read32(&mut transport, CONFIG_SPACE_OFFSET + 0x100), 0);
    // Read-only.
    write32(&mut transport, CONFIG_SPACE_OFFSET, 0);
    assert_eq!(read32(&mut transport, CONFIG_SPACE_OFFSET), 16);
}

#[test]
fn test_offered_features() {
    let file = TempFile::with_contents(&patterned(1));
    let rw = VirtioBlock::new(open_disk(&file.0, false).unwrap());
    let expected = 1 << VIRTIO_F_VERSION_1
        | 1 << VIRTIO_RING_F_INDIRECT_DESC
        | 1 << VIRTIO_BLK_F_SEG_MAX
        | 1 << VIRTIO_BLK_F_BLK_SIZE
        | 1 << VIRTIO_BLK_F_FLUSH;
    assert_eq!(rw.device_features(), expected);
    let ro = VirtioBlock::new(open_disk(&file.0, true).unwrap());
    assert_eq!(ro.device_features(), expected | 1 << VIRTIO_BLK_F_RO);
}

#[test]
fn test_driver_ok_without_the_queue_needs_reset() {
    let file = TempFile::with_contents(&patterned(1));
    let mem = Arc::new(GuestMemory::new(&[(0, 0x4_0000)]).unwrap());
    let mut t =
        MmioTransport::new(VirtioBlock::new(open_disk(&file.0, false).unwrap()), mem, CountingTrigger::default())
            .unwrap();
    negotiate(&mut t, ALL_FEATURES);
    driver_ok(&mut t);
    assert_ne!(read32(&mut t, STATUS_OFFSET) & STATUS_DEVICE_NEEDS_RESET, 0);
}

#[test]
fn test_reset_then_the_device_works_again() {
    let mut h = Harness::new(&patterned(4), false);
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 2, &[(DATA, 512)], true).0, VIRTIO_BLK_S_OK);
    write32(&mut h.transport, STATUS_OFFSET, 0);
    assert_eq!(h.transport.driver_features(), 0);
    assert!(!h.transport.queues()[0].is_ready());
    assert_eq!(h.transport.device().driver_features, 0);
    // Up again, on fresh rings.
    negotiate(&mut h.transport, ALL_FEATURES);
    h.driver = DriverQueue::at(0x5000, 16);
    h.used_seen = 0;
    let d = &h.driver;
    assert_eq!(setup_queue(&mut h.transport, 0, 16, d.desc_table, d.avail_ring, d.used_ring), 1);
    driver_ok(&mut h.transport);
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 3, &[(DATA, 512)], true), (VIRTIO_BLK_S_OK, 513));
    assert_eq!(h.guest_bytes(DATA, 512), [3; 512]);
}

#[test]
fn test_open_disk_errors_name_the_path() {
    let missing = std::env::temp_dir().join("minivirt-no-such-disk.img");
    let error = open_disk(&missing, false).unwrap_err();
    assert!(matches!(error, VirtioBlockError::Image(DiskImageError::Open { .. })));
    assert!(error.to_string().contains("minivirt-no-such-disk.img"), "{error}");

    let dir = std::env::temp_dir();
    assert!(matches!(open_disk(&dir, true), Err(VirtioBlockError::Image(DiskImageError::NotAFile { .. }))));
    assert!(matches!(open_disk(&dir, false), Err(VirtioBlockError::Image(DiskImageError::Open { .. }))), "EISDIR");

    let empty = TempFile::with_contents(&[]);
    assert!(matches!(open_disk(&empty.0, false), Err(VirtioBlockError::Image(DiskImageError::Empty { .. }))));

    let odd = TempFile::with_contents(&[0; 1000]);
    let error = open_disk(&odd.0, false).unwrap_err();
    assert!(matches!(error, VirtioBlockError::Image(DiskImageError::PartialSector { size: 1000, .. })));
    assert!(error.to_string().contains(&odd.0.display().to_string()));

    let good = TempFile::with_contents(&patterned(3));
    let disk = open_disk(&good.0, true).unwrap();
    assert_eq!((disk.capacity(), disk.size(), disk.read_only()), (3, 1536, true));
}

#[test]
fn test_open_disk_without_permission() {
    use std::os::unix::fs::PermissionsExt;
    let file = TempFile::with_contents(&patterned(1));
    std::fs::set_permissions(&file.0, std::fs::Permissions::from_mode(0o400)).unwrap();
    match open_disk(&file.0, false) {
        Err(error @ VirtioBlockError::Image(DiskImageError::Open { .. })) => {
            assert!(error.to_string().contains("for reading and writing"), "{error}");
        }
        // Root (CI containers) may open anything: nothing to check then.
        Ok(_) => {}
        Err(other) => panic!("{other}"),
    }
    assert!(open_disk(&file.0, true).is_ok());
}

#[test]
fn test_host_io_errors_become_ioerr() {
    let mut h = Harness::new(&patterned(4), false);
    // The image shrinks behind our back: the read fails on the host.
    std::fs::OpenOptions::new().write(true).open(&h.file.0).unwrap().set_len(512).unwrap();
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 2, &[(DATA, 512)], true), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 0, &[(DATA, 512)], true), (VIRTIO_BLK_S_OK, 513));
}

#[test]
fn test_truncated_image_is_the_hosts_fault() {
    let file = TempFile::with_contents(&patterned(4));
    let disk = open_disk(&file.0, false).unwrap();
    std::fs::OpenOptions::new().write(true).open(&file.0).unwrap().set_len(512).unwrap();
    let mut sector = [0u8; 512];
    disk.read_at(&mut sector, 0).unwrap();
    assert_eq!(sector, [0; 512]);
    let error = disk.read_at(&mut sector, 1024).unwrap_err();
    assert!(matches!(error, DiskImageError::Truncated { end: 1536 }), "{error}");
    let error = VirtioBlockError::from(error);
    assert!(!error.is_guest_error());
    assert_eq!(error.status(), VIRTIO_BLK_S_IOERR);
}

#[test]
fn test_guest_errors_and_host_errors_are_told_apart() {
    let guest = [
        RequestError::NoStatusByte,
        RequestError::ShortHeader(8),
        RequestError::PartialSectorData(100),
        RequestError::OutOfRange { sector: 8, len: 512, capacity: 8 },
        RequestError::ReadOnly,
    ];
    for error in guest {
        let error = VirtioBlockError::from(error);
        assert!(error.is_guest_error(), "{error}");
        assert_eq!(error.status(), VIRTIO_BLK_S_IOERR, "{error}");
    }
    // §5.2.6: UNSUPP is for "a request unsupported by device", IOERR for "device or driver error".
    let unsupported = VirtioBlockError::from(RequestError::Unsupported(11));
    assert!(unsupported.is_guest_error());
    assert_eq!(unsupported.status(), VIRTIO_BLK_S_UNSUPP);

    let host = VirtioBlockError::from(DiskImageError::Io { offset: 512, source: std::io::Error::other("EIO") });
    assert!(!host.is_guest_error());
    assert_eq!(host.status(), VIRTIO_BLK_S_IOERR);
    assert_eq!(host.to_string(), "host I/O error on the disk image at byte 512: EIO");
}

/// The wiring the VMM does: the transport on the MMIO bus behind a mutex, an eventfd as the
/// interrupt, accesses by guest-physical address.
#[test]
fn test_wiring_on_the_mmio_bus() {
    use crate::virtio::mmio::{MMIO_MAGIC_VALUE, MMIO_WINDOW_SIZE};
    use stage02::bus::Bus;
    use std::sync::Mutex;
    use vmm_sys_util::eventfd::EventFd;

    const BASE: u64 = 0xd000_0000;
    let file = TempFile::with_contents(&patterned(4));
    let mem = Arc::new(GuestMemory::new(&[(0, 0x4_0000)]).unwrap());
    let irq = EventFd::new(0).unwrap();
    let transport = MmioTransport::new(
        VirtioBlock::new(open_disk(&file.0, false).unwrap()),
        Arc::clone(&mem),
        stage04::irq::EventFdTrigger::from(irq.try_clone().unwrap()),
    )
    .unwrap();
    let transport = Arc::new(Mutex::new(transport));
    let bus = Bus::new("mmio");
    bus.insert("virtio-blk", BASE, MMIO_WINDOW_SIZE, transport.clone()).unwrap();

    /// The bus as a `BusDevice` at `BASE`, so the driver helpers can talk to it.
    struct AtBase<'a>(&'a Bus);
    impl BusDevice for AtBase<'_> {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            self.0.read(BASE + offset, data).unwrap();
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.write(BASE + offset, data).unwrap();
        }
    }
    let mut guest = AtBase(&bus);
    assert_eq!(read32(&mut guest, 0), MMIO_MAGIC_VALUE);
    assert!(bus.read(BASE + MMIO_WINDOW_SIZE, &mut [0u8; 4]).is_none(), "the window is 4 KiB");
    assert_ne!(negotiate(&mut guest, ALL_FEATURES) & STATUS_FEATURES_OK, 0);
    let mut driver = DriverQueue::at(0x1000, 64);
    assert_eq!(setup_queue(&mut guest, 0, 64, driver.desc_table, driver.avail_ring, driver.used_ring), 1);
    driver_ok(&mut guest);
    mem.write_obj(GuestAddress(HEADER), VIRTIO_BLK_T_IN).unwrap();
    mem.write_obj(GuestAddress(HEADER + 8), 3u64).unwrap();
    let head = driver.add_chain(&mem, 0, &[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)]).unwrap();
    driver.publish(&mem, head).unwrap();
    write32(&mut guest, QUEUE_NOTIFY_OFFSET, 0);
    assert_eq!(irq.read().unwrap(), 1, "one interrupt through the eventfd");
    assert_eq!(take_interrupt(&mut guest), INTERRUPT_USED_BUFFER);
    assert_eq!(driver.used_elem(&mem, 0).unwrap(), (0, 513));
    // An event loop holding the same transport (the ioeventfd path) sees the same device.
    assert_eq!(transport.lock().unwrap().queues()[0].next_used(), 1);
}

/// A small deterministic PRNG (splitmix64): the fuzz loop below is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// An address that is usually inside or near the edges of the test RAM.
    fn addr(&mut self) -> u64 {
        match self.below(8) {
            0 => self.next(),
            1 => 0x4_0000 - self.below(0x40),
            2 => 0x10_0000 + self.below(0x1_0000 + 0x40),
            _ => self.below(0x4_0000),
        }
    }
    fn len(&mut self) -> u32 {
        match self.below(8) {
            0 => self.next() as u32,
            1 | 2 => 512 * self.below(8) as u32,
            3 => 16,
            4 => 1,
            _ => self.below(0x1200) as u32,
        }
    }
}

/// Fills the descriptor table and available ring with plausible values wired at random:
/// addresses mostly in RAM, any flags, any `next`, heads and `avail.idx` near the queue size.
fn random_descriptors(rng: &mut Rng, mem: &GuestMemory, desc: u64, avail: u64, size: u16) {
    for i in 0..size {
        let buffer = rng.addr();
        if rng.chance(30) && buffer < 0x4_0000 - 16 {
            write_random_header(rng, mem, buffer);
        }
        let (len, flags, next) = (rng.len(), rng.below(8) as u16, rng.below(u64::from(size) + 2) as u16);
        write_desc(mem, desc, i, buffer, len, flags, next).unwrap();
    }
    mem.write_obj(GuestAddress(avail), rng.below(2) as u16).unwrap();
    mem.write_obj(GuestAddress(avail + 2), rng.below(u64::from(size) + 3) as u16).unwrap();
    for i in 0..u64::from(size) {
        mem.write_obj(GuestAddress(avail + 4 + 2 * i), rng.below(u64::from(size) + 1) as u16).unwrap();
    }
}

/// A header with a plausible type and a sector near the disk's end.
fn write_random_header(rng: &mut Rng, mem: &GuestMemory, at: u64) -> u32 {
    let types = [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, 13];
    let request_type = types[rng.below(types.len() as u64) as usize];
    mem.write_obj(GuestAddress(at), request_type).unwrap();
    mem.write_obj(GuestAddress(at + 8), rng.below(70)).unwrap();
    request_type
}

/// Up to four requests laid out as a driver would (header, data, status; direct or through
/// an indirect table), one in five damaged in one field, published from ring entry 0.
fn driver_like_requests(rng: &mut Rng, mem: &GuestMemory, desc: u64, avail: u64, size: u16) {
    let mut free = 0u16;
    let mut published = 0u16;
    for _ in 0..=rng.below(4) {
        let header = rng.below(0x4_0000 - 16);
        let request_type = write_random_header(rng, mem, header);
        let device_writes = matches!(request_type, VIRTIO_BLK_T_IN | VIRTIO_BLK_T_GET_ID);
        let mut buffers = vec![(header, 16u32, false)];
        for _ in 0..rng.below(3) {
            let len = if rng.chance(90) { 512 * (1 + rng.below(4) as u32) } else { rng.len() };
            buffers.push((rng.addr(), len, device_writes));
        }
        buffers.push((rng.below(0x4_0000), 1, true));
        if rng.chance(20) {
            let victim = rng.below(buffers.len() as u64) as usize;
            match rng.below(3) {
                0 => buffers[victim].0 = rng.addr(),
                1 => buffers[victim].1 = rng.len(),
                _ => buffers[victim].2 = !buffers[victim].2,
            }
        }
        let flags = |i: usize, write: bool| {
            let next = if i + 1 < buffers.len() { VIRTQ_DESC_F_NEXT } else { 0 };
            next | if write { VIRTQ_DESC_F_WRITE } else { 0 }
        };
        let head = free;
        if rng.chance(30) {
            let table = rng.below(0x3_f000) & !15;
            for (i, &(addr, len, write)) in buffers.iter().enumerate() {
                write_desc(mem, table, i as u16, addr, len, flags(i, write), i as u16 + 1).unwrap();
            }
            if free >= size {
                break;
            }
            write_desc(mem, desc, free, table, 16 * buffers.len() as u32, VIRTQ_DESC_F_INDIRECT, 0).unwrap();
            free += 1;
        } else {
            if usize::from(free) + buffers.len() > usize::from(size) {
                break;
            }
            for (i, &(addr, len, write)) in buffers.iter().enumerate() {
                write_desc(mem, desc, free, addr, len, flags(i, write), free + 1).unwrap();
                free += 1;
            }
        }
        if rng.chance(5) {
            // A wild `next` somewhere in the chain.
            let victim = head + rng.below(u64::from(free - head)) as u16;
            mem.write_obj(GuestAddress(desc + 16 * u64::from(victim) + 14), rng.below(u64::from(size) + 1) as u16)
                .unwrap();
        }
        mem.write_obj(GuestAddress(avail + 4 + 2 * u64::from(published)), head).unwrap();
        published += 1;
    }
    mem.write_obj(GuestAddress(avail), rng.below(2) as u16).unwrap();
    mem.write_obj(GuestAddress(avail + 2), published).unwrap();
}

/// Garbage everywhere the guest controls: RAM, descriptors, rings and registers. The device
/// must never panic, hang or touch the file beyond what the request rules allow, and must
/// still serve a valid request afterwards.
#[test]
fn test_fuzz_arbitrary_guest_memory_and_registers() {
    let mut rng = Rng(0x6d69_6e69_7669_7274);
    let errors_before = stage02::guest_error::count();
    for read_only in [true, false] {
        let contents = patterned(64);
        let file = TempFile::with_contents(&contents);
        let mem = Arc::new(GuestMemory::new(&[(0, 0x4_0000), (0x10_0000, 0x1_0000)]).unwrap());
        let disk = open_disk(&file.0, read_only).unwrap();
        let mut t = MmioTransport::new(VirtioBlock::new(disk), Arc::clone(&mem), CountingTrigger::default()).unwrap();
        let mut noise = vec![0u8; 0x4_0000];
        for round in 0..1500 {
            // Fresh garbage in all of RAM.
            noise.iter_mut().for_each(|b| *b = rng.next() as u8);
            mem.write(GuestAddress(0), &noise).unwrap();
            // Queue areas: usually valid, sometimes anywhere.
            let size = if rng.chance(80) { 1u32 << rng.below(9) } else { rng.next() as u32 };
            let mut area = |align: u64| if rng.chance(85) { rng.below(0x3_0000) & !(align - 1) } else { rng.addr() };
            let (desc, avail, used) = (area(16), area(2), area(4));
            let fits =
                size <= 256 && desc + 16 * u64::from(size) <= 0x4_0000 && avail + 6 + 2 * u64::from(size) <= 0x4_0000;
            let driver_like = fits && rng.chance(50);
            if driver_like {
                // Requests as a driver would make them, some of them damaged.
                driver_like_requests(&mut rng, &mem, desc, avail, size as u16);
            } else if fits && rng.chance(90) {
                // Plausible descriptors and ring entries, wired at random.
                random_descriptors(&mut rng, &mem, desc, avail, size as u16);
            }
            // Drive the registers: mostly a proper bring-up, sometimes random values.
            if driver_like || rng.chance(70) {
                let features = if driver_like || rng.chance(90) { ALL_FEATURES } else { rng.next() };
                negotiate(&mut t, features);
                let queue = if driver_like || rng.chance(90) { 0 } else { rng.next() as u32 };
                write32(&mut t, crate::virtio::mmio::QUEUE_SEL_OFFSET, queue);
                write32(&mut t, crate::virtio::mmio::QUEUE_NUM_OFFSET, size);
                for (low, value) in [(0x80u64, desc), (0x90, avail), (0xa0, used)] {
                    write32(&mut t, low, value as u32);
                    write32(&mut t, low + 4, (value >> 32) as u32);
                }
                let ready = if driver_like || rng.chance(95) { 1 } else { rng.next() as u32 };
                write32(&mut t, crate::virtio::mmio::QUEUE_READY_OFFSET, ready);
                driver_ok(&mut t);
            }
            for _ in 0..rng.below(4) {
                let offset = rng.below(0x120) & !if rng.chance(80) { 3 } else { 0 };
                let len = [1, 2, 4, 8][rng.below(4) as usize];
                let value = rng.next().to_le_bytes();
                if rng.chance(50) {
                    t.write(offset, &value[..len]);
                } else {
                    t.read(offset, &mut [0u8; 8][..len]);
                }
            }
            for _ in 0..=rng.below(3) {
                let queue = if rng.chance(90) { 0 } else { rng.next() as u32 };
                let used_before = t.queues()[0].next_used();
                write32(&mut t, QUEUE_NOTIFY_OFFSET, queue);
                let queue0 = &t.queues()[0];
                // The used element written last names a head inside the queue. (Earlier
                // ones may have been overwritten since: nothing stops the guest from
                // making a data buffer of its own used ring.)
                let added = queue0.next_used().wrapping_sub(used_before);
                assert!(added <= queue0.size(), "round {round}: {added} used in one notification");
                if added > 0 {
                    let slot = u64::from(queue0.next_used().wrapping_sub(1) % queue0.size());
                    let id: u32 = mem.read_obj(GuestAddress(queue0.used_ring().0 + 4 + 8 * slot)).unwrap();
                    assert!(id < u32::from(queue0.size()), "round {round}: used id {id}");
                }
            }
            assert_eq!(t.device_status() & !0xcf, 0, "round {round}: status {:#x}", t.device_status());
            let file_len = std::fs::metadata(&file.0).unwrap().len();
            assert_eq!(file_len, contents.len() as u64, "round {round}: the image never grows or shrinks");
        }
        if read_only {
            assert_eq!(file.contents(), contents, "a read-only image is never written");
        }
        // After all that, a clean bring-up and a valid request work.
        let mut driver = DriverQueue::at(0x1000, 16);
        assert_ne!(negotiate(&mut t, ALL_FEATURES) & STATUS_FEATURES_OK, 0);
        assert_eq!(setup_queue(&mut t, 0, 16, driver.desc_table, driver.avail_ring, driver.used_ring), 1);
        driver_ok(&mut t);
        mem.write_obj(GuestAddress(HEADER), VIRTIO_BLK_T_IN).unwrap();
        mem.write_obj(GuestAddress(HEADER + 8), 9u64).unwrap();
        let head = driver.add_chain(&mem, 0, &[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)]).unwrap();
        driver.publish(&mem, head).unwrap();
        write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
        assert_eq!(driver.used_elem(&mem, 0).unwrap(), (0, 513));
        assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), VIRTIO_BLK_S_OK);
        let mut data = [0u8; 512];
        mem.read(GuestAddress(DATA), &mut data).unwrap();
        // Sector 9 as it is now: random writes may have changed it.
        assert_eq!(&data[..], &file.contents()[9 * 512..10 * 512]);
    }
    assert!(stage02::guest_error::count() > errors_before, "the garbage was reported");
}
