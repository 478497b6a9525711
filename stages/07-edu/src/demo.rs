//! `stage07 --demo pci`: bus 0 driven through ports 0xCF8/0xCFC without a guest, the way an OS
//! probes it, and the edu card driven through its BAR.
//!
//! The demo plays the OS. It sizes every BAR of the edu card and of a made-up function with the
//! other kinds of memory BAR (64-bit, prefetchable, larger than 4 GiB), writing all ones and
//! printing what reads back; places edu's BAR 0 and turns on decoding; then computes factorials
//! (including ones that wrap around 32 bits), watches the computing bit and the factorial
//! interrupt, and has the card checksum known strings with the extra CRC-32 operation. A grader
//! checks the values against the PCI specification, QEMU's `edu.rst` and zlib in a second.
//!
//! # Resources
//! - PCI Local Bus Specification 3.0, §3.2.2.3.2 (configuration mechanism #1) and §6.2.5.1
//!   (sizing a BAR: write all ones, read back, the type bits in 3:0).
//! - QEMU `docs/specs/edu.rst`: <https://www.qemu.org/docs/master/specs/edu.html>.
//! - zlib's `crc32()`; `python3 -c 'import zlib; print(hex(zlib.crc32(b"123456789")))'`.

use crate::devices::edu::{
    EduDevice, EduError, CRC32_COUNT_OFFSET, CRC32_RESULT_OFFSET, DMA_BUFFER_START, DMA_COMMAND_OFFSET,
    DMA_COUNT_OFFSET, DMA_DESTINATION_OFFSET, DMA_RUN, DMA_SOURCE_OFFSET, FACTORIAL_OFFSET, IDENTIFICATION_OFFSET,
    INTERRUPT_ACK_OFFSET, INTERRUPT_STATUS_OFFSET, STATUS_OFFSET,
};
use crate::pci::bar::BusBarMapper;
use crate::pci::config::{BarKind, ConfigError, ConfigSpace, BAR0_OFFSET, BAR_COUNT, COMMAND_OFFSET};
use crate::pci::root::{ConfigTarget, PciRoot, PciRootError, PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_PORT_COUNT};
use crate::pci::{IrqLevel, PciDevice};
use stage02::bus::BusError;
use stage02::memory::{GuestAddress, GuestMemory, MemoryError};
use stage02::vm::Buses;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The demonstrations `--demo` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Demo {
    /// BAR sizing and the edu card, without a guest.
    Pci,
}

/// What can stop the demo from setting itself up.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo's guest memory.
    #[error("demo guest memory: {0}")]
    Memory(#[from] MemoryError),
    /// A configuration space could not be built.
    #[error("demo device: {0}")]
    Config(#[from] ConfigError),
    /// The edu card could not be made.
    #[error(transparent)]
    Edu(#[from] EduError),
    /// A device could not be plugged in.
    #[error(transparent)]
    Root(#[from] PciRootError),
    /// A device could not be put on a bus.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Nothing answered an access the demo made.
    #[error("nothing answers at {0:#x}")]
    NoDevice(u64),
}

/// Where the demo puts edu's BAR 0, as firmware would.
const EDU_BAR_ADDRESS: u32 = 0xe000_0000;
/// The longest the demo waits for one factorial.
const FACTORIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `demo`, printing to stdout.
///
/// # Errors
/// When the demo cannot set itself up; never for what it shows.
pub fn run(demo: Demo) -> Result<(), DemoError> {
    match demo {
        Demo::Pci => pci(),
    }
}

/// An interrupt line that remembers its level.
#[derive(Default)]
struct Line(AtomicBool);

impl IrqLevel for Line {
    fn set_level(&self, high: bool) {
        self.0.store(high, Ordering::SeqCst);
    }
}

impl Line {
    fn level(&self) -> &'static str {
        if self.0.load(Ordering::SeqCst) {
            "high"
        } else {
            "low"
        }
    }
}

/// A function with one BAR of each other kind, to be sized (it decodes nothing).
struct BarsOnly(ConfigSpace);

impl PciDevice for BarsOnly {
    fn config(&self) -> &ConfigSpace {
        &self.0
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.0
    }
    fn mmio_read(&mut self, _bar: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn mmio_write(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
}

/// The OS's side: configuration mechanism #1 on the port bus, the card's BAR on the MMIO bus.
struct Os {
    buses: Arc<Buses>,
}

impl Os {
    fn select(&self, device: u8, register: usize) -> Result<(), DemoError> {
        let address = ConfigTarget { bus: 0, device, function: 0, register: register as u8 }.encode();
        let port = u64::from(PCI_CONFIG_ADDRESS_PORT);
        self.buses.pio.write(port, &address.to_le_bytes()).map(drop).ok_or(DemoError::NoDevice(port))
    }

    fn config_read(&self, device: u8, register: usize) -> Result<u32, DemoError> {
        self.select(device, register)?;
        let mut data = [0u8; 4];
        let port = u64::from(PCI_CONFIG_ADDRESS_PORT) + 4;
        self.buses.pio.read(port, &mut data).ok_or(DemoError::NoDevice(port))?;
        Ok(u32::from_le_bytes(data))
    }

    fn config_write(&self, device: u8, register: usize, value: u32) -> Result<(), DemoError> {
        self.select(device, register)?;
        let port = u64::from(PCI_CONFIG_ADDRESS_PORT) + 4;
        self.buses.pio.write(port, &value.to_le_bytes()).map(drop).ok_or(DemoError::NoDevice(port))
    }

    /// Sizes BAR `bar` of `device` as Linux's `__pci_read_base` does; prints the three values.
    fn size_bar(&self, name: &str, device: u8, bar: usize) -> Result<(), DemoError> {
        let register = BAR0_OFFSET + 4 * bar;
        let before = self.config_read(device, register)?;
        self.config_write(device, register, u32::MAX)?;
        let sized = self.config_read(device, register)?;
        self.config_write(device, register, before)?;
        println!("[{name}] 00:{device:02x}.0 BAR{bar}: reads {before:#010x}, all ones read back as {sized:#010x}");
        Ok(())
    }

    fn mmio_read(&self, offset: u64) -> Result<u32, DemoError> {
        let mut data = [0u8; 4];
        let address = u64::from(EDU_BAR_ADDRESS) + offset;
        self.buses.mmio.read(address, &mut data).ok_or(DemoError::NoDevice(address))?;
        Ok(u32::from_le_bytes(data))
    }

    fn mmio_write(&self, offset: u64, value: u32) -> Result<(), DemoError> {
        let address = u64::from(EDU_BAR_ADDRESS) + offset;
        self.buses.mmio.write(address, &value.to_le_bytes()).map(drop).ok_or(DemoError::NoDevice(address))
    }

    fn mmio_write64(&self, offset: u64, value: u64) -> Result<(), DemoError> {
        let address = u64::from(EDU_BAR_ADDRESS) + offset;
        self.buses.mmio.write(address, &value.to_le_bytes()).map(drop).ok_or(DemoError::NoDevice(address))
    }

    /// Starts n!, reads the status at once, then polls until the computing bit clears; prints.
    /// Returns false if it never clears.
    fn factorial(&self, tag: &str, n: u32, line: &Line) -> Result<bool, DemoError> {
        self.mmio_write(FACTORIAL_OFFSET, n)?;
        let at_once = self.mmio_read(STATUS_OFFSET)?;
        let start = Instant::now();
        let mut status = at_once;
        while status & 1 != 0 && start.elapsed() < FACTORIAL_TIMEOUT {
            std::thread::sleep(Duration::from_millis(1));
            status = self.mmio_read(STATUS_OFFSET)?;
        }
        if status & 1 != 0 {
            println!("[{tag}] {n}!: status {at_once:#x} at once, still computing after {FACTORIAL_TIMEOUT:?}");
            return Ok(false);
        }
        let result = self.mmio_read(FACTORIAL_OFFSET)?;
        let interrupt = self.mmio_read(INTERRUPT_STATUS_OFFSET)?;
        println!(
            "[{tag}] {n}! = {result} ({result:#x}); status {at_once:#x} at once, {status:#x} when done; \
             interrupt status {interrupt:#x}, INTx {}",
            line.level()
        );
        Ok(true)
    }

    /// Copies `bytes` into the card's buffer by DMA from RAM at 0x1000.
    fn dma_into_buffer(&self, memory: &GuestMemory, bytes: &[u8]) -> Result<(), DemoError> {
        memory.write(GuestAddress(0x1000), bytes)?;
        self.mmio_write64(DMA_SOURCE_OFFSET, 0x1000)?;
        self.mmio_write64(DMA_DESTINATION_OFFSET, DMA_BUFFER_START)?;
        self.mmio_write64(DMA_COUNT_OFFSET, bytes.len() as u64)?;
        self.mmio_write64(DMA_COMMAND_OFFSET, DMA_RUN)?;
        Ok(())
    }

    /// Writes `count` to the CRC-32 count register and prints both registers.
    fn crc32(&self, what: &str, count: u32) -> Result<(), DemoError> {
        self.mmio_write(CRC32_COUNT_OFFSET, count)?;
        let (count_now, crc) = (self.mmio_read(CRC32_COUNT_OFFSET)?, self.mmio_read(CRC32_RESULT_OFFSET)?);
        println!("[crc32] {what}, count {count}: count register {count_now}, crc32 {crc:#010x}");
        Ok(())
    }
}

fn pci() -> Result<(), DemoError> {
    let memory = Arc::new(GuestMemory::new(&[(0, 0x10_0000)])?);
    let buses = Arc::new(Buses::default());
    let mapper = BusBarMapper::new(Arc::clone(&buses)).reserve("RAM", 0, 0x10_0000);
    let mut root = PciRoot::new(Arc::new(mapper));
    let line = Arc::new(Line::default());
    // Slow enough that the computing bit can be seen, fast enough for the demo.
    let edu = EduDevice::new(Arc::clone(&memory), line.clone())?.with_factorial_delay(Duration::from_millis(100));
    let edu_number = root.add_device("edu", Arc::new(Mutex::new(edu)))?;
    let bars = ConfigSpace::new(0x1234, 0xbeef, 0xff0000, 0)
        .with_bar(0, BarKind::Memory64 { prefetchable: true }, 16 << 10)?
        .with_bar(2, BarKind::Memory32 { prefetchable: false }, 4 << 10)?
        .with_bar(3, BarKind::Memory32 { prefetchable: true }, 1 << 20)?
        .with_bar(4, BarKind::Memory64 { prefetchable: false }, 8 << 30)?;
    let bars_number = root.add_device("bars", Arc::new(Mutex::new(BarsOnly(bars))))?;
    buses.pio.insert("pci", u64::from(PCI_CONFIG_ADDRESS_PORT), PCI_CONFIG_PORT_COUNT, Arc::new(Mutex::new(root)))?;
    let os = Os { buses };

    println!("# sizing: BAR0 64-bit prefetchable 16 KiB, BAR2 32-bit 4 KiB, BAR3 32-bit prefetchable 1 MiB, BAR4 64-bit 8 GiB");
    for bar in 0..BAR_COUNT {
        os.size_bar("bars", bars_number, bar)?;
    }
    println!("# edu: ids, then BAR 0 (1 MiB, 32-bit) sized, placed at {EDU_BAR_ADDRESS:#x}, memory and bus master on");
    println!("[edu] ids {:#010x}", os.config_read(edu_number, 0)?);
    os.size_bar("edu", edu_number, 0)?;
    os.size_bar("edu", edu_number, 1)?;
    os.config_write(edu_number, BAR0_OFFSET, EDU_BAR_ADDRESS)?;
    os.config_write(edu_number, COMMAND_OFFSET, 0x0006)?;
    println!("[edu] BAR0 now {:#010x}; identification {:#010x}", os.config_read(edu_number, BAR0_OFFSET)?, {
        os.mmio_read(IDENTIFICATION_OFFSET)?
    });

    println!("# factorial by polling the computing bit (0x01), no interrupt asked");
    for n in [0, 1, 5, 12, 13, 20, 33, 34] {
        if !os.factorial("factorial", n, &line)? {
            break;
        }
    }
    println!("# factorial with status bit 0x80 set: interrupt 0x1 when done, then acknowledged");
    os.mmio_write(STATUS_OFFSET, 0x80)?;
    if os.factorial("factorial-irq", 6, &line)? {
        os.mmio_write(INTERRUPT_ACK_OFFSET, 0x1)?;
        let (interrupt, status) = (os.mmio_read(INTERRUPT_STATUS_OFFSET)?, os.mmio_read(STATUS_OFFSET)?);
        println!(
            "[factorial-irq] after ack: interrupt status {interrupt:#x}, status {status:#x}, INTx {}",
            line.level()
        );
    }

    println!("# the extra operation: CRC-32 of the first count bytes of the DMA buffer");
    os.dma_into_buffer(&memory, b"123456789")?;
    os.crc32("\"123456789\"", 9)?;
    os.dma_into_buffer(&memory, b"The quick brown fox jumps over the lazy dog")?;
    os.crc32("the quick brown fox", 43)?;
    os.crc32("nothing", 0)?;
    os.crc32("the whole buffer", 4096)?;
    os.crc32("one byte more than the buffer", 4097)?;
    Ok(())
}
