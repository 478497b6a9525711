//! Stage 7's host bridge: configuration mechanism #1 on its eight ports, BAR sizing and moving,
//! the command register, and accesses to wherever the BARs are mapped, on a bus with the host
//! bridge (00:00.0), the edu card (00:01.0) and a card with a 32-bit and a 64-bit BAR (00:02.0).
//!
//! Invariants, after every access:
//! - CONFIG_ADDRESS reads back what was written, reserved bits clear; narrower accesses to it,
//!   and reads of ports 0xCF9–0xCFB, find nothing (all ones);
//! - a CONFIG_DATA read of an absent function (enable bit clear, bus ≠ 0, function ≠ 0, or an
//!   empty slot) is all ones; the identification dword of a present one never changes;
//! - BAR sizing works as Linux does it: all ones written, `~(size - 1)` and the type bits read
//!   back (the upper dword of a 64-bit BAR, the upper half of `~(size - 1)`); a BAR the device
//!   lacks reads 0;
//! - a BAR the host bridge says is mapped is where the guest put it, answers on the MMIO bus with
//!   its device's name at offset 0, and overlaps neither RAM, the APICs nor another mapped BAR;
//!   every address a BAR ever occupied answers only if a BAR is mapped there now.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use arbitrary::{Arbitrary, Unstructured};
use stage02::bus::{lock, BusDevice};
use stage02::memory::GuestMemory;
use stage02::vm::Buses;
use stage07::devices::edu::EduDevice;
use stage07::layout::{HIGH_RESERVED_SIZE, IOAPIC_START, PCI_MMIO_WINDOW_END, PCI_MMIO_WINDOW_START};
use stage07::pci::bar::BusBarMapper;
use stage07::pci::config::{BarKind, ConfigSpace, BAR0_OFFSET, BAR_COUNT, COMMAND_OFFSET};
use stage07::pci::root::{PciRoot, CONFIG_ADDRESS_WRITABLE, HOST_BRIDGE_DEVICE_ID, HOST_BRIDGE_VENDOR_ID};
use stage07::pci::{IrqLevel, PciDevice, SharedPciDevice};

/// Guest RAM as the BAR mapper sees it: everything below 2 GiB (BARs must not shadow it).
const RAM_END: u64 = 0x8000_0000;
/// Offset of CONFIG_DATA in the host bridge's ports.
const DATA: u64 = 4;

/// A card with a 4 KiB 32-bit BAR 0 and a 16 KiB prefetchable 64-bit BAR 2 (registers 2 and 3).
struct TwoBars(ConfigSpace);

const TWO_BARS_IDS: (u16, u16) = (0x1af4, 0x10ff);

impl PciDevice for TwoBars {
    fn config(&self) -> &ConfigSpace {
        &self.0
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.0
    }
    fn mmio_read(&mut self, bar: usize, _offset: u64, data: &mut [u8]) {
        data.fill(bar as u8);
    }
    fn mmio_write(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
}

struct NoIrq;

impl IrqLevel for NoIrq {
    fn set_level(&self, _high: bool) {}
}

/// An access size for the data port.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Width {
    /// `inb`/`outb`.
    Byte,
    /// `inw`/`outw`.
    Word,
    /// `inl`/`outl`.
    Dword,
}

impl Width {
    fn len(self) -> usize {
        match self {
            Width::Byte => 1,
            Width::Word => 2,
            Width::Dword => 4,
        }
    }
}

/// One access of the guest.
#[derive(Arbitrary, Debug)]
pub enum PciOp {
    /// CONFIG_ADDRESS for bus/device/function/register (bus and function mostly 0).
    Select {
        /// Bus, used only if `other_bus`.
        bus: u8,
        /// Whether to go to another bus.
        other_bus: bool,
        /// Device number, modulo 32.
        device: u8,
        /// Function, modulo 8.
        function: u8,
        /// Register byte offset (the low two bits are dropped).
        register: u8,
        /// The enable bit.
        enable: bool,
    },
    /// Any CONFIG_ADDRESS.
    SelectRaw(u32),
    /// A CONFIG_DATA read at byte `offset % 4`.
    ReadData {
        /// Byte within the dword.
        offset: u8,
        /// Size.
        width: Width,
    },
    /// A CONFIG_DATA write.
    WriteData {
        /// Byte within the dword.
        offset: u8,
        /// Size.
        width: Width,
        /// Value (low bytes).
        value: u32,
    },
    /// Any access to the eight ports.
    Port {
        /// Port offset, modulo 8.
        offset: u8,
        /// Size 1 to 4 (what fits in the range).
        len: u8,
        /// Read or write.
        write: bool,
        /// Value written.
        value: u32,
    },
    /// Linux's BAR sizing: decoding off, all ones, read back, restore.
    SizeBar {
        /// Device number, modulo 3.
        device: u8,
        /// BAR register, modulo 6.
        bar: u8,
    },
    /// Moves a BAR (a dword to its register).
    MoveBar {
        /// Device number, modulo 3.
        device: u8,
        /// BAR register, modulo 6.
        bar: u8,
        /// The new address dword.
        address: u32,
    },
    /// Writes the command register.
    Command {
        /// Device number, modulo 3.
        device: u8,
        /// The value.
        value: u16,
    },
    /// An MMIO access at `offset` into where BAR `bar` of `device` is now, or anywhere.
    Mmio {
        /// Device number, modulo 3.
        device: u8,
        /// BAR register, modulo 6.
        bar: u8,
        /// Offset from the BAR (or an address, if the BAR is not mapped).
        offset: u32,
        /// Size 1, 2, 4 or 8.
        size: u8,
        /// Write or read.
        write: bool,
        /// Value written.
        value: u64,
    },
}

thread_local! {
    static DMA_RAM: Arc<GuestMemory> = Arc::new(GuestMemory::new(&[(0, 0x1000)]).expect("one page"));
}

/// The bus: the host bridge's ports, the MMIO bus, and the devices.
struct Machine {
    root: PciRoot,
    buses: Arc<Buses>,
    devices: [(&'static str, SharedPciDevice, (u16, u16)); 3],
    config_address: u32,
    /// Every address a BAR was ever mapped at.
    ever_mapped: BTreeSet<u64>,
}

/// Runs one input on a freshly built bus, its BARs placed as firmware would.
pub fn pci(data: &[u8]) {
    let Ok(ops) = Vec::<PciOp>::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mut machine = Machine::new();
    for (step, op) in ops.iter().enumerate() {
        let what = || format!("step {step} ({op:?})");
        machine.apply(op, &what);
        machine.check(&what);
    }
}

impl Machine {
    fn new() -> Machine {
        let buses = Arc::new(Buses::default());
        let mapper = BusBarMapper::new(buses.clone()).reserve("RAM", 0, RAM_END).reserve(
            "IO-APIC/LAPIC",
            IOAPIC_START,
            HIGH_RESERVED_SIZE,
        );
        let mut root = PciRoot::new(Arc::new(mapper));
        let memory = DMA_RAM.with(Arc::clone);
        let edu = EduDevice::new(memory, Arc::new(NoIrq)).expect("the edu card starts");
        let edu: SharedPciDevice = Arc::new(Mutex::new(edu));
        let config = ConfigSpace::new(TWO_BARS_IDS.0, TWO_BARS_IDS.1, 0xff_00_00, 1)
            .with_bar(0, BarKind::Memory32 { prefetchable: false }, 0x1000)
            .and_then(|c| c.with_bar(2, BarKind::Memory64 { prefetchable: true }, 0x4000))
            .expect("the BARs fit");
        let two_bars: SharedPciDevice = Arc::new(Mutex::new(TwoBars(config)));
        assert_eq!(root.add_device("edu", edu.clone()), Ok(1));
        assert_eq!(root.add_device("two-bars", two_bars.clone()), Ok(2));
        root.allocate_bars(PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END).expect("the BARs fit the window");
        let bridge = Arc::new(Mutex::new(stage07::pci::root::HostBridge::new()));
        let devices = [
            ("host-bridge", bridge as SharedPciDevice, (HOST_BRIDGE_VENDOR_ID, HOST_BRIDGE_DEVICE_ID)),
            ("edu", edu, (stage07::devices::edu::EDU_VENDOR_ID, stage07::devices::edu::EDU_DEVICE_ID)),
            ("two-bars", two_bars, TWO_BARS_IDS),
        ];
        let mut machine = Machine { root, buses, devices, config_address: 0, ever_mapped: BTreeSet::new() };
        machine.note_mappings();
        machine
    }

    fn port_read(&mut self, offset: u64, len: usize) -> u32 {
        let mut data = [0u8; 4];
        self.root.read(offset, &mut data[..len]);
        u32::from_le_bytes(data)
    }

    fn port_write(&mut self, offset: u64, len: usize, value: u32) {
        self.root.write(offset, &value.to_le_bytes()[..len]);
        if offset == 0 && len == 4 {
            self.config_address = value & CONFIG_ADDRESS_WRITABLE;
        }
    }

    fn select(&mut self, device: u8, register: usize) {
        let address = 0x8000_0000 | u32::from(device % 32) << 11 | (register as u32 & 0xfc);
        self.port_write(0, 4, address);
    }

    /// Whether CONFIG_DATA reaches a present function now, and which.
    fn selected(&self) -> Option<usize> {
        let a = self.config_address;
        let (enabled, bus, device, function) = (a >> 31 == 1, (a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 7);
        (enabled && bus == 0 && function == 0 && (device as usize) < self.devices.len()).then_some(device as usize)
    }

    fn apply(&mut self, op: &PciOp, what: &dyn Fn() -> String) {
        match *op {
            PciOp::Select { bus, other_bus, device, function, register, enable } => {
                let bus = if other_bus { u32::from(bus) } else { 0 };
                let function = u32::from(function % 8) * u32::from(function % 3 == 0);
                let address = u32::from(enable) << 31
                    | bus << 16
                    | u32::from(device % 32) << 11
                    | function << 8
                    | u32::from(register);
                self.port_write(0, 4, address);
            }
            PciOp::SelectRaw(address) => self.port_write(0, 4, address),
            PciOp::ReadData { offset, width } => {
                let (offset, len) = (u64::from(offset % 4), width.len());
                let len = len.min(4 - offset as usize);
                let value = self.port_read(DATA + offset, len);
                if self.selected().is_none() {
                    let ones = if len == 4 { u32::MAX } else { (1 << (8 * len)) - 1 };
                    assert_eq!(value, ones, "{}: an absent function reads {value:#x}", what());
                }
            }
            PciOp::WriteData { offset, width, value } => {
                let offset = u64::from(offset % 4);
                let len = width.len().min(4 - offset as usize);
                self.port_write(DATA + offset, len, value);
            }
            PciOp::Port { offset, len, write, value } => {
                let offset = u64::from(offset % 8);
                let len = usize::from(len % 4 + 1).min(8 - offset as usize);
                if write {
                    self.port_write(offset, len, value);
                } else {
                    let read = self.port_read(offset, len);
                    let ones = if len == 4 { u32::MAX } else { (1 << (8 * len)) - 1 };
                    if offset < DATA && !(offset == 0 && len == 4) {
                        assert_eq!(read, ones, "{}: port {offset} is not CONFIG_ADDRESS", what());
                    }
                }
            }
            PciOp::SizeBar { device, bar } => self.size_bar(usize::from(device % 3), usize::from(bar % 6), what),
            PciOp::MoveBar { device, bar, address } => {
                self.select(device % 3, BAR0_OFFSET + 4 * usize::from(bar % 6));
                self.port_write(DATA, 4, address);
            }
            PciOp::Command { device, value } => {
                self.select(device % 3, COMMAND_OFFSET);
                self.port_write(DATA, 2, u32::from(value));
            }
            PciOp::Mmio { device, bar, offset, size, write, value } => {
                let len = [1, 2, 4, 8][usize::from(size % 4)];
                let base = self.root.bar_mapping(device % 3, usize::from(bar % 6));
                let address = base.map_or(u64::from(offset), |base| base.wrapping_add(u64::from(offset % 0x4000)));
                if write {
                    self.buses.mmio.write(address, &value.to_le_bytes()[..len]);
                } else {
                    self.buses.mmio.read(address, &mut [0u8; 8][..len]);
                }
            }
        }
    }

    /// Linux's `__pci_read_base`: decoding off, read, all ones, read back, restore.
    fn size_bar(&mut self, number: usize, index: usize, what: &dyn Fn() -> String) {
        let register = BAR0_OFFSET + 4 * index;
        self.select(number as u8, COMMAND_OFFSET);
        let command = self.port_read(DATA, 2);
        self.port_write(DATA, 2, command & !0b10);
        self.select(number as u8, register);
        let original = self.port_read(DATA, 4);
        self.port_write(DATA, 4, u32::MAX);
        let sized = self.port_read(DATA, 4);
        self.port_write(DATA, 4, original);
        self.select(number as u8, COMMAND_OFFSET);
        self.port_write(DATA, 2, command);

        let bars = lock(&self.devices[number].1).bars();
        let expected = match bars.iter().find(|b| b.index == index || b.index + b.kind.registers() - 1 == index) {
            None => 0,
            Some(b) if b.index == index => {
                let type_bits = match b.kind {
                    BarKind::Memory32 { prefetchable } => u32::from(prefetchable) << 3,
                    BarKind::Memory64 { prefetchable } => 0b100 | u32::from(prefetchable) << 3,
                };
                (!(b.size - 1) as u32 & !0xf) | type_bits
            }
            Some(b) => (!(b.size - 1) >> 32) as u32,
        };
        assert_eq!(sized, expected, "{}: BAR register {index} of device {number} sizes as {sized:#x}", what());
    }

    fn note_mappings(&mut self) {
        for number in 0..self.devices.len() {
            for index in 0..BAR_COUNT {
                if let Some(address) = self.root.bar_mapping(number as u8, index) {
                    self.ever_mapped.insert(address);
                }
            }
        }
    }

    fn check(&mut self, what: &dyn Fn() -> String) {
        self.note_mappings();
        assert_eq!(self.port_read(0, 4), self.config_address, "{}: CONFIG_ADDRESS", what());
        let latch = self.config_address;
        // Identification of every present device, then the latch as it was.
        for number in 0..self.devices.len() {
            self.select(number as u8, 0);
            let (vendor, device) = self.devices[number].2;
            let ids = self.port_read(DATA, 4);
            assert_eq!(ids, u32::from(device) << 16 | u32::from(vendor), "{}: ids of {number}", what());
        }
        self.port_write(0, 4, latch);

        // Every mapped BAR: where the guest put it, answering, clear of reserved ranges and others.
        let mut mapped: Vec<(u64, u64, &'static str)> = Vec::new();
        for (number, (name, device, _)) in self.devices.iter().enumerate() {
            for bar in lock(device).bars() {
                let Some(address) = self.root.bar_mapping(number as u8, bar.index) else { continue };
                assert_eq!(Some(address), bar.mapping(), "{}: {name} BAR {} is mapped elsewhere", what(), bar.index);
                let end = address + bar.size;
                let reserved = [(0, RAM_END), (IOAPIC_START, IOAPIC_START + HIGH_RESERVED_SIZE)];
                let shadows = reserved.iter().any(|&(start, limit)| address < limit && start < end);
                assert!(!shadows, "{}: {name} BAR at {address:#x} shadows RAM or the APICs", what());
                mapped.push((address, end, name));
            }
        }
        mapped.sort();
        for pair in mapped.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "{}: BARs overlap: {pair:x?}", what());
        }
        for &address in &self.ever_mapped {
            let hit = self.buses.mmio.read(address, &mut [0u8; 1]);
            let owner = mapped.iter().find(|(start, end, _)| (*start..*end).contains(&address));
            match (hit, owner) {
                (None, None) => {}
                (Some(hit), Some(&(start, _, name))) => {
                    assert_eq!((hit.name, hit.offset), (name, address - start), "{}: at {address:#x}", what())
                }
                _ => panic!("{}: at {address:#x} the bus finds {hit:?}, the BARs {owner:x?}", what()),
            }
        }
    }
}
