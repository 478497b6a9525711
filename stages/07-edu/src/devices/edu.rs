//! QEMU's `edu` device: a PCI card made for teaching driver writing, register for register.
//!
//! The card is PCI `1234:11e8`, revision 0x10, class 00ff00 ("unclassified"), with one 1 MiB
//! memory BAR and interrupt pin INTA#. Everything happens through BAR 0:
//!
//! | offset | name                | access | meaning                                                  |
//! |--------|---------------------|--------|----------------------------------------------------------|
//! | 0x00   | identification      | RO     | `0x010000ed`: major 1, minor 0, then `ed`                |
//! | 0x04   | card liveness check | RW     | reads the bitwise inverse of what was written            |
//! | 0x08   | factorial           | RW     | write n: computes n! in the background, reads the result |
//! | 0x20   | status              | RW     | 0x01 computing (RO), 0x80 raise IRQ 0x1 after a factorial |
//! | 0x24   | interrupt status    | RO     | the bits that are raising the interrupt                  |
//! | 0x40   | CRC-32 count        | RW     | *minivirt extra*: write n, CRC-32 of buffer bytes 0..n   |
//! | 0x44   | CRC-32 result       | RO     | *minivirt extra*: the CRC-32 computed at 0x40            |
//! | 0x60   | interrupt raise     | WO     | ORed into interrupt status; the line goes up             |
//! | 0x64   | interrupt ack       | WO     | cleared from interrupt status; line down when it is 0    |
//! | 0x80   | DMA source          | RW     | 64-bit address                                           |
//! | 0x88   | DMA destination     | RW     | 64-bit address                                           |
//! | 0x90   | DMA count           | RW     | bytes to transfer                                        |
//! | 0x98   | DMA command         | RW     | 0x1 start, 0x2 direction EDU→RAM, 0x4 raise IRQ 0x100    |
//!
//! Below 0x80 only 4-byte accesses count; from 0x80 on, 4 or 8 bytes. Other sizes, and offsets
//! with no register, read all ones and ignore writes, as in QEMU.
//!
//! The factorial is computed on a worker thread, not on the vCPU thread that wrote it, so a
//! driver has to poll the status register (or wait for the interrupt) like on real hardware;
//! [`EduDevice::with_factorial_delay`] makes the wait long enough to see.
//!
//! DMA moves bytes between guest RAM and the card's 4 KiB buffer, which sits at 0x40000 in
//! the card's DMA address space. As in QEMU, the buffer is reached by DMA only: BAR 0 has no
//! window onto it. RAM addresses are cut to the DMA mask (28 bits by default) as QEMU's
//! `edu_clamp_addr` does: the cut is reported as a guest error and the transfer goes on at the
//! masked address, which is why a driver calls `dma_set_mask(dev, DMA_BIT_MASK(28))` and keeps
//! its buffers below 256 MiB. A transfer outside the card's buffer, or to addresses that are
//! not RAM, is a guest error: reported, not performed, and the command still completes (old
//! QEMU aborted the whole VM there). A transfer also needs the command register's Bus Master
//! bit, which a driver sets with `pci_set_master()`.
//!
//! The INTx pin follows PCI 2.3, as QEMU's PCI core does for every device: the status
//! register's Interrupt Status bit shows whether the card asserts its interrupt, and the
//! command register's Interrupt Disable bit keeps the pin itself low. Linux's generic
//! user-space driver (`uio_pci_generic`) needs both: it masks the pin with Interrupt Disable
//! in its handler and tells its interrupts from others' by Interrupt Status.
//!
//! Not modelled: MSI (QEMU's edu has it; INTx is its default and all we offer).
//!
//! # Resources
//! - QEMU `docs/specs/edu.rst`: the register map.
//! - QEMU `hw/misc/edu.c`: the behaviour, down to the access sizes and the DMA checks.
//! - Linux `Documentation/PCI/pci.rst`: what a driver for it does (enable, BAR 0, IRQ, DMA mask).

use crate::pci::config::{
    BarKind, ConfigError, ConfigSpace, COMMAND_BUS_MASTER, COMMAND_INTERRUPT_DISABLE, STATUS_INTERRUPT,
};
use crate::pci::root::{QEMU_SUBSYSTEM_ID, QEMU_SUBSYSTEM_VENDOR_ID};
use crate::pci::{IrqLevel, PciDevice};
use stage02::bus::lock;
use stage02::guest_error::GuestErrorLog;
use stage02::memory::{GuestAddress, GuestMemory, MemoryError};
use std::io;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// PCI vendor id: QEMU (`PCI_VENDOR_ID_QEMU`).
pub const EDU_VENDOR_ID: u16 = 0x1234;
/// PCI device id of edu.
pub const EDU_DEVICE_ID: u16 = 0x11e8;
/// PCI revision id of edu.
pub const EDU_REVISION: u8 = 0x10;
/// PCI class code: base class 0x00 (pre-2.0 devices), subclass 0xff: `PCI_CLASS_OTHERS`.
pub const EDU_CLASS_CODE: u32 = 0x00_ff_00;
/// The BAR holding all registers.
pub const EDU_BAR: usize = 0;
/// Size of BAR 0: 1 MiB.
pub const EDU_BAR_SIZE: u64 = 1 << 20;
/// Interrupt pin: INTA#.
pub const EDU_INTERRUPT_PIN: u8 = 1;

/// Identification register (RO): `0xRRrr00ed`, major version RR, minor rr.
pub const IDENTIFICATION_OFFSET: u64 = 0x00;
/// Card liveness check (RW): reads the inverse of the last value written.
pub const LIVENESS_OFFSET: u64 = 0x04;
/// Factorial computation (RW): write n to start; reads n while computing, then n!.
pub const FACTORIAL_OFFSET: u64 = 0x08;
/// Status register (RW): [`STATUS_COMPUTING`] and [`STATUS_IRQFACT`].
pub const STATUS_OFFSET: u64 = 0x20;
/// Interrupt status register (RO): the values that raised the interrupt.
pub const INTERRUPT_STATUS_OFFSET: u64 = 0x24;
/// Interrupt raise register (WO): the value is ORed into interrupt status.
pub const INTERRUPT_RAISE_OFFSET: u64 = 0x60;
/// Interrupt acknowledge register (WO): the value is cleared from interrupt status.
pub const INTERRUPT_ACK_OFFSET: u64 = 0x64;
/// DMA source address (RW, 64 bits).
pub const DMA_SOURCE_OFFSET: u64 = 0x80;
/// DMA destination address (RW, 64 bits).
pub const DMA_DESTINATION_OFFSET: u64 = 0x88;
/// DMA transfer count (RW, 64 bits).
pub const DMA_COUNT_OFFSET: u64 = 0x90;
/// DMA command register (RW): [`DMA_RUN`], [`DMA_DIRECTION_TO_RAM`], [`DMA_IRQ_ENABLE`].
pub const DMA_COMMAND_OFFSET: u64 = 0x98;
/// From this offset on, 8-byte accesses are allowed too; below it only 4-byte ones.
pub const WIDE_REGISTERS_OFFSET: u64 = 0x80;

/// Value of the identification register: version 1.0.
pub const EDU_IDENTIFICATION: u32 = 0x0100_00ed;
/// Status bit 0x01 (RO): a factorial is being computed (`EDU_STATUS_COMPUTING`).
pub const STATUS_COMPUTING: u32 = 0x01;
/// Status bit 0x80 (RW): raise [`FACTORIAL_IRQ`] when a factorial is done (`EDU_STATUS_IRQFACT`).
pub const STATUS_IRQFACT: u32 = 0x80;
/// Interrupt status value raised when a factorial is done (`FACT_IRQ`).
pub const FACTORIAL_IRQ: u32 = 0x0000_0001;
/// Interrupt status value raised when a DMA transfer is done (`DMA_IRQ`).
pub const DMA_IRQ: u32 = 0x0000_0100;
/// DMA command bit 0x1: start the transfer; reads 1 until it is done (`EDU_DMA_RUN`).
pub const DMA_RUN: u64 = 0x1;
/// DMA command bit 0x2, direction: 0 = RAM → EDU buffer, 1 = EDU buffer → RAM (`EDU_DMA_DIR`).
pub const DMA_DIRECTION_TO_RAM: u64 = 0x2;
/// DMA command bit 0x4: raise [`DMA_IRQ`] when done (`EDU_DMA_IRQ`).
pub const DMA_IRQ_ENABLE: u64 = 0x4;
/// Where the card's buffer sits in its DMA address space (`DMA_START`).
pub const DMA_BUFFER_START: u64 = 0x40000;
/// Size of the card's buffer (`DMA_SIZE`).
pub const DMA_BUFFER_SIZE: usize = 4096;
/// Default DMA mask: 28 address bits, 256 MiB (QEMU's `dma_mask` property).
pub const DEFAULT_DMA_MASK: u64 = (1 << 28) - 1;

/// CRC-32 count register (RW, minivirt extra, 4-byte access): writing n computes the CRC-32 of
/// the first n bytes of the DMA buffer at once; reads the last accepted n. n > 4096 is a
/// guest error and changes nothing.
pub const CRC32_COUNT_OFFSET: u64 = 0x40;
/// CRC-32 result register (RO, minivirt extra): the CRC-32 (IEEE 802.3, as zlib's `crc32()`)
/// computed by the last accepted write to [`CRC32_COUNT_OFFSET`]; 0 before any.
pub const CRC32_RESULT_OFFSET: u64 = 0x44;

/// Errors of the edu device: one for the VMM (setting it up), the rest the guest's.
#[derive(Debug, thiserror::Error)]
pub enum EduError {
    /// The configuration space could not be built (a bug in this file).
    #[error("cannot build the edu configuration space: {0}")]
    Config(#[from] ConfigError),
    /// The factorial worker thread could not be started.
    #[error("cannot start the edu factorial thread: {0}")]
    SpawnWorker(#[source] io::Error),
    /// The DMA range is not inside the card's buffer (QEMU's `edu_check_range`).
    #[error("DMA range {address:#x}+{count:#x} is outside the buffer {DMA_BUFFER_START:#x}+{DMA_BUFFER_SIZE:#x}")]
    DmaOutsideBuffer {
        /// The buffer-side address the guest programmed.
        address: u64,
        /// The count it programmed.
        count: u64,
    },
    /// The RAM-side address has bits above the DMA mask (QEMU's `edu_clamp_addr`).
    #[error("DMA address {address:#x} is beyond the DMA mask; clamped to {clamped:#x}")]
    DmaClamped {
        /// The address the guest programmed.
        address: u64,
        /// The address used.
        clamped: u64,
    },
    /// The RAM side of the transfer is not guest RAM.
    #[error("DMA transfer failed: {0}")]
    DmaMemory(#[from] MemoryError),
    /// DMA was started with the command register's Bus Master bit clear.
    #[error("DMA started while bus mastering is disabled (command register bit 2)")]
    BusMasterDisabled,
    /// The CRC-32 count is larger than the buffer.
    #[error("CRC-32 count {0} is larger than the {DMA_BUFFER_SIZE}-byte buffer")]
    Crc32Count(u32),
}

/// The interrupt side: the interrupt status register and the INTx line it drives.
struct Interrupts {
    status: u32,
    /// The level on the pin: asserted and not disabled.
    line_high: bool,
    /// The command register's Interrupt Disable bit, as the guest last wrote it.
    intx_disabled: bool,
    line: Arc<dyn IrqLevel>,
}

impl Interrupts {
    /// `edu_raise_irq`: OR into the status; the card asserts INTx while any bit is set.
    fn raise(&mut self, bits: u32) {
        self.status |= bits;
        self.update_line();
    }

    /// `edu_lower_irq`: clear bits; the card stops asserting when none is left.
    fn lower(&mut self, bits: u32) {
        self.status &= !bits;
        self.update_line();
    }

    /// Whether the card asserts its interrupt (PCI status bit 3, Interrupt Status).
    fn asserted(&self) -> bool {
        self.status != 0
    }

    /// The guest wrote the command register: Interrupt Disable may have changed.
    fn set_intx_disabled(&mut self, disabled: bool) {
        self.intx_disabled = disabled;
        self.update_line();
    }

    fn update_line(&mut self) {
        let high = self.asserted() && !self.intx_disabled;
        if self.line_high != high {
            self.line_high = high;
            self.line.set_level(high);
        }
    }
}

/// What the vCPU threads and the factorial worker share.
struct State {
    /// The factorial register: n while computing, then n!.
    factorial: u32,
    /// The status register.
    status: u32,
    interrupts: Interrupts,
    /// How long the worker sits on a result before publishing it.
    factorial_delay: Duration,
    /// Set when the device is dropped: the worker exits.
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the worker: a factorial to compute, or time to stop.
    wake: Condvar,
}

/// The DMA registers.
#[derive(Debug, Default, Clone, Copy)]
struct DmaRegisters {
    source: u64,
    destination: u64,
    count: u64,
    command: u64,
}

// lab:begin solution stage7-edu-factorial "compute n! in wrapping 32-bit arithmetic on the worker thread, with the computing status bit and the optional factorial interrupt"
/// n! in 32-bit arithmetic, as QEMU's worker computes it (`ret *= val--`): results that
/// overflow wrap around. From 34! on the product holds 2^32 and is 0, and stays 0, so the
/// loop stops there instead of multiplying four billion times.
pub fn factorial(n: u32) -> u32 {
    let mut result = 1u32;
    for k in (1..=n).rev() {
        result = result.wrapping_mul(k);
        if result == 0 {
            break;
        }
    }
    result
}

/// The vCPU side: store n and set the computing bit, unless a computation is running (then
/// QEMU ignores the write, and so do we); wake the worker.
fn start_factorial(shared: &Shared, n: u32) {
    let mut state = lock(&shared.state);
    if state.status & STATUS_COMPUTING != 0 {
        return;
    }
    state.factorial = n;
    state.status |= STATUS_COMPUTING;
    shared.wake.notify_all();
}

/// The worker thread: waits for work, computes without holding the lock (the guest may read
/// the registers meanwhile), publishes the result, clears the computing bit, and raises
/// [`FACTORIAL_IRQ`] if the guest asked for it.
fn factorial_worker(shared: Arc<Shared>) {
    let mut state = lock(&shared.state);
    loop {
        state = shared
            .wake
            .wait_while(state, |s| s.status & STATUS_COMPUTING == 0 && !s.stopping)
            .unwrap_or_else(|e| e.into_inner());
        if state.stopping {
            return;
        }
        let (n, delay) = (state.factorial, state.factorial_delay);
        drop(state);
        let result = factorial(n);
        state = lock(&shared.state);
        if !delay.is_zero() {
            // Sleep, but wake at once if the device is dropped meanwhile.
            state = match shared.wake.wait_timeout_while(state, delay, |s| !s.stopping) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if state.stopping {
            return;
        }
        state.factorial = result;
        state.status &= !STATUS_COMPUTING;
        if state.status & STATUS_IRQFACT != 0 {
            state.interrupts.raise(FACTORIAL_IRQ);
        }
    }
}
// lab:end

/// Whether QEMU's edu accepts an access of `len` bytes at `offset` (`edu_mmio_read/write`).
fn access_allowed(offset: u64, len: usize) -> bool {
    if offset < WIDE_REGISTERS_OFFSET {
        len == 4
    } else {
        len == 4 || len == 8
    }
}

/// The edu card: configuration space, registers, DMA buffer, and the factorial worker.
///
/// # Installation
/// The VMM gives it guest RAM (for DMA) and the [`IrqLevel`] of the GSI its INTA# is wired to,
/// writes that GSI into the interrupt line register, and adds it to the
/// [`PciRoot`](crate::pci::root::PciRoot): BAR 0 then appears wherever firmware or the guest
/// puts it. Dropping the device stops its worker thread.
///
/// # Example
/// ```
/// use stage07::devices::edu::{EduDevice, IDENTIFICATION_OFFSET, EDU_IDENTIFICATION};
/// use stage07::pci::{IrqLevel, PciDevice};
/// use stage02::memory::GuestMemory;
/// use std::sync::Arc;
/// struct NoIrq;
/// impl IrqLevel for NoIrq { fn set_level(&self, _high: bool) {} }
/// let memory = Arc::new(GuestMemory::new(&[(0, 0x10000)]).unwrap());
/// let mut edu = EduDevice::new(memory, Arc::new(NoIrq)).unwrap();
/// let mut data = [0u8; 4];
/// edu.mmio_read(0, IDENTIFICATION_OFFSET, &mut data);
/// assert_eq!(u32::from_le_bytes(data), EDU_IDENTIFICATION);
/// ```
pub struct EduDevice {
    config: ConfigSpace,
    liveness: u32,
    dma: DmaRegisters,
    dma_buffer: Box<[u8; DMA_BUFFER_SIZE]>,
    dma_mask: u64,
    crc32_count: u32,
    crc32_result: u32,
    memory: Arc<GuestMemory>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    guest_errors: GuestErrorLog,
}

impl EduDevice {
    /// A card that DMAs to and from `memory` and signals on `irq`, and its worker thread.
    ///
    /// # Errors
    /// [`EduError::SpawnWorker`] when the thread cannot be started.
    pub fn new(memory: Arc<GuestMemory>, irq: Arc<dyn IrqLevel>) -> Result<Self, EduError> {
        let config = ConfigSpace::new(EDU_VENDOR_ID, EDU_DEVICE_ID, EDU_CLASS_CODE, EDU_REVISION)
            .with_subsystem(QEMU_SUBSYSTEM_VENDOR_ID, QEMU_SUBSYSTEM_ID)
            .with_interrupt_pin(EDU_INTERRUPT_PIN)
            .with_bar(EDU_BAR, BarKind::Memory32 { prefetchable: false }, EDU_BAR_SIZE)?;
        let interrupts = Interrupts { status: 0, line_high: false, intx_disabled: false, line: irq };
        let state = State { factorial: 0, status: 0, interrupts, factorial_delay: Duration::ZERO, stopping: false };
        let shared = Arc::new(Shared { state: Mutex::new(state), wake: Condvar::new() });
        let worker_shared = Arc::clone(&shared);
        let worker = stage03::threads::spawn("edu-factorial", move || factorial_worker(worker_shared))
            .map_err(EduError::SpawnWorker)?;
        Ok(EduDevice {
            config,
            liveness: 0,
            dma: DmaRegisters::default(),
            dma_buffer: Box::new([0; DMA_BUFFER_SIZE]),
            dma_mask: DEFAULT_DMA_MASK,
            crc32_count: 0,
            crc32_result: 0,
            memory,
            shared,
            worker: Some(worker),
            guest_errors: GuestErrorLog::default(),
        })
    }

    /// Uses another DMA mask (QEMU: `-device edu,dma_mask=...`).
    pub fn with_dma_mask(mut self, mask: u64) -> Self {
        self.dma_mask = mask;
        self
    }

    /// Makes every factorial take at least `delay`, so that a driver that does not wait for
    /// the computing bit reads the wrong value (QEMU's source wishes it did this).
    pub fn with_factorial_delay(self, delay: Duration) -> Self {
        lock(&self.shared.state).factorial_delay = delay;
        self
    }

    /// Guest errors seen so far.
    pub fn guest_errors(&self) -> &GuestErrorLog {
        &self.guest_errors
    }

    fn read_register(&self, offset: u64) -> u64 {
        let state = lock(&self.shared.state);
        match offset {
            IDENTIFICATION_OFFSET => u64::from(EDU_IDENTIFICATION),
            LIVENESS_OFFSET => u64::from(self.liveness),
            FACTORIAL_OFFSET => u64::from(state.factorial),
            STATUS_OFFSET => u64::from(state.status),
            INTERRUPT_STATUS_OFFSET => u64::from(state.interrupts.status),
            CRC32_COUNT_OFFSET => u64::from(self.crc32_count),
            CRC32_RESULT_OFFSET => u64::from(self.crc32_result),
            DMA_SOURCE_OFFSET => self.dma.source,
            DMA_DESTINATION_OFFSET => self.dma.destination,
            DMA_COUNT_OFFSET => self.dma.count,
            DMA_COMMAND_OFFSET => self.dma.command,
            // Write-only registers and holes read all ones, as QEMU's `val = ~0ULL` default.
            _ => u64::MAX,
        }
    }

    // qa:begin stage7-edu-write-register
    fn write_register(&mut self, offset: u64, value: u64) {
        // Below 0x80 accesses are 4 bytes: these registers take the low 32 bits.
        let value32 = value as u32;
        let dma_running = self.dma.command & DMA_RUN != 0;
        match offset {
            LIVENESS_OFFSET => self.liveness = !value32,
            FACTORIAL_OFFSET => start_factorial(&self.shared, value32),
            STATUS_OFFSET => {
                // Only IRQFACT is writable; the computing bit belongs to the worker.
                let mut state = lock(&self.shared.state);
                state.status = (state.status & !STATUS_IRQFACT) | (value32 & STATUS_IRQFACT);
            }
            INTERRUPT_RAISE_OFFSET => lock(&self.shared.state).interrupts.raise(value32),
            INTERRUPT_ACK_OFFSET => lock(&self.shared.state).interrupts.lower(value32),
            CRC32_COUNT_OFFSET => self.start_crc32(value32),
            // The DMA registers are frozen while a transfer runs (QEMU's `dma_rw`). Ours run
            // synchronously, so the guest never finds one running; the rule stays for clarity.
            DMA_SOURCE_OFFSET if !dma_running => self.dma.source = value,
            DMA_DESTINATION_OFFSET if !dma_running => self.dma.destination = value,
            DMA_COUNT_OFFSET if !dma_running => self.dma.count = value,
            // A command without the start bit is ignored entirely, as in QEMU.
            DMA_COMMAND_OFFSET if !dma_running && value & DMA_RUN != 0 => {
                self.dma.command = value;
                self.run_dma();
            }
            _ => {}
        }
    }
    // qa:end stage7-edu-write-register

    // qa:begin stage7-edu-dma
    /// Runs the transfer the guest programmed, then completes the command like QEMU's
    /// `edu_dma_timer`: the start bit clears and [`DMA_IRQ`] is raised if asked. A refused
    /// transfer completes too (without moving data), so a driver waiting for it never hangs.
    fn run_dma(&mut self) {
        if let Err(err) = self.dma_transfer() {
            self.guest_errors.report("edu", &err);
        }
        self.dma.command &= !DMA_RUN;
        if self.dma.command & DMA_IRQ_ENABLE != 0 {
            lock(&self.shared.state).interrupts.raise(DMA_IRQ);
        }
    }

    fn dma_transfer(&mut self) -> Result<(), EduError> {
        if self.config.command() & COMMAND_BUS_MASTER == 0 {
            return Err(EduError::BusMasterDisabled);
        }
        let DmaRegisters { source, destination, count, command } = self.dma;
        if command & DMA_DIRECTION_TO_RAM == 0 {
            // RAM → buffer: the destination is a buffer address, the source a RAM address.
            let buffer = Self::dma_buffer_range(destination, count)?;
            let source = self.clamp_dma_address(source);
            self.memory.read(source, &mut self.dma_buffer[buffer])?;
        } else {
            // Buffer → RAM.
            let buffer = Self::dma_buffer_range(source, count)?;
            let destination = self.clamp_dma_address(destination);
            self.memory.write(destination, &self.dma_buffer[buffer])?;
        }
        Ok(())
    }

    /// QEMU's `edu_clamp_addr`: a RAM address is cut to the DMA mask, as a device with fewer
    /// address lines would; a guest error, but the transfer goes on at the clamped address.
    fn clamp_dma_address(&mut self, address: u64) -> GuestAddress {
        let clamped = address & self.dma_mask;
        if clamped != address {
            self.guest_errors.report("edu", &EduError::DmaClamped { address, clamped });
        }
        GuestAddress(clamped)
    }

    /// QEMU's `edu_check_range`: the bytes of the buffer that `[address, address + count)` covers,
    /// if it lies entirely inside it (without wrapping around).
    fn dma_buffer_range(address: u64, count: u64) -> Result<Range<usize>, EduError> {
        let buffer_end = DMA_BUFFER_START + DMA_BUFFER_SIZE as u64;
        match address.checked_add(count) {
            Some(end) if address >= DMA_BUFFER_START && end <= buffer_end => {
                Ok((address - DMA_BUFFER_START) as usize..(end - DMA_BUFFER_START) as usize)
            }
            _ => Err(EduError::DmaOutsideBuffer { address, count }),
        }
    }
    // qa:end stage7-edu-dma
}

// lab:begin solution stage7-edu-extra "add the extra edu operation: the CRC-32 (as zlib computes it) of the first count bytes of the DMA buffer"
/// The CRC-32 polynomial of IEEE 802.3, bit-reversed (the "reflected" form zlib uses).
const CRC32_POLYNOMIAL: u32 = 0xedb8_8320;

/// CRC-32 as zlib's `crc32()` and Ethernet compute it: reflected, initial value and final
/// XOR all ones. Bit by bit: slow, short, and easy to check against `python3 -c
/// 'import zlib; print(hex(zlib.crc32(b"123456789")))'` (0xcbf43926).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            // Shift one bit out; if it was 1, divide by (XOR with) the polynomial.
            let divide = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (CRC32_POLYNOMIAL & divide);
        }
    }
    !crc
}

impl EduDevice {
    /// The extra operation: CRC-32 of the first `count` bytes of the DMA buffer, computed at
    /// once on the vCPU thread (4 KiB at most, so no worker is needed).
    fn start_crc32(&mut self, count: u32) {
        let Some(bytes) = self.dma_buffer.get(..count as usize) else {
            self.guest_errors.report("edu", &EduError::Crc32Count(count));
            return;
        };
        self.crc32_result = crc32(bytes);
        self.crc32_count = count;
    }
}
// lab:end

impl PciDevice for EduDevice {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    // qa:begin stage7-intx
    fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        // Interrupt Status is the card's live state, which the factorial worker changes too.
        let asserted = lock(&self.shared.state).interrupts.asserted();
        self.config.set_status_bits(STATUS_INTERRUPT, asserted);
        self.config.read(offset, data);
    }

    fn config_write(&mut self, offset: usize, data: &[u8]) {
        self.config.write(offset, data);
        let disabled = self.config.command() & COMMAND_INTERRUPT_DISABLE != 0;
        lock(&self.shared.state).interrupts.set_intx_disabled(disabled);
    }
    // qa:end stage7-intx

    fn mmio_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if bar != EDU_BAR || !access_allowed(offset, data.len()) {
            data.fill(0xff);
            return;
        }
        let value = self.read_register(offset).to_le_bytes();
        data.copy_from_slice(&value[..data.len()]);
    }

    fn mmio_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if bar != EDU_BAR || !access_allowed(offset, data.len()) {
            return;
        }
        let mut value = [0u8; 8];
        value[..data.len()].copy_from_slice(data);
        self.write_register(offset, u64::from_le_bytes(value));
    }
}

impl Drop for EduDevice {
    fn drop(&mut self) {
        lock(&self.shared.state).stopping = true;
        self.shared.wake.notify_all();
        if let Some(worker) = self.worker.take() {
            // The worker never panics; if it somehow did, there is nothing left to clean up.
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::config::{
        BAR0_OFFSET, COMMAND_MEMORY_SPACE, COMMAND_OFFSET, INTERRUPT_PIN_OFFSET, SUBSYSTEM_VENDOR_ID_OFFSET,
        VENDOR_ID_OFFSET,
    };
    use std::time::Instant;

    /// Remembers every level change of the line.
    #[derive(Default)]
    struct IrqRecorder {
        levels: Mutex<Vec<bool>>,
    }

    impl IrqLevel for IrqRecorder {
        fn set_level(&self, high: bool) {
            self.levels.lock().unwrap().push(high);
        }
    }

    impl IrqRecorder {
        fn levels(&self) -> Vec<bool> {
            self.levels.lock().unwrap().clone()
        }
        fn is_high(&self) -> bool {
            self.levels().last().copied().unwrap_or(false)
        }
    }

    /// RAM at 0..64 KiB, and one page at 256 MiB: just past the 28-bit DMA mask.
    const HIGH_PAGE: u64 = 0x1000_0000;

    struct Fixture {
        edu: EduDevice,
        memory: Arc<GuestMemory>,
        irq: Arc<IrqRecorder>,
    }

    fn fixture() -> Fixture {
        let memory = Arc::new(GuestMemory::new(&[(0, 0x10000), (HIGH_PAGE, 0x1000)]).unwrap());
        let irq = Arc::new(IrqRecorder::default());
        let mut edu = EduDevice::new(memory.clone(), irq.clone()).unwrap();
        // What a driver's pci_enable_device() and pci_set_master() do.
        let command = COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER;
        edu.config_write(COMMAND_OFFSET, &command.to_le_bytes());
        Fixture { edu, memory, irq }
    }

    fn read32(edu: &mut EduDevice, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        edu.mmio_read(EDU_BAR, offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn write32(edu: &mut EduDevice, offset: u64, value: u32) {
        edu.mmio_write(EDU_BAR, offset, &value.to_le_bytes());
    }

    fn read64(edu: &mut EduDevice, offset: u64) -> u64 {
        let mut data = [0u8; 8];
        edu.mmio_read(EDU_BAR, offset, &mut data);
        u64::from_le_bytes(data)
    }

    fn write64(edu: &mut EduDevice, offset: u64, value: u64) {
        edu.mmio_write(EDU_BAR, offset, &value.to_le_bytes());
    }

    /// Polls the status register like a driver until the computing bit clears.
    fn wait_for_factorial(edu: &mut EduDevice) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while read32(edu, STATUS_OFFSET) & STATUS_COMPUTING != 0 {
            assert!(Instant::now() < deadline, "the factorial never finished");
            std::thread::yield_now();
        }
        read32(edu, FACTORIAL_OFFSET)
    }

    fn dma(edu: &mut EduDevice, source: u64, destination: u64, count: u64, command: u64) {
        write64(edu, DMA_SOURCE_OFFSET, source);
        write64(edu, DMA_DESTINATION_OFFSET, destination);
        write64(edu, DMA_COUNT_OFFSET, count);
        write64(edu, DMA_COMMAND_OFFSET, command);
        assert_eq!(read64(edu, DMA_COMMAND_OFFSET) & DMA_RUN, 0, "the start bit clears when done");
    }

    /// The first `len` bytes of the card's buffer, fetched by DMA to RAM at 0x8000.
    fn buffer_contents(edu: &mut EduDevice, memory: &GuestMemory, len: usize) -> Vec<u8> {
        dma(edu, DMA_BUFFER_START, 0x8000, len as u64, DMA_RUN | DMA_DIRECTION_TO_RAM);
        let mut data = vec![0u8; len];
        memory.read(GuestAddress(0x8000), &mut data).unwrap();
        data
    }

    #[test]
    fn config_space_is_qemus_edu() {
        let Fixture { mut edu, .. } = fixture();
        let config = edu.config();
        assert_eq!(config.read_u32(VENDOR_ID_OFFSET), 0x11e8_1234);
        assert_eq!(config.read_u32(0x08), 0x00ff_0010, "class 00ff00, revision 0x10");
        assert_eq!(config.read_u32(SUBSYSTEM_VENDOR_ID_OFFSET), 0x1100_1af4);
        assert_eq!(config.read_u8(INTERRUPT_PIN_OFFSET), EDU_INTERRUPT_PIN);
        edu.config_write(BAR0_OFFSET, &u32::MAX.to_le_bytes());
        assert_eq!(edu.config().read_u32(BAR0_OFFSET), 0xfff0_0000, "1 MiB, 32-bit, not prefetchable");
    }

    #[test]
    fn identification_is_read_only() {
        let Fixture { mut edu, .. } = fixture();
        assert_eq!(read32(&mut edu, IDENTIFICATION_OFFSET), EDU_IDENTIFICATION);
        write32(&mut edu, IDENTIFICATION_OFFSET, 0);
        assert_eq!(read32(&mut edu, IDENTIFICATION_OFFSET), 0x0100_00ed);
    }

    #[test]
    fn liveness_check_reads_the_inverse() {
        let Fixture { mut edu, .. } = fixture();
        assert_eq!(read32(&mut edu, LIVENESS_OFFSET), 0, "nothing written yet");
        write32(&mut edu, LIVENESS_OFFSET, 0x1234_5678);
        assert_eq!(read32(&mut edu, LIVENESS_OFFSET), 0xedcb_a987);
    }

    #[test]
    fn factorials_0_to_12_are_computed_in_the_background() {
        let Fixture { mut edu, irq, .. } = fixture();
        let mut expected = 1u32;
        for n in 0..=12 {
            expected *= n.max(1);
            write32(&mut edu, FACTORIAL_OFFSET, n);
            assert_eq!(wait_for_factorial(&mut edu), expected, "{n}!");
        }
        assert_eq!(read32(&mut edu, INTERRUPT_STATUS_OFFSET), 0, "status bit 0x80 was clear");
        assert!(irq.levels().is_empty());
    }

    #[test]
    fn factorials_that_overflow_wrap_like_qemus() {
        assert_eq!(factorial(13), (6_227_020_800u64 % (1 << 32)) as u32);
        assert_eq!(factorial(33), 0x8000_0000);
        assert_eq!(factorial(34), 0);
        assert_eq!(factorial(u32::MAX), 0, "quickly");
        let Fixture { mut edu, .. } = fixture();
        write32(&mut edu, FACTORIAL_OFFSET, 13);
        assert_eq!(wait_for_factorial(&mut edu), 1_932_053_504);
    }

    #[test]
    fn a_finished_factorial_raises_interrupt_1_when_asked() {
        let Fixture { mut edu, irq, .. } = fixture();
        write32(&mut edu, STATUS_OFFSET, STATUS_IRQFACT);
        assert_eq!(read32(&mut edu, STATUS_OFFSET), STATUS_IRQFACT);
        write32(&mut edu, FACTORIAL_OFFSET, 5);
        assert_eq!(wait_for_factorial(&mut edu), 120);
        // The worker clears the computing bit and raises under one lock: no window between.
        assert_eq!(read32(&mut edu, INTERRUPT_STATUS_OFFSET), FACTORIAL_IRQ);
        assert!(irq.is_high());
        write32(&mut edu, INTERRUPT_ACK_OFFSET, FACTORIAL_IRQ);
        assert_eq!(irq.levels(), [true, false]);
    }

    #[test]
    fn the_computing_bit_is_read_only() {
        let Fixture { mut edu, .. } = fixture();
        write32(&mut edu, STATUS_OFFSET, STATUS_COMPUTING | STATUS_IRQFACT);
        assert_eq!(read32(&mut edu, STATUS_OFFSET), STATUS_IRQFACT);
        write32(&mut edu, STATUS_OFFSET, 0);
        assert_eq!(read32(&mut edu, STATUS_OFFSET), 0);
    }

    #[test]
    fn writes_to_the_factorial_while_computing_are_ignored() {
        let Fixture { edu, .. } = fixture();
        // Long enough that the test never races the worker; dropping the device ends it.
        let mut edu = edu.with_factorial_delay(Duration::from_secs(3600));
        write32(&mut edu, FACTORIAL_OFFSET, 5);
        write32(&mut edu, FACTORIAL_OFFSET, 7);
        assert_eq!(read32(&mut edu, STATUS_OFFSET) & STATUS_COMPUTING, STATUS_COMPUTING);
        assert_eq!(read32(&mut edu, FACTORIAL_OFFSET), 5, "still the operand, and the first one");
        let started = Instant::now();
        drop(edu);
        assert!(started.elapsed() < Duration::from_secs(60), "drop does not wait for the delay");
    }

    #[test]
    fn a_slow_factorial_is_not_ready_until_the_status_says_so() {
        let Fixture { edu, .. } = fixture();
        let mut edu = edu.with_factorial_delay(Duration::from_millis(100));
        let started = Instant::now();
        write32(&mut edu, FACTORIAL_OFFSET, 6);
        assert_eq!(read32(&mut edu, STATUS_OFFSET), STATUS_COMPUTING, "set by the write itself");
        assert_eq!(wait_for_factorial(&mut edu), 720);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn raise_and_acknowledge_drive_the_status_and_the_line() {
        let Fixture { mut edu, irq, .. } = fixture();
        write32(&mut edu, INTERRUPT_RAISE_OFFSET, 0);
        assert!(irq.levels().is_empty(), "raising nothing raises nothing");
        write32(&mut edu, INTERRUPT_RAISE_OFFSET, 0x5);
        write32(&mut edu, INTERRUPT_RAISE_OFFSET, 0x8000_0000);
        assert_eq!(read32(&mut edu, INTERRUPT_STATUS_OFFSET), 0x8000_0005);
        assert!(irq.is_high());
        write32(&mut edu, INTERRUPT_ACK_OFFSET, 0x8000_0001);
        assert_eq!(read32(&mut edu, INTERRUPT_STATUS_OFFSET), 0x4);
        assert!(irq.is_high(), "a bit is still set");
        write32(&mut edu, INTERRUPT_ACK_OFFSET, 0x4);
        assert_eq!(read32(&mut edu, INTERRUPT_STATUS_OFFSET), 0);
        assert_eq!(irq.levels(), [true, false], "one rise, one fall");
        write32(&mut edu, INTERRUPT_STATUS_OFFSET, 0x1);
        assert_eq!(read32(&mut edu, INTERRUPT_STATUS_OFFSET), 0, "interrupt status is read-only");
        assert_eq!(read32(&mut edu, INTERRUPT_RAISE_OFFSET), u32::MAX, "write-only");
        assert_eq!(read32(&mut edu, INTERRUPT_ACK_OFFSET), u32::MAX, "write-only");
    }

    /// What uio_pci_generic's interrupt handler does: check Interrupt Status, mask the pin with
    /// Interrupt Disable; user space acknowledges the card and unmasks.
    #[test]
    fn intx_status_and_disable_follow_pci_2_3() {
        let Fixture { mut edu, irq, .. } = fixture();
        let status = |edu: &mut EduDevice| {
            let mut data = [0u8; 2];
            edu.config_read(crate::pci::config::STATUS_OFFSET, &mut data);
            u16::from_le_bytes(data) & STATUS_INTERRUPT != 0
        };
        let set_command = |edu: &mut EduDevice, disable: bool| {
            let mut command = COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER;
            if disable {
                command |= COMMAND_INTERRUPT_DISABLE;
            }
            edu.config_write(COMMAND_OFFSET, &command.to_le_bytes());
        };
        assert!(!status(&mut edu));
        write32(&mut edu, INTERRUPT_RAISE_OFFSET, 0x1);
        assert!(status(&mut edu) && irq.is_high(), "asserted: status bit and pin");
        set_command(&mut edu, true);
        assert!(status(&mut edu), "masking the pin leaves the status");
        assert!(!irq.is_high(), "Interrupt Disable lowers the pin");
        write32(&mut edu, INTERRUPT_ACK_OFFSET, 0x1);
        assert!(!status(&mut edu));
        set_command(&mut edu, false);
        assert!(!irq.is_high(), "unmasked with nothing pending: still low");
        write32(&mut edu, INTERRUPT_RAISE_OFFSET, 0x100);
        assert!(irq.is_high());
        assert_eq!(irq.levels(), [true, false, true]);
    }

    #[test]
    fn dma_round_trip_ram_to_buffer_to_ram() {
        let Fixture { mut edu, memory, irq } = fixture();
        let pattern: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(7)).collect();
        memory.write(GuestAddress(0x1000), &pattern).unwrap();
        // edu.rst's example: 100 bytes in at the buffer's start, then back out to addr + 100.
        dma(&mut edu, 0x1000, DMA_BUFFER_START, 100, DMA_RUN);
        dma(&mut edu, DMA_BUFFER_START, 0x1000 + 100, 100, DMA_RUN | DMA_DIRECTION_TO_RAM);
        let mut back = vec![0u8; 100];
        memory.read(GuestAddress(0x1064), &mut back).unwrap();
        assert_eq!(back, pattern);
        // At an offset inside the buffer, with the completion interrupt.
        dma(&mut edu, 0x1000, DMA_BUFFER_START + 0xf9c, 100, DMA_RUN | DMA_IRQ_ENABLE);
        assert_eq!(read32(&mut edu, INTERRUPT_STATUS_OFFSET), DMA_IRQ);
        assert!(irq.is_high());
        dma(&mut edu, DMA_BUFFER_START + 0xf9c, 0x3000, 100, DMA_RUN | DMA_DIRECTION_TO_RAM);
        memory.read(GuestAddress(0x3000), &mut back).unwrap();
        assert_eq!(back, pattern);
        assert_eq!(read64(&mut edu, DMA_COMMAND_OFFSET), DMA_DIRECTION_TO_RAM, "the command reads back");
        assert_eq!(edu.guest_errors().count(), 0);
    }

    #[test]
    fn dma_outside_the_buffer_is_refused_and_the_card_goes_on() {
        let Fixture { mut edu, memory, irq } = fixture();
        memory.write(GuestAddress(0x1000), &[0xaa; 0x200]).unwrap();
        let bad = [
            (DMA_BUFFER_START + 0xf00, 0x101),       // runs past the end
            (DMA_BUFFER_START - 1, 0x10),            // starts before it
            (DMA_BUFFER_START + 0x10, u64::MAX - 8), // wraps around
            (0x1000, 0x10),                          // RAM address where the buffer goes
        ];
        for (i, (buffer_address, count)) in bad.into_iter().enumerate() {
            dma(&mut edu, 0x1000, buffer_address, count, DMA_RUN | DMA_IRQ_ENABLE);
            assert_eq!(edu.guest_errors().count(), 2 * i as u64 + 1);
            assert!(edu.guest_errors().last().unwrap().contains("outside the buffer"));
            dma(&mut edu, buffer_address, 0x2000, count, DMA_RUN | DMA_DIRECTION_TO_RAM);
            assert_eq!(edu.guest_errors().count(), 2 * i as u64 + 2);
            assert_eq!(memory.read_obj::<u64>(GuestAddress(0x2000)).unwrap(), 0, "RAM untouched");
        }
        assert_eq!(buffer_contents(&mut edu, &memory, 16), [0; 16], "buffer untouched");
        assert_eq!(read32(&mut edu, INTERRUPT_STATUS_OFFSET), DMA_IRQ, "refused commands still complete");
        assert!(irq.is_high());
        // A zero-byte transfer is no error (current QEMU's check allows it).
        dma(&mut edu, 0x1000, DMA_BUFFER_START, 0, DMA_RUN);
        // And a good transfer still works.
        dma(&mut edu, 0x1000, DMA_BUFFER_START, 0x10, DMA_RUN);
        assert_eq!(buffer_contents(&mut edu, &memory, 16), [0xaa; 16]);
        assert_eq!(edu.guest_errors().count(), 8);
    }

    #[test]
    fn edu_guest_errors_are_reported_like_every_other_device() {
        // The card keeps its own log for these tests, but reports through stage 2's reporter:
        // the machine-wide count (and the shared printing limit) include its errors. Other
        // tests report in parallel, so the count grows by at least ours.
        let Fixture { mut edu, .. } = fixture();
        let before = stage02::guest_error::count();
        dma(&mut edu, 0x1000, DMA_BUFFER_START - 1, 0x10, DMA_RUN);
        assert_eq!(edu.guest_errors().count(), 1);
        assert!(stage02::guest_error::count() > before);
    }

    #[test]
    fn dma_to_or_from_addresses_outside_ram_is_refused() {
        let Fixture { mut edu, memory, .. } = fixture();
        memory.write(GuestAddress(0xff00), &[0x55; 0x100]).unwrap();
        // Not RAM (and inside the mask); and a range that runs off the end of a region.
        dma(&mut edu, 0x0800_0000, DMA_BUFFER_START, 0x10, DMA_RUN);
        dma(&mut edu, 0xff80, DMA_BUFFER_START, 0x100, DMA_RUN);
        assert_eq!(edu.guest_errors().count(), 2);
        assert!(edu.guest_errors().last().unwrap().contains("not inside guest RAM"));
        assert_eq!(buffer_contents(&mut edu, &memory, 16), [0; 16], "nothing was copied");
        dma(&mut edu, DMA_BUFFER_START, 0x0800_0000, 0x10, DMA_RUN | DMA_DIRECTION_TO_RAM);
        assert_eq!(edu.guest_errors().count(), 3);
        dma(&mut edu, 0xff00, DMA_BUFFER_START, 0x10, DMA_RUN);
        assert_eq!(buffer_contents(&mut edu, &memory, 16), [0x55; 16], "still working");
    }

    #[test]
    fn dma_beyond_the_28_bit_mask_is_clamped_like_qemu() {
        let Fixture { mut edu, memory, .. } = fixture();
        memory.write(GuestAddress(0x1000), &[0x77; 16]).unwrap();
        dma(&mut edu, 0x1000, DMA_BUFFER_START, 16, DMA_RUN);
        // The driver forgot dma_set_mask(): 0x1000_0100 loses bit 28 and becomes 0x100.
        dma(&mut edu, DMA_BUFFER_START, HIGH_PAGE + 0x100, 16, DMA_RUN | DMA_DIRECTION_TO_RAM);
        assert_eq!(memory.read_obj::<[u8; 16]>(GuestAddress(HIGH_PAGE + 0x100)).unwrap(), [0; 16]);
        assert_eq!(memory.read_obj::<[u8; 16]>(GuestAddress(0x100)).unwrap(), [0x77; 16]);
        assert_eq!(edu.guest_errors().count(), 1);
        assert!(edu.guest_errors().last().unwrap().contains("clamped to 0x100"));

        // With a wider mask (QEMU's dma_mask property) the address is used as is.
        let mut edu = edu.with_dma_mask(u64::MAX);
        dma(&mut edu, DMA_BUFFER_START, HIGH_PAGE + 0x100, 16, DMA_RUN | DMA_DIRECTION_TO_RAM);
        assert_eq!(memory.read_obj::<[u8; 16]>(GuestAddress(HIGH_PAGE + 0x100)).unwrap(), [0x77; 16]);
        assert_eq!(edu.guest_errors().count(), 1);
    }

    #[test]
    fn dma_needs_bus_mastering() {
        let Fixture { mut edu, memory, .. } = fixture();
        memory.write(GuestAddress(0x1000), &[0x33; 16]).unwrap();
        edu.config_write(COMMAND_OFFSET, &COMMAND_MEMORY_SPACE.to_le_bytes());
        dma(&mut edu, 0x1000, DMA_BUFFER_START, 16, DMA_RUN);
        assert!(edu.guest_errors().last().unwrap().contains("bus mastering"));
        edu.config_write(COMMAND_OFFSET, &(COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER).to_le_bytes());
        assert_eq!(buffer_contents(&mut edu, &memory, 16), [0; 16]);
    }

    #[test]
    fn dma_registers_take_4_or_8_byte_accesses() {
        let Fixture { mut edu, .. } = fixture();
        write64(&mut edu, DMA_SOURCE_OFFSET, 0x1_2345_6789);
        assert_eq!(read64(&mut edu, DMA_SOURCE_OFFSET), 0x1_2345_6789);
        assert_eq!(read32(&mut edu, DMA_SOURCE_OFFSET), 0x2345_6789, "low half");
        assert_eq!(read32(&mut edu, DMA_SOURCE_OFFSET + 4), u32::MAX, "no register at 0x84");
        write32(&mut edu, DMA_SOURCE_OFFSET, 5);
        assert_eq!(read64(&mut edu, DMA_SOURCE_OFFSET), 5, "a 4-byte write replaces all 64 bits");
        write32(&mut edu, DMA_COMMAND_OFFSET, DMA_DIRECTION_TO_RAM as u32);
        assert_eq!(read64(&mut edu, DMA_COMMAND_OFFSET), 0, "ignored without the start bit");
    }

    #[test]
    fn wrong_access_sizes_are_ignored() {
        let Fixture { mut edu, .. } = fixture();
        write32(&mut edu, LIVENESS_OFFSET, 0);
        for len in [1, 2, 8] {
            edu.mmio_write(EDU_BAR, LIVENESS_OFFSET, &vec![0x11; len]);
            let mut data = vec![0u8; len];
            edu.mmio_read(EDU_BAR, IDENTIFICATION_OFFSET, &mut data);
            assert_eq!(data, vec![0xff; len], "{len}-byte read below 0x80");
        }
        assert_eq!(read32(&mut edu, LIVENESS_OFFSET), u32::MAX, "the 4-byte write of 0 stuck, nothing else");
        for len in [1, 2] {
            edu.mmio_write(EDU_BAR, DMA_COUNT_OFFSET, &vec![0x11; len]);
            let mut data = vec![0u8; len];
            edu.mmio_read(EDU_BAR, DMA_COUNT_OFFSET, &mut data);
            assert_eq!(data, vec![0xff; len], "{len}-byte read at 0x90");
        }
        assert_eq!(read64(&mut edu, DMA_COUNT_OFFSET), 0);
        // Holes, the buffer's offset (QEMU has no BAR window onto it) and other BARs.
        for offset in [0x0c, 0x28, DMA_BUFFER_START, EDU_BAR_SIZE - 4] {
            assert_eq!(read32(&mut edu, offset), u32::MAX, "{offset:#x}");
        }
        let mut data = [0u8; 4];
        edu.mmio_read(1, IDENTIFICATION_OFFSET, &mut data);
        assert_eq!(data, [0xff; 4]);
    }

    #[test]
    fn edu_answers_through_the_host_bridge_and_the_mmio_bus() {
        use crate::pci::bar::{BusBarMapper, PCI_MMIO_WINDOW_END, PCI_MMIO_WINDOW_START};
        use crate::pci::config::INTERRUPT_LINE_OFFSET;
        use crate::pci::root::PCI_CONFIG_PORT_COUNT;
        use crate::pci::root::{
            ConfigTarget, PciRoot, PCI_CONFIG_ADDRESS_PORT as ADDRESS, PCI_CONFIG_DATA_PORT as DATA,
        };
        use stage02::vm::Buses;

        let memory = Arc::new(GuestMemory::new(&[(0, 0x10000)]).unwrap());
        let irq = Arc::new(IrqRecorder::default());
        let mut edu = EduDevice::new(memory.clone(), irq.clone()).unwrap();
        edu.config_mut().set_interrupt_line(10);
        let buses = Arc::new(Buses::default());
        let mapper = BusBarMapper::new(buses.clone()).reserve("RAM", 0, 0x10000);
        let mut root = PciRoot::new(Arc::new(mapper));
        let number = root.add_device("edu", Arc::new(Mutex::new(edu))).unwrap();
        root.allocate_bars(PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END).unwrap();
        let bar = root.bar_mapping(number, EDU_BAR).unwrap();
        buses.pio.insert("pci", u64::from(ADDRESS), PCI_CONFIG_PORT_COUNT, Arc::new(Mutex::new(root))).unwrap();

        // The guest's view: find the card by its ids, enable bus mastering, use BAR 0.
        let config_read = |register: u8| {
            let address = ConfigTarget { bus: 0, device: number, function: 0, register }.encode();
            buses.pio.write(u64::from(ADDRESS), &address.to_le_bytes()).unwrap();
            let mut data = [0u8; 4];
            buses.pio.read(u64::from(DATA), &mut data).unwrap();
            u32::from_le_bytes(data)
        };
        assert_eq!(config_read(0), 0x11e8_1234);
        assert_eq!(u64::from(config_read(BAR0_OFFSET as u8)), bar);
        assert_eq!(config_read(INTERRUPT_LINE_OFFSET as u8) & 0xffff, 0x010a, "pin A, line 10");
        let command = config_read(COMMAND_OFFSET as u8) as u16 | COMMAND_BUS_MASTER;
        buses.pio.write(u64::from(DATA), &command.to_le_bytes()).unwrap();
        assert_eq!(config_read(COMMAND_OFFSET as u8) as u16, COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER);

        let mut data = [0u8; 4];
        buses.mmio.read(bar + IDENTIFICATION_OFFSET, &mut data).unwrap();
        assert_eq!(u32::from_le_bytes(data), EDU_IDENTIFICATION);
        memory.write(GuestAddress(0x1000), b"123456789").unwrap();
        for (offset, value) in [(DMA_SOURCE_OFFSET, 0x1000), (DMA_DESTINATION_OFFSET, DMA_BUFFER_START)] {
            buses.mmio.write(bar + offset, &u64::to_le_bytes(value)).unwrap();
        }
        buses.mmio.write(bar + DMA_COUNT_OFFSET, &9u32.to_le_bytes()).unwrap();
        buses.mmio.write(bar + DMA_COMMAND_OFFSET, &(DMA_RUN as u32).to_le_bytes()).unwrap();
        buses.mmio.write(bar + CRC32_COUNT_OFFSET, &9u32.to_le_bytes()).unwrap();
        buses.mmio.read(bar + CRC32_RESULT_OFFSET, &mut data).unwrap();
        assert_eq!(u32::from_le_bytes(data), 0xcbf4_3926);
        buses.mmio.write(bar + INTERRUPT_RAISE_OFFSET, &1u32.to_le_bytes()).unwrap();
        assert!(irq.is_high());
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414f_a339);
    }

    #[test]
    fn extra_crc32_register_checksums_the_dma_buffer() {
        let Fixture { mut edu, memory, .. } = fixture();
        assert_eq!(read32(&mut edu, CRC32_RESULT_OFFSET), 0);
        memory.write(GuestAddress(0x1000), b"123456789").unwrap();
        dma(&mut edu, 0x1000, DMA_BUFFER_START, 9, DMA_RUN);
        write32(&mut edu, CRC32_COUNT_OFFSET, 9);
        assert_eq!(read32(&mut edu, CRC32_COUNT_OFFSET), 9);
        assert_eq!(read32(&mut edu, CRC32_RESULT_OFFSET), 0xcbf4_3926);
        write32(&mut edu, CRC32_RESULT_OFFSET, 0);
        assert_eq!(read32(&mut edu, CRC32_RESULT_OFFSET), 0xcbf4_3926, "the result is read-only");

        // The whole buffer is allowed; one byte more is a guest error that changes nothing.
        write32(&mut edu, CRC32_COUNT_OFFSET, DMA_BUFFER_SIZE as u32);
        let mut whole = vec![0u8; DMA_BUFFER_SIZE];
        whole[..9].copy_from_slice(b"123456789");
        assert_eq!(read32(&mut edu, CRC32_RESULT_OFFSET), crc32(&whole));
        write32(&mut edu, CRC32_COUNT_OFFSET, DMA_BUFFER_SIZE as u32 + 1);
        assert_eq!(edu.guest_errors().count(), 1);
        assert_eq!(read32(&mut edu, CRC32_COUNT_OFFSET), DMA_BUFFER_SIZE as u32);
        assert_eq!(read32(&mut edu, CRC32_RESULT_OFFSET), crc32(&whole));

        // Register rules as for the rest of the map below 0x80: 4-byte accesses only.
        edu.mmio_write(EDU_BAR, CRC32_COUNT_OFFSET, &9u64.to_le_bytes());
        edu.mmio_write(EDU_BAR, CRC32_COUNT_OFFSET, &[9]);
        assert_eq!(read32(&mut edu, CRC32_COUNT_OFFSET), DMA_BUFFER_SIZE as u32);
        write32(&mut edu, CRC32_COUNT_OFFSET, 0);
        assert_eq!(read32(&mut edu, CRC32_RESULT_OFFSET), 0, "CRC-32 of nothing");
    }
}
