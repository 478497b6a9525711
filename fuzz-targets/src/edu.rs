//! Stage 7's edu card through its BAR and configuration space: every register at every access
//! size, DMA in both directions with any addresses and counts, the DMA mask, the bus-master and
//! interrupt-disable bits, the CRC-32 extra, and stray writes to guest memory.
//!
//! Invariants:
//! - DMA writes guest memory only at the destination range of a transfer that was allowed
//!   (bus mastering on, the buffer side inside the card's 4 KiB, the RAM side inside RAM after
//!   the DMA mask), and writes there exactly the bytes the guest put in the buffer; a transfer
//!   into the card copies exactly those bytes (checked through the CRC-32 of the buffer);
//! - accesses of a size or BAR the card does not decode read all ones; identification is
//!   constant, the liveness register reads the inverse of what was written, the status register
//!   holds only its two bits;
//! - the INTx line follows "interrupt status ≠ 0 and Interrupt Disable clear", and is only ever
//!   told to change level (a level-triggered line never gets two raises in a row).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use stage02::memory::GuestAddress;
use stage07::devices::edu::*;
use stage07::pci::config::{COMMAND_BUS_MASTER, COMMAND_INTERRUPT_DISABLE, COMMAND_OFFSET};
use stage07::pci::{IrqLevel, PciDevice};

use crate::guest_ram::{assert_writes_within, RangeSet, TestRam};
use crate::virtio_checks::{Addr, VIRTIO_RAM};

/// The card's registers, for a fuzzer to pick by index.
const REGISTERS: [u64; 13] = [
    IDENTIFICATION_OFFSET,
    LIVENESS_OFFSET,
    FACTORIAL_OFFSET,
    STATUS_OFFSET,
    INTERRUPT_STATUS_OFFSET,
    CRC32_COUNT_OFFSET,
    CRC32_RESULT_OFFSET,
    INTERRUPT_RAISE_OFFSET,
    INTERRUPT_ACK_OFFSET,
    DMA_SOURCE_OFFSET,
    DMA_DESTINATION_OFFSET,
    DMA_COUNT_OFFSET,
    DMA_COMMAND_OFFSET,
];

/// Where an access goes in BAR 0.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Register {
    /// One of the registers, by index.
    Known(u8),
    /// Any offset in the 1 MiB BAR.
    Raw(u32),
}

impl Register {
    fn offset(self) -> u64 {
        match self {
            Register::Known(i) => REGISTERS[usize::from(i) % REGISTERS.len()],
            Register::Raw(n) => u64::from(n) % EDU_BAR_SIZE,
        }
    }
}

/// An address on the card's side of a transfer: inside or around its buffer, or anywhere.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum CardAddr {
    /// `DMA_BUFFER_START - 16 + n % (4096 + 32)`.
    Buffer(u16),
    /// Anything.
    Raw(u64),
}

impl CardAddr {
    fn get(self) -> u64 {
        match self {
            CardAddr::Buffer(n) => DMA_BUFFER_START - 16 + u64::from(n) % (DMA_BUFFER_SIZE as u64 + 32),
            CardAddr::Raw(n) => n,
        }
    }
}

/// A transfer's length.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Count {
    /// Up to 4 KiB and a bit.
    Small(u16),
    /// Anything.
    Raw(u64),
}

/// One step of the guest.
#[derive(Arbitrary, Debug)]
pub enum EduOp {
    /// A BAR read of 1, 2, 4 or 8 bytes (`size % 4`) from BAR `bar % 7` (0 is the card's).
    Read {
        /// Where.
        register: Register,
        /// Size selector.
        size: u8,
        /// BAR selector.
        bar: u8,
    },
    /// A BAR write.
    Write {
        /// Where.
        register: Register,
        /// Size selector.
        size: u8,
        /// BAR selector.
        bar: u8,
        /// Value (low bytes).
        value: u64,
    },
    /// A driver's transfer: source, destination, count, then the command.
    Dma {
        /// Buffer → RAM (otherwise RAM → buffer).
        to_ram: bool,
        /// The RAM side.
        ram: Addr,
        /// The card's side.
        card: CardAddr,
        /// Bytes.
        count: Count,
        /// Raise the DMA interrupt when done.
        irq: bool,
    },
    /// A configuration space write (the command register most of the time).
    Config {
        /// Command register if `None`.
        offset: Option<u8>,
        /// Value.
        value: u32,
    },
    /// Bytes written anywhere in guest memory.
    Poke {
        /// Where.
        at: Addr,
        /// What.
        bytes: Vec<u8>,
    },
}

/// One input.
#[derive(Arbitrary, Debug)]
pub struct EduInput {
    /// A DMA mask of `n % 40` bits instead of the default 28.
    mask_bits: Option<u8>,
    ops: Vec<EduOp>,
}

/// The INTx line: its level, and whether it was ever told to go where it already was.
#[derive(Default)]
struct Line {
    high: AtomicBool,
    calls: AtomicUsize,
    repeated: AtomicBool,
}

impl IrqLevel for Line {
    fn set_level(&self, high: bool) {
        if self.high.swap(high, Ordering::SeqCst) == high {
            self.repeated.store(true, Ordering::SeqCst);
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static RAM: TestRam = TestRam::new(&VIRTIO_RAM);
}

/// Runs one input on a fresh card.
pub fn edu(data: &[u8]) {
    let Ok(input) = Unstructured::new(data).arbitrary::<EduInput>() else { return };
    RAM.with(|ram| run(&input, ram));
}

fn access_allowed(offset: u64, len: usize) -> bool {
    len == 4 || (offset >= WIDE_REGISTERS_OFFSET && len == 8)
}

fn read(edu: &mut EduDevice, offset: u64, len: usize) -> u64 {
    let mut data = [0u8; 8];
    edu.mmio_read(EDU_BAR, offset, &mut data[..len]);
    u64::from_le_bytes(data)
}

fn run(input: &EduInput, ram: &TestRam) {
    ram.reset();
    let line = Arc::new(Line::default());
    let mut edu = EduDevice::new(ram.memory().clone(), line.clone()).expect("the edu card starts");
    let mask = match input.mask_bits {
        Some(bits) => {
            let mask = (1u64 << (bits % 40)) - 1;
            edu = edu.with_dma_mask(mask);
            mask
        }
        None => DEFAULT_DMA_MASK,
    };
    // What the guest put in the card's buffer, as far as it can know.
    let mut buffer = [0u8; DMA_BUFFER_SIZE];
    let mut written = RangeSet::default();
    let mut factorial_interrupts = false;
    for (step, op) in input.ops.iter().enumerate() {
        let what = || format!("step {step} ({op:?})");
        match *op {
            EduOp::Read { register, size, bar } => {
                let (offset, len, bar) = (register.offset(), 1 << (size % 4), usize::from(bar % 7));
                let mut data = [0u8; 8];
                edu.mmio_read(bar, offset, &mut data[..len]);
                if bar != EDU_BAR || !access_allowed(offset, len) {
                    assert!(data[..len].iter().all(|&b| b == 0xff), "{}: reads {:x?}", what(), &data[..len]);
                }
            }
            EduOp::Write { register, size, bar, value } => {
                let (offset, len, bar) = (register.offset(), 1 << (size % 4), usize::from(bar % 7));
                let decoded = bar == EDU_BAR && access_allowed(offset, len);
                factorial_interrupts |= decoded && offset == STATUS_OFFSET && value & 0x80 != 0;
                if decoded && offset == DMA_COMMAND_OFFSET && value & DMA_RUN != 0 {
                    let (source, destination, count) = (
                        read(&mut edu, DMA_SOURCE_OFFSET, 8),
                        read(&mut edu, DMA_DESTINATION_OFFSET, 8),
                        read(&mut edu, DMA_COUNT_OFFSET, 8),
                    );
                    let transfer =
                        Transfer { to_ram: value & DMA_DIRECTION_TO_RAM != 0, source, destination, count, mask };
                    let command = value.to_le_bytes();
                    transfer.check(&mut edu, ram, &mut buffer, &mut written, &what, |edu| {
                        edu.mmio_write(bar, offset, &command[..len])
                    });
                } else {
                    edu.mmio_write(bar, offset, &value.to_le_bytes()[..len]);
                }
                if decoded && offset == LIVENESS_OFFSET {
                    assert_eq!(read(&mut edu, LIVENESS_OFFSET, 4) as u32, !(value as u32), "{}: liveness", what());
                }
                if decoded && offset == CRC32_COUNT_OFFSET && (value as u32) as usize <= DMA_BUFFER_SIZE {
                    let expected = crc32(&buffer[..value as u32 as usize]);
                    let crc = read(&mut edu, CRC32_RESULT_OFFSET, 4) as u32;
                    assert_eq!(crc, expected, "{}: the CRC-32 of the buffer the guest filled", what());
                }
            }
            EduOp::Dma { to_ram, ram: ram_side, card, count, irq } => {
                let count = match count {
                    Count::Small(n) => u64::from(n) % (DMA_BUFFER_SIZE as u64 + 64),
                    Count::Raw(n) => n,
                };
                let (source, destination) =
                    if to_ram { (card.get(), ram_side.get()) } else { (ram_side.get(), card.get()) };
                edu.mmio_write(EDU_BAR, DMA_SOURCE_OFFSET, &source.to_le_bytes());
                edu.mmio_write(EDU_BAR, DMA_DESTINATION_OFFSET, &destination.to_le_bytes());
                edu.mmio_write(EDU_BAR, DMA_COUNT_OFFSET, &count.to_le_bytes());
                let direction = if to_ram { DMA_DIRECTION_TO_RAM } else { 0 };
                let command = DMA_RUN | direction | if irq { DMA_IRQ_ENABLE } else { 0 };
                let transfer = Transfer { to_ram, source, destination, count, mask };
                transfer.check(&mut edu, ram, &mut buffer, &mut written, &what, |edu| {
                    edu.mmio_write(EDU_BAR, DMA_COMMAND_OFFSET, &command.to_le_bytes()[..4])
                });
            }
            EduOp::Config { offset, value } => match offset {
                None => edu.config_write(COMMAND_OFFSET, &(value as u16).to_le_bytes()),
                Some(offset) => edu.config_write(usize::from(offset) & !3, &value.to_le_bytes()),
            },
            EduOp::Poke { at, ref bytes } => {
                if ram.memory().write(GuestAddress(at.get()), bytes).is_ok() {
                    written.add(at.get(), bytes.len() as u64);
                }
            }
        }
        assert_eq!(read(&mut edu, IDENTIFICATION_OFFSET, 4) as u32, EDU_IDENTIFICATION, "{}", what());
        let status = read(&mut edu, STATUS_OFFSET, 4) as u32;
        assert_eq!(status & !(STATUS_COMPUTING | STATUS_IRQFACT), 0, "{}: status {status:#x}", what());
        assert!(!line.repeated.load(Ordering::SeqCst), "{}: the line was set to the level it had", what());
        if !factorial_interrupts {
            // Without the factorial interrupt, only the guest's own accesses move the line.
            let pending = read(&mut edu, INTERRUPT_STATUS_OFFSET, 4) != 0;
            let disabled = edu.config().command() & COMMAND_INTERRUPT_DISABLE != 0;
            let high = line.high.load(Ordering::SeqCst);
            assert_eq!(high, pending && !disabled, "{}: INTx level (pending {pending}, disabled {disabled})", what());
        }
    }
    assert_writes_within(&ram.changed_since_reset(), &written, &|| "the card's DMA".into());
}

/// One DMA command, and what it may and must do.
struct Transfer {
    to_ram: bool,
    source: u64,
    destination: u64,
    count: u64,
    mask: u64,
}

impl Transfer {
    /// Runs `start` (the command write) and checks the transfer against the buffer the guest
    /// filled: memory changes only where allowed, with the buffer's bytes; or the buffer takes
    /// memory's bytes.
    fn check(
        &self,
        edu: &mut EduDevice,
        ram: &TestRam,
        buffer: &mut [u8; DMA_BUFFER_SIZE],
        written: &mut RangeSet,
        what: &dyn Fn() -> String,
        start: impl FnOnce(&mut EduDevice),
    ) {
        let bus_master = edu.config().command() & COMMAND_BUS_MASTER != 0;
        let (card, ram_address) =
            if self.to_ram { (self.source, self.destination) } else { (self.destination, self.source) };
        let ram_address = ram_address & self.mask;
        let in_buffer = card >= DMA_BUFFER_START
            && card.checked_add(self.count).is_some_and(|end| end <= DMA_BUFFER_START + DMA_BUFFER_SIZE as u64);
        let moves = bus_master && in_buffer && ram.contains(ram_address, self.count);
        let before = ram.snapshot();
        start(edu);
        let changed = ram.changed_since(&before);
        let mut allowed = RangeSet::default();
        if !moves {
            assert_writes_within(&changed, &allowed, &|| format!("{}: a refused transfer", what()));
            return;
        }
        let at = (card - DMA_BUFFER_START) as usize..(card - DMA_BUFFER_START + self.count) as usize;
        let mut bytes = vec![0u8; self.count as usize];
        ram.memory().read(GuestAddress(ram_address), &mut bytes).expect("checked to be RAM");
        if self.to_ram {
            allowed.add(ram_address, self.count);
            assert_writes_within(&changed, &allowed, &|| format!("{}: a transfer to RAM", what()));
            assert!(bytes == buffer[at], "{}: RAM did not get the buffer's bytes", what());
            written.add(ram_address, self.count);
        } else {
            assert!(changed.is_empty(), "{}: a transfer from RAM wrote RAM: {changed:x?}", what());
            buffer[at].copy_from_slice(&bytes);
        }
    }
}
