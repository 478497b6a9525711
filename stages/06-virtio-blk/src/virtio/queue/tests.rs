//! Unit tests of the split virtqueue: enabling it, popping chains (and refusing every kind of
//! malformed one), returning them, and the buffer cursor.

use super::*;
use crate::virtio::test_utils::{write_desc, DriverQueue};

const INDIRECT: u64 = 1 << VIRTIO_RING_F_INDIRECT_DESC;
/// One of the area address setters.
type Setter = fn(&mut Queue, GuestAddress);
/// Where test buffers go.
const DATA: u64 = 0x1_0000;

/// 128 KiB of RAM at 0, and 64 KiB more at 1 MiB (with a hole between).
fn memory() -> GuestMemory {
    GuestMemory::new(&[(0, 0x2_0000), (0x10_0000, 0x1_0000)]).unwrap()
}

/// A driver queue of `size` entries at 0x1000 and its enabled device side.
fn setup(mem: &GuestMemory, size: u16, features: u64) -> (DriverQueue, Queue) {
    let driver = DriverQueue::at(0x1000, size);
    let mut queue = driver.device_queue(MAX_QUEUE_SIZE);
    queue.enable(mem, features).unwrap();
    (driver, queue)
}

fn pop_err(queue: &mut Queue, mem: &GuestMemory) -> QueueError {
    match queue.pop(mem) {
        Some(Err(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn test_enable_checks_size() {
    let mem = memory();
    let driver = DriverQueue::at(0x1000, 16);
    for size in [0, 3, 100, 512] {
        let mut queue = driver.device_queue(256);
        queue.set_size(size);
        assert!(matches!(queue.enable(&mem, 0), Err(QueueError::BadSize { .. })), "size {size}");
        assert!(!queue.is_ready());
    }
    let mut queue = driver.device_queue(8);
    queue.set_size(16);
    assert!(matches!(queue.enable(&mem, 0), Err(QueueError::BadSize { size: 16, max: 8 })));
    queue.set_size(8);
    queue.enable(&mem, 0).unwrap();
    assert!(queue.is_ready());
}

#[test]
fn test_enable_checks_alignment() {
    let mem = memory();
    let driver = DriverQueue::at(0x1000, 16);
    let cases: [(Setter, u64, QueueArea); 3] = [
        (Queue::set_desc_table, 0x1008, QueueArea::DescriptorTable),
        (Queue::set_avail_ring, 0x2001, QueueArea::AvailableRing),
        (Queue::set_used_ring, 0x3002, QueueArea::UsedRing),
    ];
    for (set, addr, expected) in cases {
        let mut queue = driver.device_queue(256);
        set(&mut queue, GuestAddress(addr));
        match queue.enable(&mem, 0) {
            Err(QueueError::Misaligned { area, .. }) => assert_eq!(area, expected),
            other => panic!("{expected}: {other:?}"),
        }
    }
}

#[test]
fn test_enable_checks_areas_are_in_ram() {
    let mem = memory();
    let driver = DriverQueue::at(0x1000, 256);
    // 256 descriptors need 4 KiB: at 0x1f010 the table runs past the end of region 0.
    let cases: [(Setter, u64); 4] = [
        (Queue::set_desc_table, 0x1_f010),
        (Queue::set_avail_ring, 0x5_0000),
        (Queue::set_used_ring, 0x1_fffc),
        (Queue::set_used_ring, u64::MAX - 3),
    ];
    for (set, addr) in cases {
        let mut queue = driver.device_queue(256);
        set(&mut queue, GuestAddress(addr));
        assert!(matches!(queue.enable(&mem, 0), Err(QueueError::AreaOutsideRam { .. })), "{addr:#x}");
    }
}

#[test]
fn test_setters_are_ignored_while_ready() {
    let mem = memory();
    let (_, mut queue) = setup(&mem, 16, 0);
    queue.set_size(4);
    queue.set_desc_table(GuestAddress(0x8000));
    assert_eq!((queue.size(), queue.desc_table()), (16, GuestAddress(0x1000)));
    queue.disable();
    queue.set_size(4);
    assert_eq!(queue.size(), 4);
}

#[test]
fn test_pop_returns_chains_in_order_then_none() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 16, 0);
    assert!(queue.pop(&mem).is_none(), "nothing published yet");
    let a =
        driver.add_chain(&mem, 0, &[(DATA, 16, false), (DATA + 0x100, 512, true), (DATA + 0x400, 1, true)]).unwrap();
    let b = driver.add_chain(&mem, 5, &[(0x10_0000, 8, false)]).unwrap();
    driver.publish(&mem, a).unwrap();
    driver.publish(&mem, b).unwrap();
    assert_eq!(queue.pending(&mem).unwrap(), 2);

    let chain = queue.pop(&mem).unwrap().unwrap();
    assert_eq!(chain.head(), 0);
    assert_eq!(chain.descriptors().len(), 3);
    assert_eq!(chain.readable(), &[Descriptor { addr: GuestAddress(DATA), len: 16, write_only: false }]);
    assert_eq!(chain.writable().len(), 2);
    assert_eq!(chain.writable()[1], Descriptor { addr: GuestAddress(DATA + 0x400), len: 1, write_only: true });
    let chain = queue.pop(&mem).unwrap().unwrap();
    assert_eq!(chain.head(), 5);
    assert_eq!(chain.into_iter().map(|d| d.len).collect::<Vec<_>>(), [8]);
    assert!(queue.pop(&mem).is_none());
    assert_eq!(queue.next_avail(), 2);
}

#[test]
fn test_avail_idx_wraps_around() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 4, 0);
    driver.add_chain(&mem, 0, &[(DATA, 4, true)]).unwrap();
    // Drive both indices to just below the 16-bit wrap.
    for _ in 0..65534u32 {
        driver.publish(&mem, 0).unwrap();
        let chain = queue.pop(&mem).unwrap().unwrap();
        queue.add_used(&mem, chain.head(), 4).unwrap();
    }
    assert_eq!(queue.next_avail(), 65534);
    for _ in 0..4 {
        driver.publish(&mem, 0).unwrap();
    }
    assert_eq!(driver.avail_idx, 2, "avail.idx wrapped");
    assert_eq!(queue.pending(&mem).unwrap(), 4);
    for _ in 0..4 {
        let chain = queue.pop(&mem).unwrap().unwrap();
        queue.add_used(&mem, chain.head(), 4).unwrap();
    }
    assert!(queue.pop(&mem).is_none());
    assert_eq!(driver.used_idx(&mem).unwrap(), 2);
}

#[test]
fn test_avail_idx_jump_is_refused_and_nothing_consumed() {
    let mem = memory();
    let (driver, mut queue) = setup(&mem, 8, 0);
    driver.add_chain(&mem, 0, &[(DATA, 4, true)]).unwrap();
    driver.set_avail_idx(&mem, 9).unwrap();
    let error = pop_err(&mut queue, &mem);
    assert!(matches!(error, QueueError::AvailIdxJump { next_avail: 0, avail_idx: 9, size: 8 }));
    assert!(error.stops_queue() && error.head().is_none());
    assert_eq!(queue.next_avail(), 0);
    // A driver going backwards is the same mistake seen modulo 2^16.
    driver.set_avail_idx(&mem, 0xffff).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::AvailIdxJump { .. }));
    // Once avail.idx makes sense again, the queue works.
    driver.set_avail_idx(&mem, 1).unwrap();
    assert_eq!(queue.pop(&mem).unwrap().unwrap().head(), 0);
}

#[test]
fn test_head_out_of_range_is_consumed() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 8, 0);
    driver.publish(&mem, 8).unwrap();
    let error = pop_err(&mut queue, &mem);
    assert!(matches!(error, QueueError::HeadOutOfRange { head: 8, size: 8 }));
    assert!(!error.stops_queue() && error.head().is_none());
    assert!(queue.pop(&mem).is_none(), "the bad entry was consumed");
}

#[test]
fn test_looping_chain_is_refused() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 8, 0);
    driver.set_desc(&mem, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1).unwrap();
    driver.set_desc(&mem, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0).unwrap();
    driver.publish(&mem, 0).unwrap();
    let error = pop_err(&mut queue, &mem);
    assert!(matches!(error, QueueError::DescriptorLoop { head: 0, index: 0 }));
    assert_eq!(error.head(), Some(0));
    // A descriptor pointing at itself.
    driver.set_desc(&mem, 3, DATA, 16, VIRTQ_DESC_F_NEXT, 3).unwrap();
    driver.publish(&mem, 3).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::DescriptorLoop { head: 3, index: 3 }));
}

#[test]
fn test_chain_longer_than_the_queue_is_refused() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 4, 0);
    // All four descriptors, and the last one goes on to the first: five would be needed.
    for i in 0..4u16 {
        driver.set_desc(&mem, i, DATA, 16, VIRTQ_DESC_F_NEXT, (i + 1) % 4).unwrap();
    }
    driver.publish(&mem, 0).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::DescriptorLoop { head: 0, index: 0 }));
    // Next index beyond the table.
    driver.set_desc(&mem, 3, DATA, 16, VIRTQ_DESC_F_NEXT, 4).unwrap();
    driver.publish(&mem, 3).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::NextOutOfRange { next: 4, table_len: 4, .. }));
}

#[test]
fn test_chain_longer_than_max_size_through_indirect_is_refused() {
    let mem = memory();
    let driver = DriverQueue::at(0x1000, 8);
    let mut queue = driver.device_queue(8);
    queue.enable(&mem, INDIRECT).unwrap();
    let mut driver = driver;
    // 4 direct descriptors then an indirect table of 5: 9 buffers, more than QueueNumMax 8.
    let table = 0x8000;
    for i in 0..4u16 {
        driver.set_desc(&mem, i, DATA, 16, VIRTQ_DESC_F_NEXT, i + 1).unwrap();
    }
    driver.set_desc(&mem, 4, table, 5 * 16, VIRTQ_DESC_F_INDIRECT, 0).unwrap();
    for i in 0..5u16 {
        let flags = if i < 4 { VIRTQ_DESC_F_NEXT } else { 0 };
        write_desc(&mem, table, i, DATA, 16, flags, i + 1).unwrap();
    }
    driver.publish(&mem, 0).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::ChainTooLong { head: 0, limit: 8 }));
}

#[test]
fn test_buffers_outside_ram_are_refused() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 8, 0);
    let cases = [
        (0x2_0000, 1),      // just past region 0
        (0x1_fff0, 0x20),   // straddles the end of region 0
        (0x8_0000, 0),      // in the hole, even empty
        (0x10_fff0, 0x20),  // straddles the end of region 1
        (u64::MAX - 3, 16), // wraps around
    ];
    for (addr, len) in cases {
        driver.set_desc(&mem, 0, addr, len, 0, 0).unwrap();
        driver.publish(&mem, 0).unwrap();
        let error = pop_err(&mut queue, &mem);
        assert!(matches!(error, QueueError::BufferOutsideRam { head: 0, .. }), "{addr:#x}+{len:#x}: {error}");
    }
    // The last byte of RAM is fine.
    driver.set_desc(&mem, 0, 0x10_ffff, 1, 0, 0).unwrap();
    driver.publish(&mem, 0).unwrap();
    assert!(queue.pop(&mem).unwrap().is_ok());
}

#[test]
fn test_readable_after_writable_is_refused() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 8, 0);
    let head = driver.add_chain(&mem, 0, &[(DATA, 1, true), (DATA, 16, false)]).unwrap();
    driver.publish(&mem, head).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::ReadableAfterWritable { head: 0 }));
}

#[test]
fn test_chain_larger_than_4_gib_is_refused() {
    // Map 3 GiB to describe 4 GiB of buffers: never touched, so it costs no host memory.
    let mem = GuestMemory::new(&[(0, 0x1_0000), (0x1_0000_0000, 0xc000_0000)]).unwrap();
    let (mut driver, mut queue) = setup(&mem, 8, 0);
    let big = 0x1_0000_0000;
    driver.add_chain(&mem, 0, &[(big, 0xc000_0000, false), (big, 0x4000_0000, false)]).unwrap();
    driver.publish(&mem, 0).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::ChainTooLarge { head: 0 }));
}

#[test]
fn test_indirect_table_is_followed() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 8, INDIRECT);
    let table = 0x8000;
    write_desc(&mem, table, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 2).unwrap();
    write_desc(&mem, table, 2, DATA + 0x200, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1).unwrap();
    write_desc(&mem, table, 1, DATA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0).unwrap();
    // The WRITE flag on the indirect descriptor itself must be ignored.
    driver.set_desc(&mem, 3, table, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0).unwrap();
    driver.publish(&mem, 3).unwrap();
    let chain = queue.pop(&mem).unwrap().unwrap();
    assert_eq!(chain.head(), 3);
    let lens: Vec<_> = chain.into_iter().map(|d| (d.len, d.write_only)).collect();
    assert_eq!(lens, [(16, false), (512, true), (1, true)]);
}

#[test]
fn test_direct_descriptors_may_precede_an_indirect_one() {
    // §2.7.5.3.2: "The device MUST handle the case of zero or more normal chained
    // descriptors followed by a single descriptor with flags & VIRTQ_DESC_F_INDIRECT."
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 8, INDIRECT);
    let table = 0x8000;
    driver.set_desc(&mem, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1).unwrap();
    driver.set_desc(&mem, 1, table, 32, VIRTQ_DESC_F_INDIRECT, 0).unwrap();
    write_desc(&mem, table, 0, DATA + 0x100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1).unwrap();
    write_desc(&mem, table, 1, DATA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0).unwrap();
    driver.publish(&mem, 0).unwrap();
    let chain = queue.pop(&mem).unwrap().unwrap();
    assert_eq!(chain.readable().len(), 1);
    assert_eq!(chain.writable().len(), 2);
}

#[test]
fn test_indirect_mistakes_are_refused() {
    let mem = memory();
    let table = 0x8000;
    let check = |features: u64, len: u32, flags: u16, inner_flags: u16, expected: fn(&QueueError) -> bool| {
        let (mut driver, mut queue) = setup(&mem, 8, features);
        write_desc(&mem, table, 0, DATA, 16, inner_flags, 0).unwrap();
        driver.set_desc(&mem, 0, table, len, flags, 1).unwrap();
        driver.set_desc(&mem, 1, DATA, 16, 0, 0).unwrap();
        driver.publish(&mem, 0).unwrap();
        let error = pop_err(&mut queue, &mem);
        assert!(expected(&error), "{error}");
        assert_eq!(error.head(), Some(0));
    };
    let indirect = VIRTQ_DESC_F_INDIRECT;
    check(0, 16, indirect, 0, |e| matches!(e, QueueError::IndirectNotNegotiated { .. }));
    check(INDIRECT, 16, indirect, indirect, |e| matches!(e, QueueError::NestedIndirect { .. }));
    check(INDIRECT, 16, indirect | VIRTQ_DESC_F_NEXT, 0, |e| matches!(e, QueueError::IndirectWithNext { .. }));
    for len in [0, 15, 24, 257 * 16] {
        check(INDIRECT, len, indirect, 0, |e| matches!(e, QueueError::BadIndirectLength { .. }));
    }
    let (mut driver, mut queue) = setup(&mem, 8, INDIRECT);
    driver.set_desc(&mem, 0, 0x1_ff00, 0x200, indirect, 0).unwrap();
    driver.publish(&mem, 0).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::IndirectTableOutsideRam { .. }));
}

#[test]
fn test_indirect_loops_and_bad_next_are_refused() {
    let mem = memory();
    let table = 0x8000;
    let (mut driver, mut queue) = setup(&mem, 8, INDIRECT);
    write_desc(&mem, table, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1).unwrap();
    write_desc(&mem, table, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0).unwrap();
    driver.set_desc(&mem, 2, table, 32, VIRTQ_DESC_F_INDIRECT, 0).unwrap();
    driver.publish(&mem, 2).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::DescriptorLoop { head: 2, index: 0 }));
    write_desc(&mem, table, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 2).unwrap();
    driver.publish(&mem, 2).unwrap();
    assert!(matches!(pop_err(&mut queue, &mem), QueueError::NextOutOfRange { next: 2, table_len: 2, .. }));
}

#[test]
fn test_add_used_publishes_element_then_index() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 4, 0);
    driver.add_chain(&mem, 2, &[(DATA, 8, true)]).unwrap();
    for n in 0..6u16 {
        driver.publish(&mem, 2).unwrap();
        let chain = queue.pop(&mem).unwrap().unwrap();
        queue.add_used(&mem, chain.head(), 100 + u32::from(n)).unwrap();
        assert_eq!(driver.used_idx(&mem).unwrap(), n + 1);
        assert_eq!(driver.used_elem(&mem, n).unwrap(), (2, 100 + u32::from(n)), "slot {}", n % 4);
    }
    assert!(matches!(queue.add_used(&mem, 4, 0), Err(QueueError::HeadOutOfRange { head: 4, size: 4 })));
    queue.disable();
    assert!(matches!(queue.add_used(&mem, 0, 0), Err(QueueError::NotReady)));
    assert!(queue.pop(&mem).is_none(), "a disabled queue is not read");
}

#[test]
fn test_needs_notification_follows_no_interrupt_flag() {
    let mem = memory();
    let (driver, queue) = setup(&mem, 4, 0);
    assert!(queue.needs_notification(&mem).unwrap());
    driver.set_avail_flags(&mem, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
    assert!(!queue.needs_notification(&mem).unwrap());
}

#[test]
fn test_reset_forgets_everything() {
    let mem = memory();
    let (mut driver, mut queue) = setup(&mem, 4, INDIRECT);
    driver.add_chain(&mem, 0, &[(DATA, 8, true)]).unwrap();
    driver.publish(&mem, 0).unwrap();
    queue.pop(&mem).unwrap().unwrap();
    queue.reset();
    assert!(!queue.is_ready());
    assert_eq!((queue.size(), queue.next_avail(), queue.next_used()), (MAX_QUEUE_SIZE, 0, 0));
    assert_eq!(queue.desc_table(), GuestAddress(0));
}

#[test]
fn test_buffer_cursor_spans_buffers_and_stops_at_limit() {
    let mem = memory();
    let buffers = [
        Descriptor { addr: GuestAddress(DATA), len: 3, write_only: true },
        Descriptor { addr: GuestAddress(DATA + 0x100), len: 0, write_only: true },
        Descriptor { addr: GuestAddress(0x10_0000), len: 4, write_only: true },
    ];
    let mut writer = BufferCursor::new(&mem, &buffers).limit(6);
    assert_eq!(writer.remaining(), 6);
    assert_eq!(writer.write(b"abcdefgh").unwrap(), 6);
    assert_eq!(writer.write(b"x").unwrap(), 0);
    assert_eq!(writer.bytes_done(), 6);
    let mut got = [0u8; 3];
    mem.read(GuestAddress(DATA), &mut got).unwrap();
    assert_eq!(&got, b"abc");
    let mut got = [0u8; 4];
    mem.read(GuestAddress(0x10_0000), &mut got).unwrap();
    assert_eq!(&got, b"def\0");

    let mut reader = BufferCursor::new(&mem, &buffers);
    let mut all = [0u8; 10];
    assert_eq!(reader.read(&mut all).unwrap(), 7);
    assert_eq!(&all[..7], b"abcdef\0");
}
