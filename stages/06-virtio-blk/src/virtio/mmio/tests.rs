//! Unit tests of the virtio-mmio transport, with a small echo device behind it: identification,
//! the status handshake and feature negotiation, queue setup, notifications and interrupts, reset.

use super::*;
use crate::virtio::queue::VIRTIO_RING_F_INDIRECT_DESC;
use crate::virtio::test_utils::DriverQueue;
use crate::virtio::test_utils::*;
use stage04::irq::testing::CountingTrigger;

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
    let head = driver.add_chain(&mem, 0, &[(0x8000, 16, false), (0x9000, 100, true)]).unwrap();
    driver.publish(&mem, head).unwrap();
    write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
    assert_eq!(driver.used_idx(&mem).unwrap(), 1);
    assert_eq!(driver.used_elem(&mem, 0).unwrap(), (0, 100));
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
    driver.set_avail_flags(&mem, crate::virtio::queue::VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
    driver.add_chain(&mem, 0, &[(0x9000, 1, true)]).unwrap();
    driver.publish(&mem, 0).unwrap();
    t.handle_notify(0);
    assert_eq!(driver.used_idx(&mem).unwrap(), 1, "the buffer is used");
    assert_eq!((trigger.count(), t.interrupt_status()), (0, 0), "but not announced");
}

#[test]
fn test_notify_is_ignored_before_driver_ok_and_for_bad_queues() {
    let (mut t, mem, trigger) = transport();
    negotiate(&mut t, VERSION_1);
    let mut driver = DriverQueue::at(0x1000, 16);
    setup_queue(&mut t, 0, 16, driver.desc_table, driver.avail_ring, driver.used_ring);
    driver.add_chain(&mem, 0, &[(0x9000, 1, true)]).unwrap();
    driver.publish(&mem, 0).unwrap();
    write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
    assert_eq!((driver.used_idx(&mem).unwrap(), trigger.count()), (0, 0), "no buffer used before DRIVER_OK");
    driver_ok(&mut t);
    for queue in [1, 2, 0x1_0000] {
        write32(&mut t, QUEUE_NOTIFY_OFFSET, queue);
    }
    assert_eq!(driver.used_idx(&mem).unwrap(), 0, "queue 1 is not ready, 2 does not exist");
    write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
    assert_eq!(driver.used_idx(&mem).unwrap(), 1);
}

#[test]
fn test_malformed_chain_is_returned_and_the_queue_goes_on() {
    let (mut t, mem, trigger, mut driver) = running();
    driver.set_desc(&mem, 0, 0x9000, 16, crate::virtio::queue::VIRTQ_DESC_F_NEXT, 0).unwrap();
    driver.publish(&mem, 0).unwrap();
    driver.add_chain(&mem, 1, &[(0x9000, 7, true)]).unwrap();
    driver.publish(&mem, 1).unwrap();
    t.handle_notify(0);
    assert_eq!(driver.used_idx(&mem).unwrap(), 2);
    assert_eq!(driver.used_elem(&mem, 0).unwrap(), (0, 0), "the looping chain comes back unused");
    assert_eq!(driver.used_elem(&mem, 1).unwrap(), (1, 7));
    assert_eq!(trigger.count(), 1);
    assert_eq!(t.device_status() & STATUS_DEVICE_NEEDS_RESET, 0);
}

#[test]
fn test_device_failure_sets_needs_reset_and_config_interrupt() {
    let (mut t, mem, trigger, mut driver) = running();
    t.device_mut().broken = true;
    driver.add_chain(&mem, 0, &[(0x9000, 1, true)]).unwrap();
    driver.publish(&mem, 0).unwrap();
    write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
    assert_ne!(read32(&mut t, STATUS_OFFSET) & STATUS_DEVICE_NEEDS_RESET, 0);
    assert_eq!(take_interrupt(&mut t), INTERRUPT_CONFIG_CHANGE);
    assert_eq!(trigger.count(), 1);
    // The device stays stopped, even if it could work again, until the driver resets it.
    t.device_mut().broken = false;
    write32(&mut t, QUEUE_NOTIFY_OFFSET, 0);
    assert_eq!(driver.used_idx(&mem).unwrap(), 0);
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
    assert_eq!(status & (STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET), STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET);
    assert_eq!((take_interrupt(&mut t), trigger.count()), (INTERRUPT_CONFIG_CHANGE, 1));
}

#[test]
fn test_reset_clears_queues_features_and_interrupts() {
    let (mut t, mem, _, mut driver) = running();
    driver.add_chain(&mem, 0, &[(0x9000, 1, true)]).unwrap();
    driver.publish(&mem, 0).unwrap();
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
    driver.add_chain(&mem, 0, &[(0x9000, 3, true)]).unwrap();
    driver.publish(&mem, 0).unwrap();
    t.handle_notify(0);
    assert_eq!(driver.used_elem(&mem, 0).unwrap(), (0, 3));
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
    let new = |size, features| MmioTransport::new(Bad(size, features), Arc::clone(&mem), CountingTrigger::default());
    for size in [0, 3, 512] {
        assert!(matches!(new(size, VERSION_1), Err(MmioError::BadQueueMaxSize { index: 0, .. })));
    }
    assert!(matches!(new(256, 0), Err(MmioError::NoVersion1)));
    assert!(new(256, VERSION_1).is_ok());
}
