//! The host bridge: configuration mechanism #1 on ports 0xCF8–0xCFF, and bus 0 behind it.
//!
//! The guest reaches a function's configuration space in two steps. It writes a dword to
//! CONFIG_ADDRESS (port 0xCF8) naming the bus, device, function and dword register; then it
//! reads or writes CONFIG_DATA (ports 0xCFC–0xCFF), and the bridge turns that into a
//! configuration cycle to the named function. A byte at port 0xCFD is byte 1 of the selected
//! dword, a word at 0xCFE its upper half: this is how Linux reads 8- and 16-bit registers
//! (`arch/x86/pci/direct.c`: `inb(0xCFC + (reg & 3))`).
//!
//! Linux decides that mechanism #1 exists by writing 0x8000_0000 to CONFIG_ADDRESS and
//! reading it back (`pci_check_type1`), and then, lacking a recent BIOS date, by looking for a
//! host bridge on bus 0 (`pci_sanity_check`: class 0x0600 or vendor Intel). Our host bridge at
//! 00:00.0 passes both: it claims to be QEMU's i440FX, `8086:1237`, class 06/00/00.
//!
//! Only bus 0 exists, every function is function 0, and there are no PCI-to-PCI bridges.
//! Anything not present reads all ones and ignores writes, which is what the guest's probe
//! looks for (PCI 3.0 §3.2.2.3.2, footnote: "returning all ones on reads").
//!
//! # Resources
//! - PCI Local Bus Specification 3.0, §3.2.2.3.2 "Configuration Mechanism #1".
//! - Linux `arch/x86/pci/direct.c`: `pci_conf1_read`, `pci_check_type1`, `pci_sanity_check`.
//! - QEMU `hw/pci/pci_host.c` (`pci_host_config_write`, `pci_host_data_read`) and
//!   `hw/pci-host/i440fx.c` (the ids of the host bridge).

use super::bar::{BarAllocator, BarError, BarMapper, BarRegion};
use super::config::{BarInfo, ConfigSpace, BAR_COUNT, COMMAND_MEMORY_SPACE};
use super::{PciDevice, SharedPciDevice};
use stage02::bus::{lock, BusDevice};
use stage02::guest_error::GuestErrorLog;
use std::sync::{Arc, Mutex};

/// First port of the host bridge's range: CONFIG_ADDRESS.
pub const PCI_CONFIG_ADDRESS_PORT: u16 = 0xcf8;
/// First port of CONFIG_DATA; 0xCFC–0xCFF select the bytes of the addressed dword.
pub const PCI_CONFIG_DATA_PORT: u16 = 0xcfc;
/// Number of ports the host bridge decodes: CONFIG_ADDRESS and CONFIG_DATA, one dword each.
pub const PCI_CONFIG_PORT_COUNT: u64 = 8;
/// Offset of CONFIG_DATA within the host bridge's port range.
const CONFIG_DATA_OFFSET: u64 = (PCI_CONFIG_DATA_PORT - PCI_CONFIG_ADDRESS_PORT) as u64;

/// Device numbers on a bus (5 bits).
pub const PCI_DEVICES_PER_BUS: usize = 32;

/// Host bridge vendor: Intel, as QEMU's i440FX (`PCI_VENDOR_ID_INTEL`).
pub const HOST_BRIDGE_VENDOR_ID: u16 = 0x8086;
/// Host bridge device: 82441FX PMC, the i440FX (`PCI_DEVICE_ID_INTEL_82441`).
pub const HOST_BRIDGE_DEVICE_ID: u16 = 0x1237;
/// Host bridge class code: base class 06 (bridge), subclass 00 (host), interface 00.
pub const HOST_BRIDGE_CLASS_CODE: u32 = 0x06_00_00;
/// Host bridge revision, as QEMU's i440FX reports.
pub const HOST_BRIDGE_REVISION: u8 = 0x02;
/// Subsystem vendor QEMU gives its devices (Red Hat, `PCI_SUBVENDOR_ID_REDHAT_QUMRANET`).
pub const QEMU_SUBSYSTEM_VENDOR_ID: u16 = 0x1af4;
/// Subsystem id QEMU gives its devices (`PCI_SUBDEVICE_ID_QEMU`).
pub const QEMU_SUBSYSTEM_ID: u16 = 0x1100;

// qa:begin stage7-config-address
/// CONFIG_ADDRESS bit 31, Enable: CONFIG_DATA accesses are configuration cycles only when set.
pub const CONFIG_ADDRESS_ENABLE: u32 = 1 << 31;
/// CONFIG_ADDRESS bits 23:16, Bus Number.
pub const CONFIG_ADDRESS_BUS_SHIFT: u32 = 16;
/// CONFIG_ADDRESS bits 15:11, Device Number.
pub const CONFIG_ADDRESS_DEVICE_SHIFT: u32 = 11;
/// CONFIG_ADDRESS bits 10:8, Function Number.
pub const CONFIG_ADDRESS_FUNCTION_SHIFT: u32 = 8;
/// CONFIG_ADDRESS bits 7:2, Register Number: the dword of configuration space.
pub const CONFIG_ADDRESS_REGISTER_MASK: u32 = 0xfc;
/// The bits CONFIG_ADDRESS keeps. Bits 30:24 are reserved and bits 1:0 "must return 0's
/// when read" (PCI 3.0 §3.2.2.3.2): whatever the guest writes there reads back as 0.
pub const CONFIG_ADDRESS_WRITABLE: u32 = 0x80ff_fffc;

/// A decoded CONFIG_ADDRESS: which function and dword a CONFIG_DATA access goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigTarget {
    /// Bus number (0..=255).
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
    /// Offset of the dword in configuration space (a multiple of 4).
    pub register: u8,
}

impl ConfigTarget {
    /// Decodes CONFIG_ADDRESS; `None` when the Enable bit is clear, so that CONFIG_DATA is
    /// an ordinary I/O port with nothing behind it.
    pub fn decode(config_address: u32) -> Option<ConfigTarget> {
        if config_address & CONFIG_ADDRESS_ENABLE == 0 {
            return None;
        }
        Some(ConfigTarget {
            bus: (config_address >> CONFIG_ADDRESS_BUS_SHIFT) as u8,
            device: (config_address >> CONFIG_ADDRESS_DEVICE_SHIFT) as u8 & 0x1f,
            function: (config_address >> CONFIG_ADDRESS_FUNCTION_SHIFT) as u8 & 0x7,
            register: (config_address & CONFIG_ADDRESS_REGISTER_MASK) as u8,
        })
    }

    /// The CONFIG_ADDRESS value a driver writes to reach this target (Enable set).
    pub fn encode(self) -> u32 {
        CONFIG_ADDRESS_ENABLE
            | u32::from(self.bus) << CONFIG_ADDRESS_BUS_SHIFT
            | u32::from(self.device & 0x1f) << CONFIG_ADDRESS_DEVICE_SHIFT
            | u32::from(self.function & 0x7) << CONFIG_ADDRESS_FUNCTION_SHIFT
            | u32::from(self.register) & CONFIG_ADDRESS_REGISTER_MASK
    }
}
// qa:end stage7-config-address

/// Errors from setting up the PCI bus: mistakes of the VMM, not of the guest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PciRootError {
    /// All 32 device numbers of bus 0 are taken.
    #[error("no free device number on PCI bus 0 for {0}")]
    BusFull(&'static str),
    /// The BARs do not fit in the window.
    #[error(transparent)]
    Bar(#[from] BarError),
}

/// Host bridge 00:00.0: identification only, no BARs. Reads to a BAR it lacks return ones.
pub struct HostBridge {
    config: ConfigSpace,
}

impl HostBridge {
    /// An i440FX-like host bridge, `8086:1237`, class 06/00/00.
    pub fn new() -> Self {
        let ids = (HOST_BRIDGE_VENDOR_ID, HOST_BRIDGE_DEVICE_ID);
        let config = ConfigSpace::new(ids.0, ids.1, HOST_BRIDGE_CLASS_CODE, HOST_BRIDGE_REVISION)
            .with_subsystem(QEMU_SUBSYSTEM_VENDOR_ID, QEMU_SUBSYSTEM_ID);
        HostBridge { config }
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl PciDevice for HostBridge {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }
    fn mmio_read(&mut self, _bar: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn mmio_write(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
}

/// One occupied device number: the device and where its BARs are mapped now.
struct Slot {
    name: &'static str,
    device: SharedPciDevice,
    mapped: [Option<u64>; BAR_COUNT],
}

/// The host bridge's view of bus 0: CONFIG_ADDRESS, the devices, and their BAR mappings.
///
/// # Installation
/// The VMM wires PCI in four steps:
/// 1. build it with a [`BarMapper`] over the MMIO bus
///    ([`BusBarMapper`](super::bar::BusBarMapper), reserving RAM and the APICs);
/// 2. [`add_device`](Self::add_device) each device (after setting its interrupt line register
///    to the GSI whose [`IrqLevel`](super::IrqLevel) it was given);
/// 3. [`allocate_bars`](Self::allocate_bars) in the PCI window, as firmware would;
/// 4. insert it on the port-I/O bus at [`PCI_CONFIG_ADDRESS_PORT`] for
///    [`PCI_CONFIG_PORT_COUNT`] ports.
///
/// # Example
/// ```
/// use stage07::pci::bar::{BusBarMapper, PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END};
/// use stage07::pci::root::{PciRoot, PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_PORT_COUNT};
/// use stage02::vm::Buses;
/// use std::sync::{Arc, Mutex};
/// let buses = Arc::new(Buses::default());
/// let mut root = PciRoot::new(Arc::new(BusBarMapper::new(buses.clone())));
/// // root.add_device("edu", edu)?;
/// root.allocate_bars(PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END).unwrap();
/// let root = Arc::new(Mutex::new(root));
/// buses.pio.insert("pci", u64::from(PCI_CONFIG_ADDRESS_PORT), PCI_CONFIG_PORT_COUNT, root).unwrap();
/// ```
pub struct PciRoot {
    config_address: u32,
    slots: Vec<Option<Slot>>,
    mapper: Arc<dyn BarMapper>,
    guest_errors: GuestErrorLog,
}

impl PciRoot {
    /// Bus 0 with the host bridge at device 0 and every other device number empty.
    pub fn new(mapper: Arc<dyn BarMapper>) -> Self {
        let mut slots: Vec<Option<Slot>> = (0..PCI_DEVICES_PER_BUS).map(|_| None).collect();
        let host_bridge: SharedPciDevice = Arc::new(Mutex::new(HostBridge::new()));
        slots[0] = Some(Slot { name: "host-bridge", device: host_bridge, mapped: [None; BAR_COUNT] });
        PciRoot { config_address: 0, slots, mapper, guest_errors: GuestErrorLog::default() }
    }

    /// Plugs `device` into the lowest free device number (function 0) and returns that number.
    /// BARs the device already decodes are mapped at once.
    ///
    /// # Errors
    /// [`PciRootError::BusFull`] when all 32 device numbers are taken.
    pub fn add_device(&mut self, name: &'static str, device: SharedPciDevice) -> Result<u8, PciRootError> {
        let number = self.slots.iter().position(Option::is_none).ok_or(PciRootError::BusFull(name))?;
        self.slots[number] = Some(Slot { name, device, mapped: [None; BAR_COUNT] });
        self.update_mappings(number);
        Ok(number as u8)
    }

    /// Plays firmware: places every BAR of every device in `[start, end)`, largest first and
    /// naturally aligned, turns on memory decoding, and maps the BARs. The window is meant to
    /// lie in the 32-bit MMIO hole ([`PCI_MMIO_WINDOW_START`](super::bar::PCI_MMIO_WINDOW_START)
    /// ..[`PCI_MMIO_WINDOW_END`](super::bar::PCI_MMIO_WINDOW_END)); nothing is placed above 4 GiB.
    ///
    /// # Errors
    /// [`BarError::WindowFull`] when the BARs do not fit; nothing is placed then.
    pub fn allocate_bars(&mut self, start: u64, end: u64) -> Result<(), PciRootError> {
        let mut wanted: Vec<(usize, &'static str, BarInfo)> = Vec::new();
        for (number, slot) in self.slots.iter().enumerate() {
            if let Some(slot) = slot {
                wanted.extend(lock(&slot.device).bars().into_iter().map(|bar| (number, slot.name, bar)));
            }
        }
        // Largest first: each address is then aligned for all that follow, and nothing is wasted.
        wanted.sort_by_key(|&(number, _, bar)| (std::cmp::Reverse(bar.size), number, bar.index));
        // Every BAR stays below 4 GiB, where 32-bit BARs can point, and clear of its last byte
        // (a 32-bit BAR ending there counts as unassigned; see `BarInfo::mapping`).
        let mut allocator = BarAllocator::new(start, end.min(u64::from(u32::MAX)));
        let mut placed = Vec::with_capacity(wanted.len());
        for (number, name, bar) in wanted {
            let address = allocator.allocate(bar.size).ok_or(BarError::WindowFull { name, size: bar.size })?;
            placed.push((number, bar.index, address));
        }
        for (number, index, address) in placed {
            if let Some(slot) = &self.slots[number] {
                let mut device = lock(&slot.device);
                device.config_mut().set_bar_address(index, address);
                device.config_mut().set_command_bits(COMMAND_MEMORY_SPACE);
            }
        }
        for number in 0..self.slots.len() {
            self.update_mappings(number);
        }
        Ok(())
    }

    /// The CONFIG_ADDRESS latch, as the guest would read it.
    pub fn config_address(&self) -> u32 {
        self.config_address
    }

    /// Guest errors seen so far (BARs placed where they cannot be mapped).
    pub fn guest_errors(&self) -> &GuestErrorLog {
        &self.guest_errors
    }

    /// Where BAR `bar` of device `number` is mapped now, if it is.
    pub fn bar_mapping(&self, number: u8, bar: usize) -> Option<u64> {
        let slot = self.slots.get(usize::from(number))?.as_ref()?;
        slot.mapped.get(bar).copied().flatten()
    }

    /// The device a CONFIG_DATA access goes to, if the latch selects a present function.
    fn target(&self) -> Option<(usize, ConfigTarget)> {
        let target = ConfigTarget::decode(self.config_address)?;
        // Only bus 0, and single-function devices: function 0 only.
        if target.bus != 0 || target.function != 0 {
            return None;
        }
        let number = usize::from(target.device);
        self.slots.get(number)?.as_ref()?;
        Some((number, target))
    }

    /// Brings the MMIO bus in line with device `number`'s BARs: unmaps what moved or stopped
    /// decoding, maps what is new. Called after every configuration write, like QEMU's
    /// `pci_update_mappings`; BARs that did not change cost a comparison.
    fn update_mappings(&mut self, number: usize) {
        let Some(Some(slot)) = self.slots.get_mut(number) else { return };
        // Not holding the device's lock while the mapper works: a vCPU in one of its BARs
        // needs it, and the mapper takes the MMIO bus's lock.
        let bars = lock(&slot.device).bars();
        for bar in bars {
            let wanted = bar.mapping();
            let Some(mapped) = slot.mapped.get_mut(bar.index) else { continue };
            if *mapped == wanted {
                continue;
            }
            let (name, device, size) = (slot.name, number as u8, bar.size);
            let region = |address| BarRegion { name, device, bar: bar.index, address, size };
            if let Some(old) = mapped.take() {
                self.mapper.unmap(region(old));
            }
            if let Some(address) = wanted {
                match self.mapper.map(region(address), Arc::clone(&slot.device)) {
                    Ok(()) => *mapped = Some(address),
                    // The BAR stays unmapped; it is retried after the guest's next write.
                    Err(err) => self.guest_errors.report("pci", &err),
                }
            }
        }
    }

    fn read_data(&mut self, offset: usize, data: &mut [u8]) {
        match self.target() {
            Some((number, target)) => {
                if let Some(Some(slot)) = self.slots.get(number) {
                    lock(&slot.device).config_read(usize::from(target.register) + offset, data);
                }
            }
            None => data.fill(0xff),
        }
    }

    fn write_data(&mut self, offset: usize, data: &[u8]) {
        let Some((number, target)) = self.target() else { return };
        if let Some(Some(slot)) = self.slots.get(number) {
            lock(&slot.device).config_write(usize::from(target.register) + offset, data);
        }
        self.update_mappings(number);
    }
}

impl BusDevice for PciRoot {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            // Only a full dword at 0xCF8 is CONFIG_ADDRESS. Narrower accesses there are
            // ordinary I/O, and nothing answers them (Linux's type-2 probe reads 0xff and
            // gives up, as it should).
            0 if data.len() == 4 => data.copy_from_slice(&self.config_address.to_le_bytes()),
            // The bus only hands us accesses inside our 8 ports, so this one lies within the
            // CONFIG_DATA dword; its offset there picks the bytes of the register dword.
            CONFIG_DATA_OFFSET..PCI_CONFIG_PORT_COUNT => self.read_data((offset - CONFIG_DATA_OFFSET) as usize, data),
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, <[u8; 4]>::try_from(data)) {
            (0, Ok(dword)) => self.config_address = u32::from_le_bytes(dword) & CONFIG_ADDRESS_WRITABLE,
            (CONFIG_DATA_OFFSET..PCI_CONFIG_PORT_COUNT, _) => {
                self.write_data((offset - CONFIG_DATA_OFFSET) as usize, data)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::bar::{BusBarMapper, PCI_MMIO_WINDOW_END, PCI_MMIO_WINDOW_START};
    use crate::pci::config::{
        BarKind, BAR0_OFFSET, CLASS_CODE_OFFSET, COMMAND_OFFSET, INTERRUPT_LINE_OFFSET, VENDOR_ID_OFFSET,
    };
    use stage02::vm::Buses;

    const BAR_SIZE: u64 = 0x10_0000;

    /// Records every map and unmap; refuses to map at `refuse`.
    #[derive(Default)]
    struct RecordingMapper {
        calls: Mutex<Vec<(&'static str, u8, usize, u64)>>,
        refuse: Option<u64>,
    }

    impl BarMapper for RecordingMapper {
        fn map(&self, region: BarRegion, _device: SharedPciDevice) -> Result<(), BarError> {
            if Some(region.address) == self.refuse {
                let BarRegion { name, bar, address, size, .. } = region;
                return Err(BarError::Reserved { name, bar, address, size, reserved: "test" });
            }
            self.calls.lock().unwrap().push(("map", region.device, region.bar, region.address));
            Ok(())
        }
        fn unmap(&self, region: BarRegion) {
            self.calls.lock().unwrap().push(("unmap", region.device, region.bar, region.address));
        }
    }

    impl RecordingMapper {
        fn take(&self) -> Vec<(&'static str, u8, usize, u64)> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    /// A device with one 1 MiB BAR whose reads return 0xab.
    struct Simple(ConfigSpace);

    impl PciDevice for Simple {
        fn config(&self) -> &ConfigSpace {
            &self.0
        }
        fn config_mut(&mut self) -> &mut ConfigSpace {
            &mut self.0
        }
        fn mmio_read(&mut self, _bar: usize, _offset: u64, data: &mut [u8]) {
            data.fill(0xab);
        }
        fn mmio_write(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
    }

    fn simple() -> SharedPciDevice {
        let config = ConfigSpace::new(0x1234, 0x5678, 0xff_00_00, 1)
            .with_bar(0, BarKind::Memory32 { prefetchable: false }, BAR_SIZE)
            .unwrap();
        Arc::new(Mutex::new(Simple(config)))
    }

    fn select(root: &mut PciRoot, bus: u8, device: u8, function: u8, register: u8) {
        let address = ConfigTarget { bus, device, function, register }.encode();
        root.write(0, &address.to_le_bytes());
    }

    fn read32(root: &mut PciRoot, port_offset: u64) -> u32 {
        let mut data = [0u8; 4];
        root.read(port_offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn config_read32(root: &mut PciRoot, device: u8, register: u8) -> u32 {
        select(root, 0, device, 0, register);
        read32(root, CONFIG_DATA_OFFSET)
    }

    fn config_write32(root: &mut PciRoot, device: u8, register: u8, value: u32) {
        select(root, 0, device, 0, register);
        root.write(CONFIG_DATA_OFFSET, &value.to_le_bytes());
    }

    fn root_with(mapper: Arc<dyn BarMapper>) -> (PciRoot, u8) {
        let mut root = PciRoot::new(mapper);
        let number = root.add_device("simple", simple()).unwrap();
        (root, number)
    }

    #[test]
    fn config_address_reads_back_what_was_written_without_the_reserved_bits() {
        let mut root = PciRoot::new(Arc::new(RecordingMapper::default()));
        assert_eq!(read32(&mut root, 0), 0, "reset value");
        root.write(0, &0x8000_0000u32.to_le_bytes());
        assert_eq!(read32(&mut root, 0), 0x8000_0000, "Linux's pci_check_type1 probe");
        root.write(0, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(read32(&mut root, 0), CONFIG_ADDRESS_WRITABLE, "bits 30:24 and 1:0 read 0");
        assert_eq!(root.config_address(), 0x80ff_fffc);
    }

    #[test]
    fn narrow_accesses_to_config_address_are_not_the_latch() {
        let mut root = PciRoot::new(Arc::new(RecordingMapper::default()));
        root.write(0, &0x8000_0800u32.to_le_bytes());
        root.write(3, &[0x01]); // Linux: outb(0x01, 0xCFB)
        root.write(0, &[0, 0]);
        assert_eq!(root.config_address(), 0x8000_0800);
        let mut byte = [0u8];
        root.read(0, &mut byte);
        assert_eq!(byte, [0xff], "Linux's type-2 probe must fail");
    }

    #[test]
    fn config_target_decodes_every_field() {
        let target = ConfigTarget::decode(0x80ab_cdef).unwrap();
        assert_eq!(target, ConfigTarget { bus: 0xab, device: 0x19, function: 5, register: 0xec });
        assert_eq!(target.encode(), 0x80ab_cdec);
        assert_eq!(ConfigTarget::decode(0x00ab_cdef), None, "Enable bit clear");
    }

    #[test]
    fn the_host_bridge_passes_linux_sanity_check() {
        let mut root = PciRoot::new(Arc::new(RecordingMapper::default()));
        assert_eq!(config_read32(&mut root, 0, VENDOR_ID_OFFSET as u8), 0x1237_8086);
        // pci_sanity_check reads the word at PCI_CLASS_DEVICE (0x0a): 0x0600 is a host bridge.
        select(&mut root, 0, 0, 0, 0x08);
        let mut word = [0u8; 2];
        root.read(CONFIG_DATA_OFFSET + 2, &mut word);
        assert_eq!(u16::from_le_bytes(word), 0x0600);
        assert_eq!(config_read32(&mut root, 0, CLASS_CODE_OFFSET as u8 & !3) >> 8, HOST_BRIDGE_CLASS_CODE);
    }

    #[test]
    fn data_port_offsets_select_bytes_and_words_of_the_dword() {
        let (mut root, number) = root_with(Arc::new(RecordingMapper::default()));
        select(&mut root, 0, number, 0, 0);
        let mut byte = [0u8];
        let bytes: Vec<u8> = (0..4)
            .map(|lane| {
                root.read(CONFIG_DATA_OFFSET + lane, &mut byte);
                byte[0]
            })
            .collect();
        assert_eq!(bytes, [0x34, 0x12, 0x78, 0x56]);
        let mut word = [0u8; 2];
        root.read(CONFIG_DATA_OFFSET + 2, &mut word);
        assert_eq!(word, [0x78, 0x56]);
        // A byte write at 0xCFC + 0 of the dword at 0x3c is the interrupt line.
        select(&mut root, 0, number, 0, INTERRUPT_LINE_OFFSET as u8);
        root.write(CONFIG_DATA_OFFSET, &[11]);
        assert_eq!(config_read32(&mut root, number, INTERRUPT_LINE_OFFSET as u8) & 0xff, 11);
    }

    #[test]
    fn absent_devices_other_buses_functions_and_disabled_cycles_read_all_ones() {
        let (mut root, number) = root_with(Arc::new(RecordingMapper::default()));
        for (bus, device, function) in [(0, 31, 0), (0, 2, 0), (1, 0, 0), (0, number, 1), (255, number, 0)] {
            select(&mut root, bus, device, function, 0);
            assert_eq!(read32(&mut root, CONFIG_DATA_OFFSET), u32::MAX, "{bus}:{device}.{function}");
            let mut byte = [0u8];
            root.read(CONFIG_DATA_OFFSET + 3, &mut byte);
            assert_eq!(byte, [0xff]);
            root.write(CONFIG_DATA_OFFSET, &0u32.to_le_bytes());
        }
        // Enable bit clear: CONFIG_DATA is an empty port, writes do not reach the device.
        let target = ConfigTarget { bus: 0, device: number, function: 0, register: INTERRUPT_LINE_OFFSET as u8 };
        root.write(0, &(target.encode() & !CONFIG_ADDRESS_ENABLE).to_le_bytes());
        assert_eq!(read32(&mut root, CONFIG_DATA_OFFSET), u32::MAX);
        root.write(CONFIG_DATA_OFFSET, &[0x42]);
        assert_eq!(config_read32(&mut root, number, INTERRUPT_LINE_OFFSET as u8) & 0xff, 0, "write dropped");
    }

    #[test]
    fn devices_take_the_lowest_free_number_until_the_bus_is_full() {
        let mut root = PciRoot::new(Arc::new(RecordingMapper::default()));
        for expected in 1..32 {
            assert_eq!(root.add_device("simple", simple()), Ok(expected));
        }
        assert_eq!(root.add_device("one-too-many", simple()), Err(PciRootError::BusFull("one-too-many")));
    }

    #[test]
    fn guest_bar_moves_and_command_toggles_map_and_unmap() {
        let mapper = Arc::new(RecordingMapper::default());
        let (mut root, n) = root_with(mapper.clone());
        let bar0 = BAR0_OFFSET as u8;
        let command = COMMAND_OFFSET as u8;
        config_write32(&mut root, n, bar0, 0xe000_0000);
        assert_eq!(mapper.take(), [], "memory decoding is still off");

        config_write32(&mut root, n, command, u32::from(COMMAND_MEMORY_SPACE));
        assert_eq!(mapper.take(), [("map", n, 0, 0xe000_0000)]);
        config_write32(&mut root, n, INTERRUPT_LINE_OFFSET as u8, 5);
        assert_eq!(mapper.take(), [], "unrelated writes change nothing");

        config_write32(&mut root, n, bar0, 0xe010_0000);
        assert_eq!(mapper.take(), [("unmap", n, 0, 0xe000_0000), ("map", n, 0, 0xe010_0000)]);
        assert_eq!(root.bar_mapping(n, 0), Some(0xe010_0000));

        // Linux sizes with decoding off: off, all ones, restore, on.
        config_write32(&mut root, n, command, 0);
        config_write32(&mut root, n, bar0, u32::MAX);
        assert_eq!(config_read32(&mut root, n, bar0), 0xfff0_0000);
        config_write32(&mut root, n, bar0, 0xe010_0000);
        config_write32(&mut root, n, command, u32::from(COMMAND_MEMORY_SPACE));
        assert_eq!(mapper.take(), [("unmap", n, 0, 0xe010_0000), ("map", n, 0, 0xe010_0000)]);
    }

    #[test]
    fn a_bar_that_cannot_be_mapped_is_a_guest_error_and_stays_unmapped() {
        let mapper = Arc::new(RecordingMapper { refuse: Some(0x1000_0000), ..Default::default() });
        let (mut root, n) = root_with(mapper.clone());
        config_write32(&mut root, n, COMMAND_OFFSET as u8, u32::from(COMMAND_MEMORY_SPACE));
        config_write32(&mut root, n, BAR0_OFFSET as u8, 0x1000_0000);
        assert_eq!(mapper.take(), []);
        assert_eq!(root.bar_mapping(n, 0), None);
        assert_eq!(root.guest_errors().count(), 1);
        assert!(root.guest_errors().last().unwrap().contains("0x10000000"));
        // The guest can still move it somewhere sane.
        config_write32(&mut root, n, BAR0_OFFSET as u8, 0xe000_0000);
        assert_eq!(mapper.take(), [("map", n, 0, 0xe000_0000)]);
    }

    #[test]
    fn allocation_places_bars_like_firmware_and_turns_decoding_on() {
        let mapper = Arc::new(RecordingMapper::default());
        let (mut root, first) = root_with(mapper.clone());
        let small = ConfigSpace::new(1, 2, 0, 0)
            .with_bar(1, BarKind::Memory32 { prefetchable: false }, 0x1000)
            .unwrap()
            .with_bar(2, BarKind::Memory64 { prefetchable: true }, 0x20_0000)
            .unwrap();
        let second = root.add_device("small", Arc::new(Mutex::new(Simple(small)))).unwrap();
        root.allocate_bars(PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END).unwrap();
        let mut calls = mapper.take();
        calls.sort();
        assert_eq!(
            calls,
            [("map", first, 0, 0xe020_0000), ("map", second, 1, 0xe030_0000), ("map", second, 2, 0xe000_0000)]
        );
        assert_eq!(config_read32(&mut root, first, BAR0_OFFSET as u8), 0xe020_0000);
        assert_eq!(config_read32(&mut root, first, COMMAND_OFFSET as u8) & 0xffff, u32::from(COMMAND_MEMORY_SPACE));

        let mut tight = PciRoot::new(Arc::new(RecordingMapper::default()));
        tight.add_device("simple", simple()).unwrap();
        let err = tight.allocate_bars(0xe000_0000, 0xe008_0000).unwrap_err();
        assert_eq!(err, PciRootError::Bar(BarError::WindowFull { name: "simple", size: BAR_SIZE }));
    }

    #[test]
    fn bars_reach_the_device_through_the_real_mmio_bus() {
        let buses = Arc::new(Buses::default());
        let mapper = BusBarMapper::new(buses.clone()).reserve("RAM", 0, 0xc000_0000);
        let (mut root, n) = root_with(Arc::new(mapper));
        root.allocate_bars(PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END).unwrap();
        let root = Arc::new(Mutex::new(root));
        buses.pio.insert("pci", u64::from(PCI_CONFIG_ADDRESS_PORT), PCI_CONFIG_PORT_COUNT, root.clone()).unwrap();

        // Through the ports, as the guest does it.
        let address = ConfigTarget { bus: 0, device: n, function: 0, register: BAR0_OFFSET as u8 }.encode();
        buses.pio.write(u64::from(PCI_CONFIG_ADDRESS_PORT), &address.to_le_bytes()).unwrap();
        let mut data = [0u8; 4];
        buses.pio.read(u64::from(PCI_CONFIG_DATA_PORT), &mut data).unwrap();
        assert_eq!(u32::from_le_bytes(data), 0xe000_0000);
        assert!(buses.mmio.read(0xe000_0004, &mut data).is_some());
        assert_eq!(data, [0xab; 4]);

        // The guest moves the BAR: the old range is empty, the new one answers.
        buses.pio.write(u64::from(PCI_CONFIG_DATA_PORT), &0xe080_0000u32.to_le_bytes()).unwrap();
        assert!(buses.mmio.read(0xe000_0004, &mut data).is_none());
        assert!(buses.mmio.read(0xe08f_fffc, &mut data).is_some());

        // Onto RAM: refused, logged, unmapped; the VM goes on.
        buses.pio.write(u64::from(PCI_CONFIG_DATA_PORT), &0x0010_0000u32.to_le_bytes()).unwrap();
        assert!(buses.mmio.read(0xe080_0000, &mut data).is_none());
        assert!(buses.mmio.read(0x0010_0000, &mut data).is_none());
        assert_eq!(root.lock().unwrap().guest_errors().count(), 1);
    }
}
