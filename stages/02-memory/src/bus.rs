//! Buses: which device answers an access at a given port or guest-physical address.
//!
//! x86 has two address spaces for devices: 64 Ki I/O ports (`in`/`out`) and memory-mapped I/O
//! (ordinary loads and stores to addresses that are not RAM). KVM reports an access to either
//! as a vCPU exit; the VMM looks up the device on the matching [`Bus`] and hands it the access
//! as an *offset* into the device's range, so the device never knows where it was placed.
//!
//! # Resources
//! - Firecracker `src/vmm/src/vstate/bus.rs`, which this follows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// A device model as the bus sees it: reads and writes at an offset within its range.
///
/// `data.len()` is the access size (1, 2, 4 or 8 bytes). Values are little-endian. A device
/// must answer every access without panicking: the guest chooses the offset and the size.
pub trait BusDevice: Send {
    /// The guest reads `data.len()` bytes at `offset`; fill `data`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device shared between the bus and whoever else drives it (an event loop, a test).
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Errors from registering devices.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range overlaps one already taken.
    #[error("{bus} range {base:#x}+{len:#x} for {name} overlaps {other}")]
    Overlap {
        /// Which bus.
        bus: &'static str,
        /// The device being added.
        name: &'static str,
        /// Its base.
        base: u64,
        /// Its length.
        len: u64,
        /// The device already there.
        other: &'static str,
    },
    /// An empty range, or one that wraps around the address space.
    #[error("{bus} range {base:#x}+{len:#x} for {name} is empty or wraps around")]
    BadRange {
        /// Which bus.
        bus: &'static str,
        /// The device being added.
        name: &'static str,
        /// Its base.
        base: u64,
        /// Its length.
        len: u64,
    },
}

struct BusRange {
    len: u64,
    name: &'static str,
    device: SharedDevice,
}

/// Where an access landed: the device's name and the offset within its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusHit {
    /// The device's name, as registered.
    pub name: &'static str,
    /// Offset of the access within the device's range.
    pub offset: u64,
}

/// One range of a bus, as [`Bus::ranges`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusRangeInfo {
    /// The device's name.
    pub name: &'static str,
    /// The first address (or port).
    pub base: u64,
    /// How many addresses.
    pub len: u64,
}

/// An address space of devices: disjoint ranges, each owned by one device.
///
/// Ranges can be added and removed while vCPUs run (stage 7 moves PCI BARs), so the map is
/// behind a read-write lock; lookups take the read side only.
pub struct Bus {
    name: &'static str,
    ranges: RwLock<BTreeMap<u64, BusRange>>,
}

impl Bus {
    /// An empty bus; `name` ("pio", "mmio") appears in messages.
    pub fn new(name: &'static str) -> Self {
        Bus { name, ranges: RwLock::new(BTreeMap::new()) }
    }

    // qa:begin stage2-bus-insert
    /// Gives `[base, base + len)` to `device`.
    ///
    /// # Errors
    /// [`BusError::Overlap`] if any address of the range is taken, [`BusError::BadRange`] if it
    /// is empty or wraps.
    pub fn insert(&self, name: &'static str, base: u64, len: u64, device: SharedDevice) -> Result<(), BusError> {
        let bus = self.name;
        let end = base.checked_add(len).filter(|_| len > 0).ok_or(BusError::BadRange { bus, name, base, len })?;
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        // Only two neighbours can overlap: the last range starting below `end`, and that is enough.
        if let Some((&other_base, other)) = ranges.range(..end).next_back() {
            if other_base + other.len > base {
                return Err(BusError::Overlap { bus, name, base, len, other: other.name });
            }
        }
        ranges.insert(base, BusRange { len, name, device });
        Ok(())
    }
    // qa:end stage2-bus-insert

    /// Takes the range starting at `base` away from its device; returns the device.
    pub fn remove(&self, base: u64) -> Option<SharedDevice> {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        ranges.remove(&base).map(|r| r.device)
    }

    // qa:begin stage2-bus-resolve
    /// The device whose range holds all of `[addr, addr + len)`, and the offset of `addr` in it.
    fn resolve(&self, addr: u64, len: usize) -> Option<(BusHit, SharedDevice)> {
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        let (&base, range) = ranges.range(..=addr).next_back()?;
        let offset = addr - base;
        let fits = offset.checked_add(len as u64).is_some_and(|end| end <= range.len);
        fits.then(|| (BusHit { name: range.name, offset }, Arc::clone(&range.device)))
    }
    // qa:end stage2-bus-resolve

    /// Every range on the bus in address order, for monitors and reports.
    pub fn ranges(&self) -> Vec<BusRangeInfo> {
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        ranges.iter().map(|(&base, range)| BusRangeInfo { name: range.name, base, len: range.len }).collect()
    }

    /// The name of the device whose range holds `addr`, if any.
    pub fn device_at(&self, addr: u64) -> Option<&'static str> {
        self.resolve(addr, 1).map(|(hit, _)| hit.name)
    }

    /// Dispatches a read; `None` when no device covers the whole access (the caller decides
    /// what the guest sees then, usually all ones like an empty bus).
    pub fn read(&self, addr: u64, data: &mut [u8]) -> Option<BusHit> {
        let (hit, device) = self.resolve(addr, data.len())?;
        lock(&device).read(hit.offset, data);
        Some(hit)
    }

    /// Dispatches a write; `None` when no device covers the whole access.
    pub fn write(&self, addr: u64, data: &[u8]) -> Option<BusHit> {
        let (hit, device) = self.resolve(addr, data.len())?;
        lock(&device).write(hit.offset, data);
        Some(hit)
    }
}

/// Locks a device even if an earlier holder panicked: one bad device must not stop the VM.
pub fn lock<T: ?Sized>(device: &Mutex<T>) -> MutexGuard<'_, T> {
    device.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Remembers the last access; reads return the offset.
    #[derive(Default)]
    struct Recorder {
        last_write: Option<(u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.last_write = Some((offset, data.to_vec()));
        }
    }

    fn recorder() -> Arc<Mutex<Recorder>> {
        Arc::new(Mutex::new(Recorder::default()))
    }

    #[test]
    fn accesses_reach_the_device_at_an_offset() {
        let bus = Bus::new("pio");
        let dev = recorder();
        bus.insert("uart", 0x3f8, 8, dev.clone()).unwrap();
        let mut data = [0u8; 1];
        assert_eq!(bus.read(0x3fd, &mut data), Some(BusHit { name: "uart", offset: 5 }));
        assert_eq!(data, [5]);
        bus.write(0x3f8, &[0x41]).unwrap();
        assert_eq!(dev.lock().unwrap().last_write, Some((0, vec![0x41])));
    }

    #[test]
    fn accesses_outside_every_range_are_not_dispatched() {
        let bus = Bus::new("pio");
        bus.insert("uart", 0x3f8, 8, recorder()).unwrap();
        let mut data = [0u8; 2];
        assert_eq!(bus.read(0x3f7, &mut data[..1]), None, "just below");
        assert_eq!(bus.read(0x400, &mut data[..1]), None, "just above: the range is 8 ports, not 9");
        assert_eq!(bus.read(0x3ff, &mut data), None, "straddles the end");
        assert!(bus.write(u64::MAX, &[0]).is_none());
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let bus = Bus::new("mmio");
        bus.insert("a", 0x1000, 0x100, recorder()).unwrap();
        for (base, len) in [(0x1000, 1), (0x10ff, 1), (0xf00, 0x101), (0x800, 0x1000)] {
            assert!(matches!(bus.insert("b", base, len, recorder()), Err(BusError::Overlap { other: "a", .. })));
        }
        bus.insert("below", 0xf00, 0x100, recorder()).unwrap();
        bus.insert("above", 0x1100, 0x100, recorder()).unwrap();
        assert!(matches!(bus.insert("empty", 0x5000, 0, recorder()), Err(BusError::BadRange { .. })));
        assert!(matches!(bus.insert("wraps", u64::MAX, 2, recorder()), Err(BusError::BadRange { .. })));
    }

    #[test]
    fn ranges_are_listed_in_address_order_and_named_by_address() {
        let bus = Bus::new("pio");
        bus.insert("uart", 0x3f8, 8, recorder()).unwrap();
        bus.insert("i8042", 0x60, 5, recorder()).unwrap();
        let names: Vec<_> = bus.ranges().iter().map(|r| (r.name, r.base, r.len)).collect();
        assert_eq!(names, [("i8042", 0x60, 5), ("uart", 0x3f8, 8)]);
        assert_eq!(bus.device_at(0x3ff), Some("uart"));
        assert_eq!(bus.device_at(0x400), None);
    }

    #[test]
    fn a_removed_range_can_be_taken_again() {
        let bus = Bus::new("mmio");
        bus.insert("bar", 0x1000, 0x100, recorder()).unwrap();
        assert!(bus.remove(0x1000).is_some());
        assert_eq!(bus.read(0x1000, &mut [0u8; 4]), None);
        bus.insert("bar", 0x1080, 0x100, recorder()).unwrap();
    }
}
