//! BAR placement and mapping: where a device's registers appear in guest-physical memory.
//!
//! Two parties move BARs. Before the guest runs, the VMM plays firmware: it gives every BAR a
//! naturally aligned address in a window of the MMIO hole ([`BarAllocator`]). Later the guest
//! may move a BAR, or turn memory decoding off and on; each time the host bridge asks a
//! [`BarMapper`] to unmap the old range and map the new one. [`BusBarMapper`] is the real one: it
//! puts a small [`BusDevice`] on the MMIO bus that forwards accesses to the device's
//! [`mmio_read`](super::PciDevice::mmio_read)/[`mmio_write`](super::PciDevice::mmio_write).
//!
//! ```text
//! 0xc000_0000 ┌──────────────────────────┐ stage 2's MMIO hole starts
//! 0xd000_0000 ├──────────────────────────┤ virtio-mmio devices (stage 6)
//! 0xe000_0000 ├──────────────────────────┤ PCI_MMIO_WINDOW_START: BARs go here
//! 0xf000_0000 ├──────────────────────────┤ PCI_MMIO_WINDOW_END
//! 0xfec0_0000 ├──────────────────────────┤ IO-APIC, then local APIC at 0xfee0_0000 (in KVM)
//! 0x1_0000_0000 └────────────────────────┘ the hole ends; high RAM
//! ```
//!
//! # Resources
//! - PCI Local Bus Specification 3.0, §6.2.5.1 "Address Maps": a BAR is naturally aligned.
//! - SeaBIOS `src/fw/pciinit.c` `pci_bios_map_devices`: firmware sorts BARs by size and packs
//!   them into a window, which [`BarAllocator`] imitates.
//! - QEMU `hw/pci/pci.c` `pci_update_mappings`: unmap the old range, map the new one.

use super::SharedPciDevice;
use stage02::bus::{lock, BusDevice, BusError};
use stage02::vm::Buses;
use std::sync::Arc;

// The window and the reserved range at the top of 4 GiB (reserve it with
// [`BusBarMapper::reserve`]) are in the machine's address map.
pub use crate::layout::{
    APIC_START as LAPIC_START, HIGH_RESERVED_SIZE, IOAPIC_START, PCI_MMIO_WINDOW_END, PCI_MMIO_WINDOW_START,
};

/// One BAR placed somewhere: what [`BarMapper`]s map and unmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarRegion {
    /// The device's name, for the bus and for messages.
    pub name: &'static str,
    /// Device number on bus 0.
    pub device: u8,
    /// BAR number.
    pub bar: usize,
    /// Guest-physical start.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Errors from mapping a BAR: the guest (or the VMM) put it where it cannot go.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BarError {
    /// The range overlaps something the guest must keep seeing (RAM, the APICs).
    #[error("BAR {bar} of {name} at {address:#x}+{size:#x} overlaps {reserved}")]
    Reserved {
        /// The device.
        name: &'static str,
        /// The BAR number.
        bar: usize,
        /// Where the guest put it.
        address: u64,
        /// Its size.
        size: u64,
        /// What is there.
        reserved: &'static str,
    },
    /// The MMIO bus refused the range (another device is there).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The window has no room left for a BAR of this size.
    #[error("no room for a {size:#x}-byte BAR of {name} in the PCI MMIO window")]
    WindowFull {
        /// The device.
        name: &'static str,
        /// The BAR's size.
        size: u64,
    },
}

/// Makes BARs appear at, and disappear from, guest-physical addresses.
///
/// [`PciRoot`](super::root::PciRoot) calls it whenever a BAR's decoded range changes: after the
/// guest writes a BAR or the command register's Memory Space bit, and after
/// [`allocate_bars`](super::root::PciRoot::allocate_bars). A failed `map` leaves the BAR
/// unmapped (the host bridge reports a guest error); `unmap` is only called for ranges whose
/// `map` succeeded.
pub trait BarMapper: Send + Sync {
    /// Makes `region` answer with `device`'s BAR `region.bar`.
    ///
    /// # Errors
    /// A [`BarError`] when the range cannot be used.
    fn map(&self, region: BarRegion, device: SharedPciDevice) -> Result<(), BarError>;
    /// Removes a mapping made by `map`.
    fn unmap(&self, region: BarRegion);
}

/// The MMIO-bus side of one mapped BAR: forwards accesses to the device, offset within the BAR.
pub struct BarWindow {
    device: SharedPciDevice,
    bar: usize,
}

impl BusDevice for BarWindow {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        lock(&self.device).mmio_read(self.bar, offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        lock(&self.device).mmio_write(self.bar, offset, data);
    }
}

/// A [`BarMapper`] over the VM's MMIO bus, refusing ranges that overlap reserved areas.
///
/// # Example
/// ```
/// use stage07::pci::bar::{BusBarMapper, IOAPIC_START, HIGH_RESERVED_SIZE};
/// use stage02::vm::Buses;
/// use std::sync::Arc;
/// let buses = Arc::new(Buses::default());
/// let mapper = BusBarMapper::new(buses)
///     .reserve("RAM", 0, 0xc000_0000)
///     .reserve("IO-APIC/LAPIC", IOAPIC_START, HIGH_RESERVED_SIZE);
/// ```
pub struct BusBarMapper {
    buses: Arc<Buses>,
    reserved: Vec<(&'static str, u64, u64)>,
}

impl BusBarMapper {
    /// A mapper that inserts BAR windows into `buses.mmio`.
    pub fn new(buses: Arc<Buses>) -> Self {
        BusBarMapper { buses, reserved: Vec::new() }
    }

    /// Refuses BARs that overlap `[base, base + len)`: give it every RAM region and the APIC
    /// area, which are not on the MMIO bus but must not be shadowed.
    pub fn reserve(mut self, name: &'static str, base: u64, len: u64) -> Self {
        self.reserved.push((name, base, base.saturating_add(len)));
        self
    }
}

impl BarMapper for BusBarMapper {
    fn map(&self, region: BarRegion, device: SharedPciDevice) -> Result<(), BarError> {
        let end = region.address.saturating_add(region.size);
        let overlap = self.reserved.iter().find(|&&(_, base, limit)| region.address < limit && base < end);
        if let Some(&(reserved, ..)) = overlap {
            let BarRegion { name, bar, address, size, .. } = region;
            return Err(BarError::Reserved { name, bar, address, size, reserved });
        }
        let window = Arc::new(std::sync::Mutex::new(BarWindow { device, bar: region.bar }));
        self.buses.mmio.insert(region.name, region.address, region.size, window)?;
        Ok(())
    }

    fn unmap(&self, region: BarRegion) {
        self.buses.mmio.remove(region.address);
    }
}

/// Hands out naturally aligned addresses from a window, like firmware placing BARs.
///
/// Give it the BARs largest first: then every address is aligned for every later (smaller)
/// BAR and the window is packed with no holes.
#[derive(Debug, Clone)]
pub struct BarAllocator {
    next: u64,
    end: u64,
}

impl BarAllocator {
    /// An allocator for `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        BarAllocator { next: start, end }
    }

    // qa:begin stage7-bar-allocate
    /// The next address aligned to `size` (a power of two) with `size` bytes free, if any.
    pub fn allocate(&mut self, size: u64) -> Option<u64> {
        if !size.is_power_of_two() {
            return None;
        }
        let address = self.next.checked_next_multiple_of(size)?;
        let end = address.checked_add(size).filter(|&end| end <= self.end)?;
        self.next = end;
        Some(address)
    }
    // qa:end stage7-bar-allocate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::config::ConfigSpace;
    use crate::pci::PciDevice;
    use std::sync::Mutex;

    /// A device whose BAR reads return the offset's low byte and remember writes.
    struct Echo {
        config: ConfigSpace,
        written: Vec<(usize, u64, Vec<u8>)>,
    }

    impl PciDevice for Echo {
        fn config(&self) -> &ConfigSpace {
            &self.config
        }
        fn config_mut(&mut self) -> &mut ConfigSpace {
            &mut self.config
        }
        fn mmio_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8 + bar as u8);
        }
        fn mmio_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
            self.written.push((bar, offset, data.to_vec()));
        }
    }

    fn region(address: u64) -> BarRegion {
        BarRegion { name: "echo", device: 1, bar: 2, address, size: 0x1000 }
    }

    #[test]
    fn a_mapped_bar_forwards_accesses_at_an_offset() {
        let buses = Arc::new(Buses::default());
        let mapper = BusBarMapper::new(buses.clone());
        let echo = Arc::new(Mutex::new(Echo { config: ConfigSpace::new(1, 2, 0, 0), written: vec![] }));
        mapper.map(region(0xe000_0000), echo.clone()).unwrap();
        let mut data = [0u8; 4];
        assert!(buses.mmio.read(0xe000_0010, &mut data).is_some());
        assert_eq!(data, [0x12; 4], "offset 0x10 of BAR 2");
        buses.mmio.write(0xe000_0ffc, &[1, 2, 3, 4]).unwrap();
        assert_eq!(echo.lock().unwrap().written, [(2, 0xffc, vec![1, 2, 3, 4])]);
        mapper.unmap(region(0xe000_0000));
        assert!(buses.mmio.read(0xe000_0010, &mut data).is_none());
    }

    #[test]
    fn reserved_and_taken_ranges_are_refused() {
        let buses = Arc::new(Buses::default());
        let mapper = BusBarMapper::new(buses.clone()).reserve("RAM", 0, 0x1000_0000).reserve(
            "APICs",
            IOAPIC_START,
            HIGH_RESERVED_SIZE,
        );
        let echo: SharedPciDevice =
            Arc::new(Mutex::new(Echo { config: ConfigSpace::new(1, 2, 0, 0), written: vec![] }));
        for (address, reserved) in [(0x0fff_f000, "RAM"), (0, "RAM"), (LAPIC_START, "APICs"), (0xffff_f000, "APICs")] {
            let refused = mapper.map(region(address), echo.clone());
            assert!(matches!(refused, Err(BarError::Reserved { reserved: r, .. }) if r == reserved), "{address:#x}");
        }
        mapper.map(region(0x1000_0000), echo.clone()).unwrap();
        assert!(matches!(mapper.map(region(0x1000_0000), echo), Err(BarError::Bus(BusError::Overlap { .. }))));
    }

    #[test]
    fn the_allocator_aligns_naturally_and_stops_at_the_end() {
        let mut allocator = BarAllocator::new(0xe000_1000, 0xe040_0000);
        assert_eq!(allocator.allocate(0x10_0000), Some(0xe010_0000), "aligned up to 1 MiB");
        assert_eq!(allocator.allocate(0x1000), Some(0xe020_0000));
        assert_eq!(allocator.allocate(0x20_0000), None, "would end past the window");
        assert_eq!(allocator.allocate(0x10_0000), Some(0xe030_0000), "a smaller one still fits");
        assert_eq!(allocator.allocate(3), None, "not a power of two");
        assert_eq!(BarAllocator::new(u64::MAX - 10, u64::MAX).allocate(16), None, "no overflow");
    }
}
