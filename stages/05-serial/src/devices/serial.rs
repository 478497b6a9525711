//! A 16550A UART, the PC's serial port, register by register as the Linux 8250 driver uses it.
//!
//! The guest sees eight one-byte registers at consecutive I/O ports (COM1 is 0x3f8–0x3ff on IRQ 4).
//! Several share an offset: reads and writes reach different registers, and the Divisor Latch Access
//! Bit (DLAB, LCR bit 7) swaps offsets 0 and 1 for the baud-rate divisor.
//!
//! | offset | read                      | write                  | with DLAB = 1        |
//! |--------|---------------------------|------------------------|----------------------|
//! | 0      | RBR receiver buffer       | THR transmit holding   | DLL divisor, low     |
//! | 1      | IER interrupt enable      | IER                    | DLM divisor, high    |
//! | 2      | IIR interrupt identity    | FCR FIFO control       |                      |
//! | 3      | LCR line control          | LCR                    |                      |
//! | 4      | MCR modem control         | MCR                    |                      |
//! | 5      | LSR line status           | (ignored)              |                      |
//! | 6      | MSR modem status          | (ignored)              |                      |
//! | 7      | SCR scratch               | SCR                    |                      |
//!
//! The other end of the line is virtual, and that shapes the model:
//! - A byte written to THR reaches `out` at once, so THR and the transmitter are always empty
//!   (LSR THRE and TEMT stay set), and a THRE interrupt follows every THR write. The divisor and
//!   the LCR word format are stored and read back but change nothing: bytes stay bytes.
//! - Received bytes come from the VMM ([`Serial::enqueue_raw_bytes`]) into a FIFO of [`FIFO_SIZE`]
//!   bytes, or into the one-byte RBR while the FIFOs are off (16450 "character mode", the state after
//!   reset). What does not fit is lost and sets LSR OE, like an overrun on a real line.
//! - The line never has parity, framing or break errors, so LSR bits 2–4 and 7 stay 0. Bit 7 (error
//!   in RCVR FIFO) only counts those three errors, not overruns (datasheet, LSR7).
//! - There is no time. A FIFO below its trigger level reports the character timeout (IIR 0x0C) at once,
//!   as if four character times had passed; at or above it, received data available (IIR 0x04).
//!   Linux handles both the same way: it tests IIR bit 2 and LSR DR (`serial8250_handle_irq`).
//!
//! Interrupts follow the datasheet's priorities, and reach the guest through [`Trigger`], one edge
//! each time a source becomes pending. The edge only leaves the board while MCR OUT2 is set, as on a
//! PC; see [`Serial`] for the exact rules.
//!
//! Linux sizes the FIFO at boot by looping 256 bytes back (`size_fifo`). It counts 64, so it reports
//! the port as a "U6_16550A" (its name for a 16550A with a 64-byte FIFO) rather than "16550A". That
//! changes two things: Linux writes up to 64 bytes per THRE interrupt, which the instant transmitter
//! takes, and it may set MCR bit 5 for auto flow control, which reads back 0 and which it never checks.
//!
//! # Resources
//! - TI (National Semiconductor) PC16550D datasheet, SNLS378: <https://www.ti.com/lit/ds/symlink/pc16550d.pdf>
//!   (register descriptions, the "Interrupt Control Functions" table, FIFO interrupt mode operation).
//! - Linux `drivers/tty/serial/8250/8250_port.c`: `autoconfig()` and `autoconfig_16550a()` (what it
//!   probes), `serial8250_do_startup()` (the THRE test), `serial8250_handle_irq()`, `probe_baud()`.
//! - rust-vmm vm-superio `src/serial.rs`, whose structure and tests this follows; it simplifies the
//!   interrupt logic, the FIFO control and the modem status that this model implements.
//! - QEMU `hw/char/serial.c`, which also raises THRE when IER THRI goes from 0 to 1.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;

use stage02::bus::BusDevice;

// Register offsets from the base port (datasheet, "Register Summary").

/// Offset of RBR (Receiver Buffer Register, read) and THR (Transmitter Holding Register, write).
pub const DATA_OFFSET: u64 = 0;
/// Offset of IER (Interrupt Enable Register).
pub const IER_OFFSET: u64 = 1;
/// Offset of IIR (Interrupt Identification Register, read).
pub const IIR_OFFSET: u64 = 2;
/// Offset of FCR (FIFO Control Register, write): the same port as IIR.
pub const FCR_OFFSET: u64 = 2;
/// Offset of LCR (Line Control Register).
pub const LCR_OFFSET: u64 = 3;
/// Offset of MCR (MODEM Control Register).
pub const MCR_OFFSET: u64 = 4;
/// Offset of LSR (Line Status Register).
pub const LSR_OFFSET: u64 = 5;
/// Offset of MSR (MODEM Status Register).
pub const MSR_OFFSET: u64 = 6;
/// Offset of SCR (Scratch Register).
pub const SCR_OFFSET: u64 = 7;
/// Offset of DLL (Divisor Latch, least significant byte) while LCR DLAB is set.
pub const DLL_OFFSET: u64 = 0;
/// Offset of DLM (Divisor Latch, most significant byte) while LCR DLAB is set.
pub const DLM_OFFSET: u64 = 1;
/// Number of ports the UART answers to: offsets 0 to 7.
pub const SERIAL_SIZE: u64 = 8;

/// What a read finds where no register answers (offsets from [`SERIAL_SIZE`] on, and the bytes of a
/// wide read beyond the first): all ones, like an ISA data bus that nobody drives.
pub const UNMAPPED_READ_VALUE: u8 = 0xff;

/// Bytes the receive FIFO holds. The PC16550D's is 16 bytes; this one is 64, like vm-superio's, so the
/// VMM can hand over more of its input at a time.
pub const FIFO_SIZE: usize = 64;
/// Bytes the receiver holds while the FIFOs are off: the one-byte RBR of the 16450 character mode.
pub const RBR_SIZE: usize = 1;

// IER, Interrupt Enable Register.

/// IER bit 0, ERBFI: enable the received data available (and character timeout) interrupt.
pub const IER_RDA_BIT: u8 = 0b0000_0001;
/// IER bit 1, ETBEI: enable the transmitter holding register empty interrupt.
pub const IER_THR_EMPTY_BIT: u8 = 0b0000_0010;
/// IER bit 2, ELSI: enable the receiver line status interrupt.
pub const IER_LINE_STATUS_BIT: u8 = 0b0000_0100;
/// IER bit 3, EDSSI: enable the MODEM status interrupt.
pub const IER_MODEM_STATUS_BIT: u8 = 0b0000_1000;
/// IER bits 0–3, the only ones a 16550A has; bits 4–7 are always 0 (Linux's XScale probe relies on it).
pub const IER_UART_VALID_BITS: u8 = 0b0000_1111;

// IIR, Interrupt Identification Register (read). Bits 0–3 identify the highest-priority interrupt.

/// IIR bit 0: 1 when no interrupt is pending (the datasheet's "interrupt pending" bit, active low).
pub const IIR_NONE_BIT: u8 = 0b0000_0001;
/// IIR bits 0–3, the interrupt identification field.
pub const IIR_ID_MASK: u8 = 0b0000_1111;
/// IIR identification 0110, priority 1: receiver line status (overrun, parity, framing, break).
pub const IIR_LINE_STATUS_ID: u8 = 0b0000_0110;
/// IIR identification 0100, priority 2: received data available (FIFO at or above its trigger level).
pub const IIR_RDA_ID: u8 = 0b0000_0100;
/// IIR identification 1100, priority 2: character timeout (FIFO mode only, data below the trigger level).
pub const IIR_RX_TIMEOUT_ID: u8 = 0b0000_1100;
/// IIR identification 0010, priority 3: transmitter holding register empty.
pub const IIR_THR_EMPTY_ID: u8 = 0b0000_0010;
/// IIR identification 0000, priority 4: MODEM status.
pub const IIR_MODEM_STATUS_ID: u8 = 0b0000_0000;
/// IIR bits 6–7: both set while the FIFOs are enabled (FCR bit 0); Linux reads them to tell a 16550A.
pub const IIR_FIFO_BITS: u8 = 0b1100_0000;

// FCR, FIFO Control Register (write only).

/// FCR bit 0, FIFO enable. The other FCR bits are only programmed when it is 1 in the same write, and
/// changing it clears both FIFOs.
pub const FCR_FIFO_ENABLE_BIT: u8 = 0b0000_0001;
/// FCR bit 1, RCVR FIFO reset: empties the receive FIFO (self-clearing).
pub const FCR_RCVR_FIFO_RESET_BIT: u8 = 0b0000_0010;
/// FCR bit 2, XMIT FIFO reset: empties the transmit FIFO (self-clearing; ours is always empty).
pub const FCR_XMIT_FIFO_RESET_BIT: u8 = 0b0000_0100;
/// FCR bit 3, DMA mode select (RXRDY/TXRDY pin mode; stored, no pins here).
pub const FCR_DMA_MODE_BIT: u8 = 0b0000_1000;
/// FCR bits 6–7, RCVR trigger: the FIFO level at which "received data available" is reported.
pub const FCR_RCVR_TRIGGER_BITS: u8 = 0b1100_0000;
/// The RCVR trigger levels in bytes, indexed by FCR bits 7–6.
pub const RCVR_TRIGGER_LEVELS: [usize; 4] = [1, 4, 8, 14];

// LCR, Line Control Register.

/// LCR bits 0–1, WLS: word length, 5 to 8 bits (stored only: the virtual line carries bytes).
pub const LCR_WORD_LENGTH_BITS: u8 = 0b0000_0011;
/// LCR bit 2, STB: number of stop bits.
pub const LCR_STOP_BITS_BIT: u8 = 0b0000_0100;
/// LCR bit 3, PEN: parity enable.
pub const LCR_PARITY_ENABLE_BIT: u8 = 0b0000_1000;
/// LCR bit 4, EPS: even parity select.
pub const LCR_EVEN_PARITY_BIT: u8 = 0b0001_0000;
/// LCR bit 5, stick parity.
pub const LCR_STICK_PARITY_BIT: u8 = 0b0010_0000;
/// LCR bit 6, set break.
pub const LCR_SET_BREAK_BIT: u8 = 0b0100_0000;
/// LCR bit 7, DLAB: Divisor Latch Access Bit; offsets 0 and 1 reach DLL and DLM while it is set.
pub const LCR_DLAB_BIT: u8 = 0b1000_0000;

// MCR, MODEM Control Register.

/// MCR bit 0, DTR: Data Terminal Ready.
pub const MCR_DTR_BIT: u8 = 0b0000_0001;
/// MCR bit 1, RTS: Request To Send.
pub const MCR_RTS_BIT: u8 = 0b0000_0010;
/// MCR bit 2, OUT 1: auxiliary output 1 (unused on a PC).
pub const MCR_OUT1_BIT: u8 = 0b0000_0100;
/// MCR bit 3, OUT 2: auxiliary output 2. A PC wires it to enable the UART's interrupt line.
pub const MCR_OUT2_BIT: u8 = 0b0000_1000;
/// MCR bit 4, LOOP: local loopback for diagnostics.
pub const MCR_LOOP_BIT: u8 = 0b0001_0000;
/// MCR bits 0–4; bits 5–7 are always 0 on a 16550A.
pub const MCR_VALID_BITS: u8 = 0b0001_1111;

// LSR, Line Status Register.

/// LSR bit 0, DR: data ready, a byte is waiting in RBR or the FIFO.
pub const LSR_DATA_READY_BIT: u8 = 0b0000_0001;
/// LSR bit 1, OE: overrun error, a received byte was lost; cleared by reading LSR.
pub const LSR_OVERRUN_ERROR_BIT: u8 = 0b0000_0010;
/// LSR bit 2, PE: parity error (never on the virtual line).
pub const LSR_PARITY_ERROR_BIT: u8 = 0b0000_0100;
/// LSR bit 3, FE: framing error (never on the virtual line).
pub const LSR_FRAMING_ERROR_BIT: u8 = 0b0000_1000;
/// LSR bit 4, BI: break interrupt (never on the virtual line).
pub const LSR_BREAK_INTERRUPT_BIT: u8 = 0b0001_0000;
/// LSR bit 5, THRE: transmitter holding register (or XMIT FIFO) empty. Always set here.
pub const LSR_THR_EMPTY_BIT: u8 = 0b0010_0000;
/// LSR bit 6, TEMT: transmitter empty, THR and shift register both. Always set here.
pub const LSR_TRANSMITTER_EMPTY_BIT: u8 = 0b0100_0000;
/// LSR bit 7, error in RCVR FIFO: a parity, framing or break error is in the FIFO. Never set here.
pub const LSR_FIFO_ERROR_BIT: u8 = 0b1000_0000;
/// The LSR bits that raise a receiver line status interrupt: OE, PE, FE and BI.
pub const LSR_ERROR_BITS: u8 =
    LSR_OVERRUN_ERROR_BIT | LSR_PARITY_ERROR_BIT | LSR_FRAMING_ERROR_BIT | LSR_BREAK_INTERRUPT_BIT;

// MSR, MODEM Status Register. Bits 0–3 record changes since the last MSR read; bits 4–7 are the inputs.

/// MSR bit 0, DCTS: delta clear to send, CTS changed.
pub const MSR_DCTS_BIT: u8 = 0b0000_0001;
/// MSR bit 1, DDSR: delta data set ready, DSR changed.
pub const MSR_DDSR_BIT: u8 = 0b0000_0010;
/// MSR bit 2, TERI: trailing edge of ring indicator, RI went from on to off.
pub const MSR_TERI_BIT: u8 = 0b0000_0100;
/// MSR bit 3, DDCD: delta data carrier detect, DCD changed.
pub const MSR_DDCD_BIT: u8 = 0b0000_1000;
/// MSR bit 4, CTS: clear to send (in loopback: MCR RTS).
pub const MSR_CTS_BIT: u8 = 0b0001_0000;
/// MSR bit 5, DSR: data set ready (in loopback: MCR DTR).
pub const MSR_DSR_BIT: u8 = 0b0010_0000;
/// MSR bit 6, RI: ring indicator (in loopback: MCR OUT 1).
pub const MSR_RI_BIT: u8 = 0b0100_0000;
/// MSR bit 7, DCD: data carrier detect (in loopback: MCR OUT 2).
pub const MSR_DCD_BIT: u8 = 0b1000_0000;
/// MSR bits 0–3, the delta bits; any of them set is a MODEM status interrupt.
pub const MSR_DELTA_BITS: u8 = 0b0000_1111;

// State after reset (datasheet, "Reset" table), except where a value is ours to choose.

/// The UART's input clock on a PC, 1.8432 MHz; the baud rate is this / (16 × divisor).
pub const UART_CLOCK_HZ: u32 = 1_843_200;
/// Divisor at power-on: 1, that is 115200 baud. Reset leaves the latch undefined, but Linux reads it
/// when the console has no baud option (`probe_baud()` in 8250_port.c and 8250_early.c divides
/// `uartclk / 16` by it, with uartclk = 1843200 on x86): 0 would divide by zero, and 1 matches the
/// usual `console=ttyS0,115200`.
pub const DEFAULT_BAUD_DIVISOR: u16 = 1;
/// IER after reset: every interrupt disabled.
pub const DEFAULT_INTERRUPT_ENABLE: u8 = 0x00;
/// IIR after reset: no interrupt pending, FIFOs off.
pub const DEFAULT_INTERRUPT_IDENTIFICATION: u8 = IIR_NONE_BIT;
/// FCR after reset: FIFOs off (16450 character mode).
pub const DEFAULT_FIFO_CONTROL: u8 = 0x00;
/// LCR after reset: all bits 0. The guest sets the word format (Linux writes 8N1).
pub const DEFAULT_LINE_CONTROL: u8 = 0x00;
/// MCR after reset: all outputs off, OUT 2 included, so no interrupt reaches the PIC until the guest
/// sets OUT 2 (Linux does, in `serial8250_do_startup()`).
pub const DEFAULT_MODEM_CONTROL: u8 = 0x00;
/// LSR after reset: THR and transmitter empty, no data, no error.
pub const DEFAULT_LINE_STATUS: u8 = LSR_THR_EMPTY_BIT | LSR_TRANSMITTER_EMPTY_BIT;
/// MSR after reset: no deltas, and the inputs of the virtual peer, which is always there and ready:
/// CTS, DSR and DCD on, RI off.
pub const DEFAULT_MODEM_STATUS: u8 = MSR_CTS_BIT | MSR_DSR_BIT | MSR_DCD_BIT;
/// SCR at power-on.
pub const DEFAULT_SCRATCH: u8 = 0x00;

/// Raises the UART's interrupt: one edge on its IRQ line.
///
/// # Contract
/// - Each call must deliver one rising edge to the interrupt controller. In the VMM this is an
///   `EventFd` registered with `KVM_IRQFD` on GSI 4 (COM1): KVM pulses the line high then low, and
///   the ISA IRQ is edge-triggered, so every write of the eventfd is one edge.
/// - The device calls it at most once per register access or [`Serial::enqueue_raw_bytes`], when an
///   interrupt source becomes pending while it is enabled in IER and MCR OUT 2 opens the line (see
///   [`Serial`]). It never calls it to lower the line: an edge needs no lowering.
/// - It is called with the device borrowed mutably, usually under the bus's lock, from a vCPU thread
///   (the guest's I/O) or from the event loop (input): it must not block, nor lock the device.
/// - An error is passed to [`SerialEvents::error`] as [`SerialError::Interrupt`]; the device goes on.
///
/// It is stage 4's [`stage04::irq::Trigger`]: the irqfd-backed trigger of stage 4 serves here too.
pub use stage04::irq::Trigger;

/// Things that went wrong inside the device. None of them stops it: it reports them through
/// [`SerialEvents::error`] and carries on, as hardware would.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// [`Trigger::trigger`] failed: the guest may miss this interrupt.
    #[error("cannot raise the serial interrupt: {0}")]
    Interrupt(#[source] io::Error),
    /// Writing a transmitted byte to the output failed; the byte is lost.
    #[error("cannot write the guest's serial output, one byte lost: {0}")]
    Output(#[source] io::Error),
    /// The guest accessed several bytes at once; the registers are one byte wide, so only the first
    /// byte was used.
    #[error("{len}-byte access at serial offset {offset}: only the first byte was used")]
    WideAccess {
        /// Offset of the access from the base port.
        offset: u64,
        /// Its size in bytes.
        len: usize,
    },
    /// An access beyond the eight registers (only possible if the device was given a range wider than
    /// [`SERIAL_SIZE`]).
    #[error("access at serial offset {offset:#x}, beyond the UART's {SERIAL_SIZE} registers")]
    BadOffset {
        /// Offset of the access from the base port.
        offset: u64,
    },
}

/// Side events of the serial emulation, for the VMM to act on. Every method has a default that does
/// nothing, so an implementation overrides only what it needs.
pub trait SerialEvents: Send {
    /// The receiver has just become empty: the guest read the last byte, or cleared the FIFO. An
    /// event loop that stopped reading its input when [`Serial::fifo_capacity`] was 0 can resume.
    fn in_buffer_empty(&self) {}

    /// The guest has just raised RTS (MCR bit 1) outside loopback: it is ready to receive. An event
    /// loop that holds input until then (see [`Serial::receive_room`]) can send it now.
    fn ready_to_receive(&self) {}

    /// Something went wrong and the device carried on; see [`SerialError`]. The guest can cause
    /// these at will, so an implementation that logs them should limit how many it prints.
    fn error(&self, _error: SerialError) {}
}

/// The events of a VMM that wants none of them.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl SerialEvents for NoEvents {}

impl<EV: SerialEvents + Sync> SerialEvents for Arc<EV> {
    fn in_buffer_empty(&self) {
        self.as_ref().in_buffer_empty();
    }

    fn ready_to_receive(&self) {
        self.as_ref().ready_to_receive();
    }

    fn error(&self, error: SerialError) {
        self.as_ref().error(error);
    }
}

/// The interrupt line as seen at one moment: which sources were pending and whether OUT 2 let them
/// out. Comparing two of these tells whether an access made a new edge.
#[derive(Debug, Clone, Copy)]
struct InterruptLine {
    /// Pending and enabled sources, as IER bits.
    pending: u8,
    /// Whether the interrupt reaches the PIC.
    gate_open: bool,
}

/// A 16550A UART: the registers are fields, reads and writes arrive as offsets from the base port.
///
/// # Interrupts
/// IIR reports the highest-priority source that is pending and enabled in IER:
/// 1. receiver line status (0x06): LSR OE is set; cleared by reading LSR;
/// 2. received data (0x04, or the character timeout 0x0C below the FIFO trigger level): the receiver
///    holds data; cleared by reading RBR until it is empty;
/// 3. THR empty (0x02): latched after every THR write (the byte leaves at once) and when IER bit 1
///    goes from 0 to 1; cleared by reading IIR while it is the source reported, or by writing THR;
/// 4. MODEM status (0x00): an MSR delta bit is set; cleared by reading MSR.
///
/// The chip's interrupt output is the OR of those. A PC passes it to the interrupt controller only
/// while the OUT 2 pin is active: MCR bit 3 set, and not in loopback, because loopback forces the
/// modem control pins inactive (datasheet, MCR bit 4). The model keeps that gate: IIR works behind
/// it, but no edge leaves. Linux sets OUT 2 before it expects interrupts.
///
/// The device calls [`Trigger::trigger`] when an access leaves a source pending that was not pending
/// before it (a new edge), or opens the gate while a source is pending. One access makes at most one
/// edge. A second THR write before the guest has read IIR makes none: THRE was still pending, and
/// the driver, which reads IIR until it says "none", will see it.
///
/// # Integration
/// 1. Put it on the port-I/O bus at the COM1 base 0x3f8 with length [`SERIAL_SIZE`].
/// 2. Give it a [`Trigger`] that pulses IRQ 4, and `stdout` as `out`.
/// 3. In the event loop, read stdin only while [`Serial::fifo_capacity`] is not 0, hand what was read
///    to [`Serial::enqueue_raw_bytes`], and resume on [`SerialEvents::in_buffer_empty`] (or by polling
///    [`Serial::in_buffer_empty`]).
///
/// # Example
/// ```
/// # use stage05::devices::serial;
/// use serial::{Serial, Trigger};
///
/// struct NoIrq;
/// impl Trigger for NoIrq {
///     fn trigger(&self) -> std::io::Result<()> {
///         Ok(())
///     }
/// }
///
/// let mut uart = Serial::new(NoIrq, Vec::new());
/// // The guest writes a byte to THR: it comes out at once.
/// uart.write(serial::DATA_OFFSET, b'A');
/// assert_eq!(uart.writer(), b"A");
///
/// // The host types: the guest sees data ready and reads it from RBR.
/// let input = b"ls\n";
/// uart.write(serial::FCR_OFFSET, serial::FCR_FIFO_ENABLE_BIT);
/// let accepted = uart.enqueue_raw_bytes(&input[..input.len().min(uart.fifo_capacity())]);
/// assert_eq!(accepted, 3);
/// assert_ne!(uart.read(serial::LSR_OFFSET) & serial::LSR_DATA_READY_BIT, 0);
/// assert_eq!(uart.read(serial::DATA_OFFSET), b'l');
/// ```
pub struct Serial<T: Trigger, W: Write + Send, EV: SerialEvents = NoEvents> {
    // The registers.
    divisor_latch_low: u8,
    divisor_latch_high: u8,
    interrupt_enable: u8,
    fifo_control: u8,
    line_control: u8,
    modem_control: u8,
    /// The LSR error bits (only OE can happen); the other LSR bits are computed when read.
    line_errors: u8,
    /// MSR: the modem inputs last seen in bits 4–7, the deltas since the last read in bits 0–3.
    modem_status: u8,
    scratch: u8,
    /// RBR, or the receive FIFO in FIFO mode. Holds at most [`RBR_SIZE`] or [`FIFO_SIZE`] bytes.
    in_buffer: VecDeque<u8>,
    /// The THRE interrupt latch: set when THR empties, cleared by an IIR read that reports it.
    thr_empty_pending: bool,

    trigger: T,
    events: EV,
    out: W,
}

impl<T: Trigger, W: Write + Send> Serial<T, W> {
    /// A UART in its reset state that writes the guest's output to `out` and raises its interrupt
    /// through `trigger`.
    ///
    /// # Arguments
    /// * `trigger` - Delivers one interrupt edge per call; see [`Trigger`].
    /// * `out` - Receives every byte the guest transmits: stdout in the VMM, a `Vec<u8>` in tests,
    ///   [`std::io::sink`] to drop it.
    ///
    /// # Example
    /// See [`Serial`].
    pub fn new(trigger: T, out: W) -> Self {
        Self::with_events(trigger, out, NoEvents)
    }
}

impl<T: Trigger, W: Write + Send, EV: SerialEvents> Serial<T, W, EV> {
    /// Like [`Serial::new`], and reports side events to `events`.
    ///
    /// # Arguments
    /// * `trigger` - Delivers one interrupt edge per call; see [`Trigger`].
    /// * `out` - Receives every byte the guest transmits.
    /// * `events` - Told when the receiver empties and when something goes wrong; see [`SerialEvents`].
    pub fn with_events(trigger: T, out: W, events: EV) -> Self {
        let [divisor_latch_low, divisor_latch_high] = DEFAULT_BAUD_DIVISOR.to_le_bytes();
        Serial {
            divisor_latch_low,
            divisor_latch_high,
            interrupt_enable: DEFAULT_INTERRUPT_ENABLE,
            fifo_control: DEFAULT_FIFO_CONTROL,
            line_control: DEFAULT_LINE_CONTROL,
            modem_control: DEFAULT_MODEM_CONTROL,
            line_errors: DEFAULT_LINE_STATUS & LSR_ERROR_BITS,
            modem_status: DEFAULT_MODEM_STATUS,
            scratch: DEFAULT_SCRATCH,
            in_buffer: VecDeque::with_capacity(FIFO_SIZE),
            thr_empty_pending: false,
            trigger,
            events,
            out,
        }
    }

    /// The writer that receives the guest's output.
    pub fn writer(&self) -> &W {
        &self.out
    }

    /// The trigger that raises the interrupt (the VMM may need its eventfd).
    pub fn interrupt_trigger(&self) -> &T {
        &self.trigger
    }

    /// The events object given to [`Serial::with_events`].
    pub fn events(&self) -> &EV {
        &self.events
    }

    /// How many more bytes the receiver can take: free space in the FIFO, or in the one-byte RBR while
    /// the guest keeps the FIFOs off. An event loop stops reading its input when this is 0.
    pub fn fifo_capacity(&self) -> usize {
        self.receiver_size().saturating_sub(self.in_buffer.len())
    }

    // qa:begin stage5-rts-flow-control
    /// Whether the guest asks for input: RTS (MCR bit 1) is on and the UART is not in loopback.
    ///
    /// The host end of the line honours RTS/CTS flow control, as a modem would. It matters at boot:
    /// Linux resets the FIFOs when it opens the port, so whatever arrived before would be lost. Linux
    /// raises RTS once the port is open, and polling guests set it when they set up the UART.
    pub fn wants_input(&self) -> bool {
        self.modem_control & MCR_RTS_BIT != 0 && !self.is_in_loop_mode()
    }

    /// How many bytes the host may send now: the room in the receiver while the guest
    /// [wants input](Serial::wants_input), 0 otherwise. Sending more than this loses bytes.
    pub fn receive_room(&self) -> usize {
        if self.wants_input() {
            self.fifo_capacity()
        } else {
            0
        }
    }
    // qa:end stage5-rts-flow-control

    /// Whether the receiver is empty: the guest has read everything it was given.
    pub fn in_buffer_empty(&self) -> bool {
        self.in_buffer.is_empty()
    }

    /// Hands bytes from the host (the user's keyboard) to the receiver, as if they had arrived on the
    /// line, and raises the received-data interrupt if it is enabled.
    ///
    /// Returns how many of `bytes`, from the start, were accepted. The rest did not fit: they are lost
    /// and LSR reports an overrun, as on a real line, so check [`Serial::fifo_capacity`] first. In
    /// loopback mode the receiver listens to the transmitter, not the line, so nothing is accepted.
    ///
    /// # Arguments
    /// * `bytes` - The input, in order.
    ///
    /// # Example
    /// See [`Serial`].
    pub fn enqueue_raw_bytes(&mut self, bytes: &[u8]) -> usize {
        if self.is_in_loop_mode() {
            return 0;
        }
        let before = self.interrupt_line();
        let accepted = self.receive(bytes);
        self.update_interrupt(before);
        accepted
    }

    /// The guest reads the register at `offset` from the base port.
    ///
    /// Reads have side effects, as on the chip: RBR pops a byte, IIR acknowledges a THRE interrupt,
    /// LSR clears the overrun bit, MSR clears the delta bits. Offsets from [`SERIAL_SIZE`] on read
    /// [`UNMAPPED_READ_VALUE`] and are reported as [`SerialError::BadOffset`].
    ///
    /// # Arguments
    /// * `offset` - Offset of the register from the base port.
    pub fn read(&mut self, offset: u64) -> u8 {
        let before = self.interrupt_line();
        let value = match offset {
            DLL_OFFSET if self.is_dlab_set() => self.divisor_latch_low,
            DLM_OFFSET if self.is_dlab_set() => self.divisor_latch_high,
            DATA_OFFSET => self.read_rbr(),
            IER_OFFSET => self.interrupt_enable,
            IIR_OFFSET => self.read_iir(),
            LCR_OFFSET => self.line_control,
            MCR_OFFSET => self.modem_control,
            LSR_OFFSET => self.read_lsr(),
            MSR_OFFSET => self.read_msr(),
            SCR_OFFSET => self.scratch,
            _ => {
                self.events.error(SerialError::BadOffset { offset });
                UNMAPPED_READ_VALUE
            }
        };
        self.update_interrupt(before);
        value
    }

    /// The guest writes `value` to the register at `offset` from the base port.
    ///
    /// Writes to the status registers, LSR and MSR, are ignored (the datasheet keeps LSR writes for
    /// factory testing). Offsets from [`SERIAL_SIZE`] on are ignored and reported as
    /// [`SerialError::BadOffset`].
    ///
    /// # Arguments
    /// * `offset` - Offset of the register from the base port.
    /// * `value` - The byte written.
    pub fn write(&mut self, offset: u64, value: u8) {
        let before = self.interrupt_line();
        match offset {
            DLL_OFFSET if self.is_dlab_set() => self.divisor_latch_low = value,
            DLM_OFFSET if self.is_dlab_set() => self.divisor_latch_high = value,
            DATA_OFFSET => self.write_thr(value),
            IER_OFFSET => self.write_ier(value),
            FCR_OFFSET => self.write_fcr(value),
            LCR_OFFSET => self.line_control = value,
            MCR_OFFSET => self.write_mcr(value),
            LSR_OFFSET | MSR_OFFSET => {}
            SCR_OFFSET => self.scratch = value,
            _ => self.events.error(SerialError::BadOffset { offset }),
        }
        self.update_interrupt(before);
    }

    fn is_dlab_set(&self) -> bool {
        self.line_control & LCR_DLAB_BIT != 0
    }

    fn is_in_loop_mode(&self) -> bool {
        self.modem_control & MCR_LOOP_BIT != 0
    }

    fn fifo_enabled(&self) -> bool {
        self.fifo_control & FCR_FIFO_ENABLE_BIT != 0
    }

    fn receiver_size(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_SIZE
        } else {
            RBR_SIZE
        }
    }

    fn rx_trigger_level(&self) -> usize {
        RCVR_TRIGGER_LEVELS[usize::from((self.fifo_control & FCR_RCVR_TRIGGER_BITS) >> 6)]
    }

    // qa:begin stage5-update-interrupt
    /// Whether the chip's interrupt output reaches the PIC. On a PC it passes through a buffer that
    /// the OUT 2 pin enables. In loopback the datasheet forces the modem control pins to their
    /// inactive state (MCR bit 4), OUT 2 included, so the buffer is off whatever MCR bit 3 says.
    fn irq_gate_open(&self) -> bool {
        self.modem_control & MCR_OUT2_BIT != 0 && !self.is_in_loop_mode()
    }

    fn interrupt_line(&self) -> InterruptLine {
        InterruptLine { pending: self.pending_interrupts(), gate_open: self.irq_gate_open() }
    }

    /// Raises an edge if the access since `before` made a source pending, or opened the gate on one.
    fn update_interrupt(&mut self, before: InterruptLine) {
        let now = self.interrupt_line();
        let new_source = now.pending & !before.pending != 0;
        let gate_opened = now.gate_open && !before.gate_open;
        if now.gate_open && now.pending != 0 && (new_source || gate_opened) {
            if let Err(e) = self.trigger.trigger() {
                self.events.error(SerialError::Interrupt(e));
            }
        }
    }
    // qa:end stage5-update-interrupt

    // lab:begin solution stage5-uart-iir "report the highest-priority pending and enabled interrupt in IIR (line status, received data or timeout, THR empty, modem status), with the FIFO bits"
    /// The interrupt sources that are pending and enabled, as IER bits.
    fn pending_interrupts(&self) -> u8 {
        let mut pending = 0;
        if self.line_errors & LSR_ERROR_BITS != 0 {
            pending |= IER_LINE_STATUS_BIT;
        }
        if !self.in_buffer.is_empty() {
            pending |= IER_RDA_BIT;
        }
        if self.thr_empty_pending {
            pending |= IER_THR_EMPTY_BIT;
        }
        if self.modem_status & MSR_DELTA_BITS != 0 {
            pending |= IER_MODEM_STATUS_BIT;
        }
        pending & self.interrupt_enable
    }

    /// IIR: the highest-priority pending interrupt (datasheet, "Interrupt Control Functions"), plus
    /// the FIFO-enabled bits.
    fn interrupt_identification(&self) -> u8 {
        let pending = self.pending_interrupts();
        let id = if pending & IER_LINE_STATUS_BIT != 0 {
            IIR_LINE_STATUS_ID
        } else if pending & IER_RDA_BIT != 0 {
            // In FIFO mode, data below the trigger level is reported after a timeout of four
            // character times. Time does not pass here, so that timeout has always expired.
            if self.fifo_enabled() && self.in_buffer.len() < self.rx_trigger_level() {
                IIR_RX_TIMEOUT_ID
            } else {
                IIR_RDA_ID
            }
        } else if pending & IER_THR_EMPTY_BIT != 0 {
            IIR_THR_EMPTY_ID
        } else if pending & IER_MODEM_STATUS_BIT != 0 {
            IIR_MODEM_STATUS_ID
        } else {
            IIR_NONE_BIT
        };
        let fifo_bits = if self.fifo_enabled() { IIR_FIFO_BITS } else { 0 };
        id | fifo_bits
    }
    // lab:end

    // qa:begin stage5-iir
    /// Reads IIR. Linux reads it first in its interrupt handler, and again until it says "none".
    fn read_iir(&mut self) -> u8 {
        let iir = self.interrupt_identification();
        // Reading IIR acknowledges a THRE interrupt, but only when THRE is what it reports: behind a
        // line status or data interrupt it stays pending, to be reported by a later read.
        if iir & IIR_ID_MASK == IIR_THR_EMPTY_ID {
            self.thr_empty_pending = false;
        }
        iir
    }
    // qa:end stage5-iir

    // qa:begin stage5-thr-write
    /// Writes THR: the byte leaves at once, so THR is empty again when the write returns.
    fn write_thr(&mut self, byte: u8) {
        // Writing THR clears a pending THRE interrupt...
        self.thr_empty_pending = false;
        self.transmit(byte);
        // ...and the byte has already left, so THR is empty again: a new THRE interrupt, whether or
        // not the byte could be written out. LSR THRE and TEMT never drop.
        self.thr_empty_pending = true;
    }
    // qa:end stage5-thr-write

    // lab:begin solution stage5-uart-loopback "in loopback mode send THR bytes to our own receiver and wire the modem control outputs to the modem status inputs"
    /// Sends a byte from THR: out on the line, or in loopback mode straight into our own receiver.
    fn transmit(&mut self, byte: u8) {
        if self.is_in_loop_mode() {
            // The transmitter's output is wired to the receiver's input and the line is cut off: the
            // guest reads back what it wrote, and nothing reaches `out`.
            self.receive(&[byte]);
        } else if let Err(e) = self.out.write_all(&[byte]).and_then(|()| self.out.flush()) {
            // A console that cannot write must not stop the guest.
            self.events.error(SerialError::Output(e));
        }
    }

    /// The modem inputs (CTS, DSR, RI, DCD) as MSR bits 4–7. In loopback they are wired to the modem
    /// control outputs: DTR drives DSR, RTS drives CTS, OUT 1 drives RI and OUT 2 drives DCD.
    /// Otherwise they come from the virtual peer, which never changes them.
    fn modem_inputs(&self) -> u8 {
        if !self.is_in_loop_mode() {
            return DEFAULT_MODEM_STATUS;
        }
        let mut inputs = 0;
        if self.modem_control & MCR_DTR_BIT != 0 {
            inputs |= MSR_DSR_BIT;
        }
        if self.modem_control & MCR_RTS_BIT != 0 {
            inputs |= MSR_CTS_BIT;
        }
        if self.modem_control & MCR_OUT1_BIT != 0 {
            inputs |= MSR_RI_BIT;
        }
        if self.modem_control & MCR_OUT2_BIT != 0 {
            inputs |= MSR_DCD_BIT;
        }
        inputs
    }
    // lab:end

    // qa:begin stage5-receive
    /// Puts bytes from the line into the receiver; what does not fit is lost to an overrun. In FIFO
    /// mode the datasheet drops the new byte and keeps the FIFO; in character mode it says the new
    /// byte overwrites the unread one. Either way one byte is lost and OE is set: this model drops
    /// the new byte in both modes, so that the accepted bytes are always the first ones.
    fn receive(&mut self, bytes: &[u8]) -> usize {
        let accepted = bytes.len().min(self.fifo_capacity());
        self.in_buffer.extend(&bytes[..accepted]);
        if accepted < bytes.len() {
            self.line_errors |= LSR_OVERRUN_ERROR_BIT;
        }
        accepted
    }
    // qa:end stage5-receive

    /// Reads RBR: the oldest byte received. An empty receiver reads 0.
    fn read_rbr(&mut self) -> u8 {
        let Some(byte) = self.in_buffer.pop_front() else {
            return 0;
        };
        if self.in_buffer.is_empty() {
            self.events.in_buffer_empty();
        }
        byte
    }

    /// Reads LSR, which clears the error bits and with them the line status interrupt.
    fn read_lsr(&mut self) -> u8 {
        let data_ready = if self.in_buffer.is_empty() { 0 } else { LSR_DATA_READY_BIT };
        let lsr = DEFAULT_LINE_STATUS | self.line_errors | data_ready;
        self.line_errors = 0;
        lsr
    }

    /// Reads MSR, which clears the delta bits and with them the MODEM status interrupt.
    fn read_msr(&mut self) -> u8 {
        let msr = self.modem_status;
        self.modem_status &= !MSR_DELTA_BITS;
        msr
    }

    // qa:begin stage5-write-ier
    fn write_ier(&mut self, value: u8) {
        let enabled = value & !self.interrupt_enable;
        self.interrupt_enable = value & IER_UART_VALID_BITS;
        // Enabling the THRE interrupt while THR is empty (it always is) raises it, even if an IIR
        // read had acknowledged it. Linux relies on it: `serial8250_do_startup()` tests it and falls
        // back to polling with a timer if it fails, and `__start_tx()` sets IER bit 1 to start sending.
        if enabled & IER_THR_EMPTY_BIT != 0 {
            self.thr_empty_pending = true;
        }
    }
    // qa:end stage5-write-ier

    fn write_fcr(&mut self, value: u8) {
        let was_enabled = self.fifo_enabled();
        // Without FCR0 in the same write the other bits are not programmed (datasheet, FCR0).
        self.fifo_control = if value & FCR_FIFO_ENABLE_BIT != 0 {
            value & (FCR_FIFO_ENABLE_BIT | FCR_DMA_MODE_BIT | FCR_RCVR_TRIGGER_BITS)
        } else {
            0
        };
        // Switching between FIFO and character mode clears the FIFOs; so does FCR1 in FIFO mode.
        // Clearing the receiver leaves LSR's error bits alone. The XMIT FIFO is always empty.
        let mode_changed = was_enabled != self.fifo_enabled();
        let clear_rx = self.fifo_enabled() && value & FCR_RCVR_FIFO_RESET_BIT != 0;
        if (mode_changed || clear_rx) && !self.in_buffer.is_empty() {
            self.in_buffer.clear();
            self.events.in_buffer_empty();
        }
    }

    fn write_mcr(&mut self, value: u8) {
        let wanted_input = self.wants_input();
        self.modem_control = value & MCR_VALID_BITS;
        if self.wants_input() && !wanted_input {
            self.events.ready_to_receive();
        }
        // Entering or leaving loopback, or changing an output during it, can change the modem inputs.
        self.update_modem_status();
    }

    /// Samples the modem inputs and records in the MSR delta bits which of them changed.
    fn update_modem_status(&mut self) {
        let old = self.modem_status;
        let new = self.modem_inputs();
        let changed = old ^ new;
        let mut deltas = 0;
        if changed & MSR_CTS_BIT != 0 {
            deltas |= MSR_DCTS_BIT;
        }
        if changed & MSR_DSR_BIT != 0 {
            deltas |= MSR_DDSR_BIT;
        }
        // TERI reports only the trailing edge of RI: on to off.
        if old & MSR_RI_BIT != 0 && new & MSR_RI_BIT == 0 {
            deltas |= MSR_TERI_BIT;
        }
        if changed & MSR_DCD_BIT != 0 {
            deltas |= MSR_DDCD_BIT;
        }
        self.modem_status = new | (old & MSR_DELTA_BITS) | deltas;
    }
}

impl<T: Trigger, W: Write + Send, EV: SerialEvents> BusDevice for Serial<T, W, EV> {
    /// One register per byte: a wider read gets the register at `offset` in its first byte and
    /// [`UNMAPPED_READ_VALUE`] in the others, and is reported as [`SerialError::WideAccess`].
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let len = data.len();
        let Some((first, rest)) = data.split_first_mut() else {
            return;
        };
        *first = Serial::read(self, offset);
        if !rest.is_empty() {
            rest.fill(UNMAPPED_READ_VALUE);
            self.events.error(SerialError::WideAccess { offset, len });
        }
    }

    /// One register per byte: a wider write stores its first byte at `offset`, ignores the others,
    /// and is reported as [`SerialError::WideAccess`].
    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some((&first, rest)) = data.split_first() else {
            return;
        };
        Serial::write(self, offset, first);
        if !rest.is_empty() {
            self.events.error(SerialError::WideAccess { offset, len: data.len() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::sink;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    const RAW_INPUT_BUF: [u8; 3] = [b'a', b'b', b'c'];

    /// Counts the interrupt edges.
    #[derive(Clone, Default)]
    struct CountingTrigger(Arc<AtomicUsize>);

    impl CountingTrigger {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Trigger for CountingTrigger {
        fn trigger(&self) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// Remembers the events.
    #[derive(Default)]
    struct RecordingEvents {
        in_buffer_empty: AtomicUsize,
        ready_to_receive: AtomicUsize,
        errors: Mutex<Vec<String>>,
    }

    impl RecordingEvents {
        fn in_buffer_empty_count(&self) -> usize {
            self.in_buffer_empty.load(Ordering::SeqCst)
        }

        fn errors(&self) -> Vec<String> {
            self.errors.lock().unwrap().clone()
        }
    }

    impl SerialEvents for RecordingEvents {
        fn in_buffer_empty(&self) {
            self.in_buffer_empty.fetch_add(1, Ordering::SeqCst);
        }

        fn ready_to_receive(&self) {
            self.ready_to_receive.fetch_add(1, Ordering::SeqCst);
        }

        fn error(&self, error: SerialError) {
            self.errors.lock().unwrap().push(error.to_string());
        }
    }

    /// A writer that always fails, like a closed stdout.
    struct BrokenWriter;

    impl Write for BrokenWriter {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    type TestSerial<W> = Serial<CountingTrigger, W, Arc<RecordingEvents>>;

    fn serial_with<W: Write + Send>(out: W) -> (TestSerial<W>, CountingTrigger, Arc<RecordingEvents>) {
        let trigger = CountingTrigger::default();
        let events = Arc::new(RecordingEvents::default());
        (Serial::with_events(trigger.clone(), out, events.clone()), trigger, events)
    }

    /// A UART as Linux leaves it after startup: FIFOs on, OUT 2 set so interrupts reach the PIC.
    fn linux_ready_serial() -> (TestSerial<Vec<u8>>, CountingTrigger, Arc<RecordingEvents>) {
        let (mut serial, trigger, events) = serial_with(Vec::new());
        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT);
        serial.write(MCR_OFFSET, MCR_DTR_BIT | MCR_RTS_BIT | MCR_OUT2_BIT);
        (serial, trigger, events)
    }

    fn iir_id(serial: &mut TestSerial<Vec<u8>>) -> u8 {
        serial.read(IIR_OFFSET) & IIR_ID_MASK
    }

    #[test]
    fn test_serial_reset_values() {
        let (mut serial, trigger, _) = serial_with(sink());
        assert_eq!(serial.read(IER_OFFSET), DEFAULT_INTERRUPT_ENABLE);
        assert_eq!(serial.read(IIR_OFFSET), DEFAULT_INTERRUPT_IDENTIFICATION);
        assert_eq!(serial.read(LCR_OFFSET), DEFAULT_LINE_CONTROL);
        assert_eq!(serial.read(MCR_OFFSET), DEFAULT_MODEM_CONTROL);
        assert_eq!(serial.read(LSR_OFFSET), DEFAULT_LINE_STATUS);
        assert_eq!(serial.read(MSR_OFFSET), DEFAULT_MODEM_STATUS);
        assert_eq!(serial.read(SCR_OFFSET), DEFAULT_SCRATCH);
        assert_eq!(serial.fifo_capacity(), RBR_SIZE, "FIFOs are off after reset");
        assert!(serial.in_buffer_empty());
        assert_eq!(trigger.count(), 0);
    }

    #[test]
    fn test_serial_rts_flow_control() {
        let (mut serial, _, events) = serial_with(sink());
        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT);
        assert_eq!(serial.receive_room(), 0, "no RTS after reset: the host holds its input");
        serial.write(MCR_OFFSET, MCR_DTR_BIT | MCR_RTS_BIT | MCR_OUT2_BIT);
        assert_eq!(events.ready_to_receive.load(Ordering::SeqCst), 1, "raising RTS is announced");
        assert_eq!(serial.receive_room(), FIFO_SIZE);
        serial.enqueue_raw_bytes(b"ab");
        assert_eq!(serial.receive_room(), FIFO_SIZE - 2);
        serial.write(MCR_OFFSET, MCR_RTS_BIT | MCR_OUT2_BIT);
        assert_eq!(events.ready_to_receive.load(Ordering::SeqCst), 1, "RTS stayed on: no new event");
        serial.write(MCR_OFFSET, MCR_RTS_BIT | MCR_LOOP_BIT);
        assert_eq!(serial.receive_room(), 0, "loopback cuts the line off");
        serial.write(MCR_OFFSET, MCR_RTS_BIT);
        assert_eq!(events.ready_to_receive.load(Ordering::SeqCst), 2, "leaving loopback with RTS on");
    }

    #[test]
    fn test_serial_thr_output() {
        let (mut serial, trigger, _) = serial_with(Vec::new());
        for &byte in &RAW_INPUT_BUF {
            serial.write(DATA_OFFSET, byte);
            let lsr = serial.read(LSR_OFFSET);
            assert_eq!(lsr & LSR_THR_EMPTY_BIT, LSR_THR_EMPTY_BIT, "THR empties at once");
            assert_eq!(lsr & LSR_TRANSMITTER_EMPTY_BIT, LSR_TRANSMITTER_EMPTY_BIT);
        }
        assert_eq!(serial.writer().as_slice(), &RAW_INPUT_BUF);
        assert_eq!(trigger.count(), 0, "THRE interrupt not enabled");
    }

    #[test]
    fn test_serial_output_errors_do_not_stop_the_guest() {
        let (mut serial, trigger, events) = serial_with(BrokenWriter);
        serial.write(MCR_OFFSET, MCR_OUT2_BIT);
        serial.write(IER_OFFSET, IER_THR_EMPTY_BIT);
        assert_eq!(serial.read(IIR_OFFSET) & IIR_ID_MASK, IIR_THR_EMPTY_ID);
        serial.write(DATA_OFFSET, b'x');
        assert_eq!(serial.read(IIR_OFFSET) & IIR_ID_MASK, IIR_THR_EMPTY_ID, "THRE even though the byte was lost");
        assert_eq!(serial.read(LSR_OFFSET), DEFAULT_LINE_STATUS);
        assert_eq!(trigger.count(), 2);
        let errors = events.errors();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("cannot write the guest's serial output"), "{errors:?}");
    }

    #[test]
    fn test_serial_dlab() {
        let (mut serial, _, _) = serial_with(Vec::new());
        serial.write(IER_OFFSET, IER_RDA_BIT);

        serial.write(LCR_OFFSET, LCR_DLAB_BIT | 0x03);
        let [low, high] = DEFAULT_BAUD_DIVISOR.to_le_bytes();
        assert_eq!(serial.read(DLL_OFFSET), low);
        assert_eq!(serial.read(DLM_OFFSET), high);
        assert_eq!(u32::from(DEFAULT_BAUD_DIVISOR), UART_CLOCK_HZ / 16 / 115_200);

        // 9600 baud: divisor 12.
        serial.write(DLL_OFFSET, 0x0c);
        serial.write(DLM_OFFSET, 0x00);
        assert_eq!(serial.read(DLL_OFFSET), 0x0c);
        assert_eq!(serial.read(DLM_OFFSET), 0x00);
        assert!(serial.writer().is_empty(), "a DLL write is not a THR write");
        assert_eq!(serial.read(LCR_OFFSET), LCR_DLAB_BIT | 0x03);

        serial.write(LCR_OFFSET, 0x03);
        assert_eq!(serial.read(IER_OFFSET), IER_RDA_BIT, "DLM write left IER alone");
        serial.write(DATA_OFFSET, b'z');
        assert_eq!(serial.writer().as_slice(), b"z");
        serial.write(LCR_OFFSET, LCR_DLAB_BIT);
        assert_eq!(serial.read(DLL_OFFSET), 0x0c, "THR write left DLL alone");
    }

    #[test]
    fn test_serial_ier_masks_interrupts() {
        let (mut serial, trigger, _) = linux_ready_serial();
        // Bits 4-7 do not exist: Linux's XScale probe sets bit 6 and must read it back as 0.
        serial.write(IER_OFFSET, 0xff);
        assert_eq!(serial.read(IER_OFFSET), IER_UART_VALID_BITS);
        serial.write(IER_OFFSET, 0);
        let edges = trigger.count();

        assert_eq!(serial.enqueue_raw_bytes(&RAW_INPUT_BUF), RAW_INPUT_BUF.len());
        assert_eq!(serial.read(IIR_OFFSET), IIR_NONE_BIT | IIR_FIFO_BITS, "data waits, but RDA is masked");
        assert_ne!(serial.read(LSR_OFFSET) & LSR_DATA_READY_BIT, 0, "polling still works");
        assert_eq!(trigger.count(), edges);

        serial.write(IER_OFFSET, IER_RDA_BIT);
        assert_eq!(trigger.count(), edges + 1, "unmasking a pending source is an edge");
        assert_eq!(serial.read(IIR_OFFSET), IIR_RDA_ID | IIR_FIFO_BITS);

        serial.write(IER_OFFSET, 0);
        assert_eq!(serial.read(IIR_OFFSET), IIR_NONE_BIT | IIR_FIFO_BITS);
    }

    #[test]
    fn test_serial_iir_priority() {
        let (mut serial, trigger, _) = linux_ready_serial();
        let all = IER_RDA_BIT | IER_THR_EMPTY_BIT | IER_LINE_STATUS_BIT | IER_MODEM_STATUS_BIT;
        serial.write(IER_OFFSET, all);
        // A modem status change: a trip through loopback drops DSR and CTS, then raises them again.
        serial.write(MCR_OFFSET, MCR_LOOP_BIT | MCR_OUT2_BIT);
        serial.write(MCR_OFFSET, MCR_OUT2_BIT);
        // Data, and one byte too many: an overrun.
        assert_eq!(serial.enqueue_raw_bytes(&[b'x'; FIFO_SIZE + 1]), FIFO_SIZE);
        assert!(trigger.count() >= 1);

        // All four sources are pending; IIR walks them down in priority order as each is cleared.
        assert_eq!(serial.read(IIR_OFFSET), IIR_LINE_STATUS_ID | IIR_FIFO_BITS);
        assert_eq!(serial.read(IIR_OFFSET), IIR_LINE_STATUS_ID | IIR_FIFO_BITS, "reading IIR clears nothing here");
        assert_ne!(serial.read(LSR_OFFSET) & LSR_OVERRUN_ERROR_BIT, 0);

        assert_eq!(serial.read(IIR_OFFSET), IIR_RDA_ID | IIR_FIFO_BITS);
        for _ in 0..FIFO_SIZE {
            assert_eq!(serial.read(DATA_OFFSET), b'x');
        }

        assert_eq!(serial.read(IIR_OFFSET), IIR_THR_EMPTY_ID | IIR_FIFO_BITS, "THRE was hidden, not lost");
        assert_eq!(serial.read(IIR_OFFSET), IIR_MODEM_STATUS_ID | IIR_FIFO_BITS, "the THRE report acknowledged it");
        assert_eq!(serial.read(MSR_OFFSET) & MSR_DELTA_BITS, MSR_DCTS_BIT | MSR_DDSR_BIT);
        assert_eq!(serial.read(IIR_OFFSET), IIR_NONE_BIT | IIR_FIFO_BITS);
    }

    #[test]
    fn test_serial_thre_interrupt_on_ier_enable() {
        let (mut serial, trigger, _) = linux_ready_serial();
        // The THRE test of serial8250_do_startup(): the interrupt must be pending after IER bit 1 is
        // set, and again after it is cleared and set, though the IIR read in between acknowledged it.
        serial.write(IER_OFFSET, IER_THR_EMPTY_BIT);
        assert_eq!(trigger.count(), 1);
        let iir1 = serial.read(IIR_OFFSET);
        assert_eq!(iir1, IIR_THR_EMPTY_ID | IIR_FIFO_BITS);
        assert_eq!(serial.read(IIR_OFFSET), IIR_NONE_BIT | IIR_FIFO_BITS, "acknowledged by the IIR read");
        serial.write(IER_OFFSET, 0);
        serial.write(IER_OFFSET, IER_THR_EMPTY_BIT);
        assert_eq!(trigger.count(), 2);
        assert_eq!(serial.read(IIR_OFFSET), IIR_THR_EMPTY_ID | IIR_FIFO_BITS, "reasserted: no UART_BUG_THRE");

        // Rewriting IER with bit 1 still set is not a rising edge.
        serial.write(IER_OFFSET, IER_THR_EMPTY_BIT | IER_RDA_BIT);
        assert_eq!(serial.read(IIR_OFFSET), IIR_NONE_BIT | IIR_FIFO_BITS);
        assert_eq!(trigger.count(), 2);

        // A THR write brings it back; writing THR also clears it, so a second write is no new edge.
        serial.write(DATA_OFFSET, b'a');
        assert_eq!(trigger.count(), 3);
        serial.write(DATA_OFFSET, b'b');
        assert_eq!(trigger.count(), 3);
        assert_eq!(serial.read(IIR_OFFSET), IIR_THR_EMPTY_ID | IIR_FIFO_BITS);
    }

    #[test]
    fn test_serial_rx_data_interrupt() {
        let (mut serial, trigger, events) = linux_ready_serial();
        serial.write(IER_OFFSET, IER_RDA_BIT);
        assert_eq!(serial.enqueue_raw_bytes(&[]), 0);
        assert_eq!(trigger.count(), 0, "no data, no interrupt");
        assert_eq!(serial.read(LSR_OFFSET) & LSR_DATA_READY_BIT, 0);

        assert_eq!(serial.enqueue_raw_bytes(&RAW_INPUT_BUF), RAW_INPUT_BUF.len());
        assert_eq!(trigger.count(), 1);
        assert_eq!(serial.enqueue_raw_bytes(b"d"), 1);
        assert_eq!(trigger.count(), 1, "already pending: no new edge");
        assert_eq!(serial.fifo_capacity(), FIFO_SIZE - 4);

        for &expected in RAW_INPUT_BUF.iter().chain(b"d") {
            assert_ne!(serial.read(LSR_OFFSET) & LSR_DATA_READY_BIT, 0);
            assert_eq!(serial.read(IIR_OFFSET), IIR_RDA_ID | IIR_FIFO_BITS, "pending until the FIFO is empty");
            assert_eq!(events.in_buffer_empty_count(), 0);
            assert_eq!(serial.read(DATA_OFFSET), expected);
        }
        assert_eq!(serial.read(LSR_OFFSET) & LSR_DATA_READY_BIT, 0);
        assert_eq!(serial.read(IIR_OFFSET), IIR_NONE_BIT | IIR_FIFO_BITS, "reading the last byte cleared it");
        assert!(serial.in_buffer_empty());
        assert_eq!(events.in_buffer_empty_count(), 1, "told once, when the last byte was read");
        assert_eq!(serial.read(DATA_OFFSET), 0, "an empty RBR reads 0");
        assert_eq!(events.in_buffer_empty_count(), 1);
        assert_eq!(serial.fifo_capacity(), FIFO_SIZE);
    }

    #[test]
    fn test_serial_rx_timeout_below_trigger_level() {
        let (mut serial, _, _) = linux_ready_serial();
        serial.write(IER_OFFSET, IER_RDA_BIT);
        // Linux's 16550A setting: FIFO on, trigger level 8 (FCR bits 7-6 = 10).
        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT | 0b1000_0000);
        serial.enqueue_raw_bytes(&[b'k'; 7]);
        assert_eq!(serial.read(IIR_OFFSET), IIR_RX_TIMEOUT_ID | IIR_FIFO_BITS);
        serial.enqueue_raw_bytes(b"k");
        assert_eq!(serial.read(IIR_OFFSET), IIR_RDA_ID | IIR_FIFO_BITS, "trigger level reached");
        serial.read(DATA_OFFSET);
        assert_eq!(serial.read(IIR_OFFSET), IIR_RX_TIMEOUT_ID | IIR_FIFO_BITS, "below it again");

        // No FIFO, no timeout: character mode reports any data as available.
        serial.write(FCR_OFFSET, 0);
        serial.enqueue_raw_bytes(b"k");
        assert_eq!(serial.read(IIR_OFFSET), IIR_RDA_ID);
    }

    #[test]
    fn test_serial_fifo_enable_bits() {
        let (mut serial, _, _) = serial_with(Vec::new());
        assert_eq!(serial.read(IIR_OFFSET) & IIR_FIFO_BITS, 0, "16450 mode after reset");
        assert_eq!(serial.fifo_capacity(), RBR_SIZE);

        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT);
        assert_eq!(serial.read(IIR_OFFSET), IIR_FIFO_BITS | IIR_NONE_BIT);
        assert_eq!(serial.read(IIR_OFFSET) >> 6, 3, "what Linux's autoconfig() calls a 16550A");
        assert_eq!(serial.fifo_capacity(), FIFO_SIZE);

        // Linux's TI16750 probe sets FCR bit 5 and looks for it in IIR bit 5: a 16550A ignores it.
        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT | 0b0010_0000);
        assert_eq!(serial.read(IIR_OFFSET) >> 5, 0b110);

        // With FCR0 clear the other bits are not programmed: this turns the FIFOs off.
        serial.write(FCR_OFFSET, FCR_RCVR_FIFO_RESET_BIT | FCR_RCVR_TRIGGER_BITS);
        assert_eq!(serial.read(IIR_OFFSET), IIR_NONE_BIT);
        assert_eq!(serial.fifo_capacity(), RBR_SIZE);

        // FCR shares its port with IIR, whatever DLAB says.
        serial.write(LCR_OFFSET, LCR_DLAB_BIT);
        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT);
        assert_eq!(serial.read(IIR_OFFSET), IIR_FIFO_BITS | IIR_NONE_BIT);
    }

    #[test]
    fn test_serial_fcr_clears_fifos() {
        let (mut serial, _, events) = serial_with(Vec::new());
        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT);
        serial.enqueue_raw_bytes(&RAW_INPUT_BUF);

        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT | FCR_XMIT_FIFO_RESET_BIT);
        assert_eq!(serial.fifo_capacity(), FIFO_SIZE - RAW_INPUT_BUF.len(), "XMIT reset leaves RCVR alone");

        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT | FCR_RCVR_FIFO_RESET_BIT);
        assert_eq!(serial.fifo_capacity(), FIFO_SIZE);
        assert_eq!(serial.read(LSR_OFFSET) & LSR_DATA_READY_BIT, 0);
        assert_eq!(events.in_buffer_empty_count(), 1, "the event loop may read again");

        // Leaving FIFO mode clears the FIFO too (serial8250_clear_fifos() ends with FCR = 0).
        serial.enqueue_raw_bytes(&RAW_INPUT_BUF);
        serial.write(FCR_OFFSET, 0);
        assert!(serial.in_buffer_empty());
        assert_eq!(events.in_buffer_empty_count(), 2);
    }

    #[test]
    fn test_serial_character_mode_holds_one_byte() {
        let (mut serial, _, _) = serial_with(Vec::new());
        assert_eq!(serial.enqueue_raw_bytes(&RAW_INPUT_BUF), 1);
        assert_eq!(serial.fifo_capacity(), 0);
        let lsr = serial.read(LSR_OFFSET);
        assert_eq!(lsr & (LSR_DATA_READY_BIT | LSR_OVERRUN_ERROR_BIT), LSR_DATA_READY_BIT | LSR_OVERRUN_ERROR_BIT);
        assert_eq!(lsr & LSR_FIFO_ERROR_BIT, 0, "LSR7 is always 0 in 16450 mode");
        assert_eq!(serial.read(DATA_OFFSET), RAW_INPUT_BUF[0]);
        assert_eq!(serial.fifo_capacity(), RBR_SIZE);
    }

    #[test]
    fn test_serial_overrun() {
        let (mut serial, trigger, events) = linux_ready_serial();
        serial.write(IER_OFFSET, IER_LINE_STATUS_BIT);
        let input: Vec<u8> = (0..FIFO_SIZE + 3).map(|i| i as u8).collect();

        assert_eq!(serial.enqueue_raw_bytes(&input), FIFO_SIZE);
        assert_eq!(serial.fifo_capacity(), 0);
        assert_eq!(serial.enqueue_raw_bytes(b"more"), 0);
        assert_eq!(trigger.count(), 1, "one edge for the line status interrupt");
        assert_eq!(serial.read(IIR_OFFSET), IIR_LINE_STATUS_ID | IIR_FIFO_BITS);

        let lsr = serial.read(LSR_OFFSET);
        assert_eq!(lsr & LSR_OVERRUN_ERROR_BIT, LSR_OVERRUN_ERROR_BIT);
        assert_eq!(lsr & LSR_FIFO_ERROR_BIT, 0, "LSR7 counts parity, framing and break errors only");
        assert_eq!(serial.read(LSR_OFFSET) & LSR_OVERRUN_ERROR_BIT, 0, "reading LSR cleared OE");
        assert_eq!(serial.read(IIR_OFFSET), IIR_NONE_BIT | IIR_FIFO_BITS);

        // The FIFO kept the first bytes; the later ones were lost.
        let received: Vec<u8> = (0..FIFO_SIZE).map(|_| serial.read(DATA_OFFSET)).collect();
        assert_eq!(received, input[..FIFO_SIZE]);
        assert_eq!(events.in_buffer_empty_count(), 1);
        assert!(events.errors().is_empty(), "an overrun is the guest's news, not an error");
    }

    #[test]
    fn test_serial_loop_mode() {
        let (mut serial, trigger, _) = linux_ready_serial();
        serial.write(IER_OFFSET, IER_RDA_BIT);
        serial.write(MCR_OFFSET, MCR_LOOP_BIT | MCR_OUT2_BIT);

        for value in 0..FIFO_SIZE as u8 {
            serial.write(DATA_OFFSET, value);
            assert_eq!(serial.read(IIR_OFFSET), IIR_RDA_ID | IIR_FIFO_BITS);
            assert_eq!(serial.read(DATA_OFFSET), value);
        }
        assert!(serial.writer().is_empty(), "nothing reaches the line in loopback");
        assert_eq!(trigger.count(), 0, "loopback forces OUT 2 inactive: no interrupt leaves the board");
        assert_eq!(serial.enqueue_raw_bytes(b"typed"), 0, "the serial input is disconnected");

        // Linux's size_fifo(): 256 bytes out, count what comes back.
        for value in 0..=255u8 {
            serial.write(DATA_OFFSET, value);
        }
        let mut count = 0;
        while serial.read(LSR_OFFSET) & LSR_DATA_READY_BIT != 0 && count < 256 {
            assert_eq!(serial.read(DATA_OFFSET), count as u8);
            count += 1;
        }
        assert_eq!(count, FIFO_SIZE);

        // Data pending when loopback ends: the gate opens and the edge goes out.
        serial.write(DATA_OFFSET, b'q');
        serial.write(MCR_OFFSET, MCR_OUT2_BIT);
        assert_eq!(trigger.count(), 1);
        assert_eq!(serial.read(DATA_OFFSET), b'q');
        serial.write(DATA_OFFSET, b'!');
        assert_eq!(serial.writer().as_slice(), b"!");
    }

    #[test]
    fn test_serial_loopback_msr_mapping() {
        let (mut serial, _, _) = serial_with(sink());
        assert_eq!(serial.read(MSR_OFFSET), DEFAULT_MODEM_STATUS);
        let lines = !MSR_DELTA_BITS;

        // Linux's autoconfig() loopback test: MCR = LOOP | OUT2 | RTS must read back as DCD | CTS.
        serial.write(MCR_OFFSET, MCR_LOOP_BIT | MCR_OUT2_BIT | MCR_RTS_BIT);
        assert_eq!(serial.read(MSR_OFFSET) & lines, 0x90);
        assert_eq!(serial.read(MSR_OFFSET) & lines, MSR_DCD_BIT | MSR_CTS_BIT);

        for (mcr, msr) in [
            (MCR_DTR_BIT, MSR_DSR_BIT),
            (MCR_RTS_BIT, MSR_CTS_BIT),
            (MCR_OUT1_BIT, MSR_RI_BIT),
            (MCR_OUT2_BIT, MSR_DCD_BIT),
        ] {
            serial.write(MCR_OFFSET, MCR_LOOP_BIT | mcr);
            assert_eq!(serial.read(MSR_OFFSET) & lines, msr, "MCR {mcr:#04x}");
        }
        serial.write(MCR_OFFSET, MCR_LOOP_BIT);
        assert_eq!(serial.read(MSR_OFFSET) & lines, 0);

        // Out of loopback the inputs come from the peer again, whatever MCR says.
        serial.write(MCR_OFFSET, MCR_OUT1_BIT);
        assert_eq!(serial.read(MSR_OFFSET) & lines, DEFAULT_MODEM_STATUS);
        assert_eq!(serial.read(MCR_OFFSET), MCR_OUT1_BIT);
        serial.write(MCR_OFFSET, 0xff);
        assert_eq!(serial.read(MCR_OFFSET), MCR_VALID_BITS, "MCR bits 5-7 are always 0");
    }

    #[test]
    fn test_serial_msr_delta_bits() {
        let (mut serial, trigger, _) = linux_ready_serial();
        serial.write(IER_OFFSET, IER_MODEM_STATUS_BIT);
        assert_eq!(serial.read(MSR_OFFSET) & MSR_DELTA_BITS, 0);

        // Into loopback with every output off: CTS, DSR and DCD drop. RI was already off.
        serial.write(MCR_OFFSET, MCR_LOOP_BIT);
        assert_eq!(serial.read(IIR_OFFSET) & IIR_ID_MASK, IIR_MODEM_STATUS_ID);
        assert_eq!(serial.read(MSR_OFFSET), MSR_DCTS_BIT | MSR_DDSR_BIT | MSR_DDCD_BIT);
        assert_eq!(serial.read(MSR_OFFSET), 0, "reading MSR cleared the deltas");
        assert_eq!(serial.read(IIR_OFFSET) & IIR_ID_MASK, IIR_NONE_BIT);

        // RI on is a leading edge: not reported. RI off is the trailing edge: TERI.
        serial.write(MCR_OFFSET, MCR_LOOP_BIT | MCR_OUT1_BIT);
        assert_eq!(serial.read(MSR_OFFSET), MSR_RI_BIT);
        serial.write(MCR_OFFSET, MCR_LOOP_BIT);
        assert_eq!(serial.read(MSR_OFFSET), MSR_TERI_BIT);

        // Deltas accumulate until MSR is read.
        serial.write(MCR_OFFSET, MCR_LOOP_BIT | MCR_DTR_BIT);
        serial.write(MCR_OFFSET, MCR_LOOP_BIT | MCR_DTR_BIT | MCR_RTS_BIT);
        assert_eq!(serial.read(MSR_OFFSET), MSR_DSR_BIT | MSR_CTS_BIT | MSR_DDSR_BIT | MSR_DCTS_BIT);
        assert_eq!(trigger.count(), 0, "in loopback the interrupt does not leave the board");

        // Out of loopback: DCD comes back (the others were already on), and now the edge leaves.
        serial.write(MCR_OFFSET, MCR_OUT2_BIT);
        assert_eq!(trigger.count(), 1);
        assert_eq!(serial.read(IIR_OFFSET) & IIR_ID_MASK, IIR_MODEM_STATUS_ID);
        assert_eq!(serial.read(MSR_OFFSET), DEFAULT_MODEM_STATUS | MSR_DDCD_BIT);
        assert_eq!(serial.read(IIR_OFFSET) & IIR_ID_MASK, IIR_NONE_BIT);

        serial.write(MSR_OFFSET, 0xff);
        assert_eq!(serial.read(MSR_OFFSET), DEFAULT_MODEM_STATUS, "MSR writes are ignored");
    }

    #[test]
    fn test_serial_out2_gates_the_interrupt() {
        let (mut serial, trigger, _) = serial_with(sink());
        serial.write(FCR_OFFSET, FCR_FIFO_ENABLE_BIT);
        serial.write(IER_OFFSET, IER_RDA_BIT | IER_THR_EMPTY_BIT);
        serial.enqueue_raw_bytes(b"x");
        assert_eq!(serial.read(IIR_OFFSET), IIR_RDA_ID | IIR_FIFO_BITS, "the chip sees the interrupt");
        assert_eq!(trigger.count(), 0, "but OUT 2 is off, so the PIC does not");

        serial.write(MCR_OFFSET, MCR_OUT2_BIT);
        assert_eq!(trigger.count(), 1, "OUT 2 opens the gate on a pending interrupt");
        serial.write(MCR_OFFSET, MCR_OUT2_BIT | MCR_DTR_BIT);
        assert_eq!(trigger.count(), 1, "still open: no new edge");

        serial.write(MCR_OFFSET, 0);
        serial.read(DATA_OFFSET);
        serial.write(MCR_OFFSET, MCR_OUT2_BIT);
        assert_eq!(trigger.count(), 2, "THRE was still pending behind the data");
        assert_eq!(serial.read(IIR_OFFSET), IIR_THR_EMPTY_ID | IIR_FIFO_BITS);
        serial.write(MCR_OFFSET, 0);
        serial.write(MCR_OFFSET, MCR_OUT2_BIT);
        assert_eq!(trigger.count(), 2, "nothing pending: opening the gate is no edge");
    }

    #[test]
    fn test_serial_trigger_counts() {
        let (mut serial, trigger, _) = linux_ready_serial();
        let mut expected = 0;
        let mut step = |what: &str, edge: bool| {
            expected += usize::from(edge);
            assert_eq!(trigger.count(), expected, "after {what}");
        };

        serial.write(IER_OFFSET, IER_RDA_BIT | IER_THR_EMPTY_BIT | IER_LINE_STATUS_BIT);
        step("enabling THRE", true);
        serial.enqueue_raw_bytes(b"ab");
        step("input", true);
        serial.enqueue_raw_bytes(b"c");
        step("more input", false);
        assert_eq!(iir_id(&mut serial), IIR_RDA_ID);
        step("an IIR read", false);
        for _ in 0..3 {
            serial.read(DATA_OFFSET);
        }
        step("draining the FIFO", false);
        assert_eq!(iir_id(&mut serial), IIR_THR_EMPTY_ID);
        assert_eq!(iir_id(&mut serial), IIR_NONE_BIT);
        serial.write(DATA_OFFSET, b'1');
        step("a THR write", true);
        serial.write(DATA_OFFSET, b'2');
        step("a second THR write, THRE not acknowledged", false);
        assert_eq!(iir_id(&mut serial), IIR_THR_EMPTY_ID);
        serial.write(DATA_OFFSET, b'3');
        step("a THR write after the IIR read", true);
        serial.enqueue_raw_bytes(&[0; FIFO_SIZE + 1]);
        step("data and overrun at once (one access, one edge)", true);
        serial.read(LSR_OFFSET);
        step("an LSR read", false);
        serial.write(SCR_OFFSET, 0x5a);
        step("a scratch write", false);
        assert_eq!(serial.writer().as_slice(), b"123");
    }

    #[test]
    fn test_serial_scr() {
        let (mut serial, trigger, _) = serial_with(sink());
        // Linux's autoconfig_8250() scratch test.
        for value in [0xa5, 0x5a, 0x00, 0xff] {
            serial.write(SCR_OFFSET, value);
            assert_eq!(serial.read(SCR_OFFSET), value);
        }
        serial.write(LCR_OFFSET, LCR_DLAB_BIT);
        assert_eq!(serial.read(SCR_OFFSET), 0xff, "DLAB does not touch offset 7");
        assert_eq!(trigger.count(), 0);
    }

    #[test]
    fn test_serial_lsr_writes_are_ignored() {
        let (mut serial, _, _) = serial_with(sink());
        serial.write(LSR_OFFSET, 0x00);
        assert_eq!(serial.read(LSR_OFFSET), DEFAULT_LINE_STATUS);
        serial.write(LSR_OFFSET, LSR_DATA_READY_BIT | LSR_OVERRUN_ERROR_BIT);
        assert_eq!(serial.read(LSR_OFFSET), DEFAULT_LINE_STATUS);
    }

    #[test]
    fn test_invalid_access() {
        let (mut serial, trigger, events) = serial_with(Vec::new());

        // Beyond the eight registers: reads float high, writes go nowhere.
        for offset in [SERIAL_SIZE, SERIAL_SIZE + 1, 0x100, u64::MAX] {
            serial.write(offset, 0x12);
            assert_eq!(serial.read(offset), UNMAPPED_READ_VALUE);
            let mut data = [0u8; 1];
            BusDevice::read(&mut serial, offset, &mut data);
            assert_eq!(data, [UNMAPPED_READ_VALUE]);
        }
        assert_eq!(events.errors().len(), 12);

        // Wide accesses: the first byte is the register, the rest is ignored.
        BusDevice::write(&mut serial, DATA_OFFSET, b"hello");
        assert_eq!(serial.writer().as_slice(), b"h");
        BusDevice::write(&mut serial, SCR_OFFSET, &0x1234_5678u32.to_le_bytes());
        let mut wide = [0u8; 4];
        BusDevice::read(&mut serial, SCR_OFFSET, &mut wide);
        assert_eq!(wide, [0x78, UNMAPPED_READ_VALUE, UNMAPPED_READ_VALUE, UNMAPPED_READ_VALUE]);
        let mut wide = [0u8; 8];
        BusDevice::read(&mut serial, LSR_OFFSET, &mut wide);
        assert_eq!(wide[0], DEFAULT_LINE_STATUS);
        let errors = events.errors();
        assert_eq!(errors.len(), 16);
        assert_eq!(errors[12], "5-byte access at serial offset 0: only the first byte was used");

        // Empty accesses do nothing.
        BusDevice::write(&mut serial, DATA_OFFSET, &[]);
        BusDevice::read(&mut serial, DATA_OFFSET, &mut []);
        assert_eq!(serial.writer().as_slice(), b"h");
        assert_eq!(events.errors().len(), 16);
        assert_eq!(trigger.count(), 0);
    }

    #[test]
    fn test_linux_autoconfig_finds_a_16550a() {
        // The probe sequence of autoconfig() and autoconfig_16550a() in 8250_port.c, through the bus.
        let (mut serial, _, _) = serial_with(sink());
        let mut port = |offset: u64, value: Option<u8>| -> u8 {
            match value {
                Some(value) => {
                    BusDevice::write(&mut serial, offset, &[value]);
                    0
                }
                None => {
                    let mut data = [0u8];
                    BusDevice::read(&mut serial, offset, &mut data);
                    data[0]
                }
            }
        };
        let (lcr_conf_mode_a, lcr_conf_mode_b, efr) = (0x80, 0xbf, 2);

        // The IER existence test.
        port(IER_OFFSET, Some(0));
        assert_eq!(port(IER_OFFSET, None) & 0x0f, 0);
        port(IER_OFFSET, Some(0x0f));
        assert_eq!(port(IER_OFFSET, None) & 0x0f, 0x0f);
        port(IER_OFFSET, Some(0));
        // The loopback test.
        port(MCR_OFFSET, Some(MCR_LOOP_BIT | 0x0a));
        assert_eq!(port(MSR_OFFSET, None) & 0xf0, 0x90);
        port(MCR_OFFSET, Some(0));
        // EFR := 0 (a FCR write on a 16550A), then the FIFO test: IIR bits 7-6 = 3 is a 16550A.
        port(LCR_OFFSET, Some(lcr_conf_mode_b));
        port(efr, Some(0));
        port(LCR_OFFSET, Some(0));
        port(FCR_OFFSET, Some(FCR_FIFO_ENABLE_BIT));
        assert_eq!(port(IIR_OFFSET, None) >> 6, 3);
        // No EFR: reading "EFR" with DLAB set, or in configuration mode B, gives IIR, never 0.
        port(LCR_OFFSET, Some(lcr_conf_mode_a));
        assert_ne!(port(efr, None), 0);
        port(LCR_OFFSET, Some(lcr_conf_mode_b));
        assert_ne!(port(efr, None), 0);
        // Not a National SuperIO: "EXCR1" (offset 2 with LCR = 0xe0) does not follow MCR LOOP.
        port(LCR_OFFSET, Some(0));
        let status1 = port(MCR_OFFSET, None);
        port(LCR_OFFSET, Some(0xe0));
        let status2 = port(2, None);
        assert_eq!((status1 ^ status2) & MCR_LOOP_BIT, 0);
        port(LCR_OFFSET, Some(0));
        port(MCR_OFFSET, Some(status1 ^ MCR_LOOP_BIT));
        port(LCR_OFFSET, Some(0xe0));
        let status2 = port(2, None);
        port(LCR_OFFSET, Some(0));
        port(MCR_OFFSET, Some(status1));
        assert_eq!((status1 ^ status2) & MCR_LOOP_BIT, 0);
        // Not a TI16750: IIR bit 5 ignores FCR bit 5, with or without DLAB.
        port(FCR_OFFSET, Some(FCR_FIFO_ENABLE_BIT | 0x20));
        let status1 = port(IIR_OFFSET, None) >> 5;
        port(FCR_OFFSET, Some(FCR_FIFO_ENABLE_BIT));
        port(LCR_OFFSET, Some(lcr_conf_mode_a));
        port(FCR_OFFSET, Some(FCR_FIFO_ENABLE_BIT | 0x20));
        let status2 = port(IIR_OFFSET, None) >> 5;
        port(FCR_OFFSET, Some(FCR_FIFO_ENABLE_BIT));
        port(LCR_OFFSET, Some(0));
        assert_ne!((status1, status2), (6, 7));
        // Not an XScale: IER bit 6 (UUE) does not stick.
        port(IER_OFFSET, Some(0x40));
        assert_eq!(port(IER_OFFSET, None) & 0x40, 0);
        port(IER_OFFSET, Some(0));
    }

    #[test]
    fn test_serial_on_the_port_bus() {
        use stage02::bus::{Bus, SharedDevice};
        const COM1: u64 = 0x3f8;

        let serial = Arc::new(Mutex::new(Serial::new(CountingTrigger::default(), Vec::new())));
        let device: SharedDevice = serial.clone();
        let bus = Bus::new("pio");
        bus.insert("serial", COM1, SERIAL_SIZE, device).unwrap();

        bus.write(COM1 + DATA_OFFSET, b"A").unwrap();
        let mut lsr = [0u8];
        bus.read(COM1 + LSR_OFFSET, &mut lsr).unwrap();
        assert_eq!(lsr, [DEFAULT_LINE_STATUS]);
        assert!(bus.read(COM1 + SERIAL_SIZE, &mut lsr).is_none(), "0x400 is not ours");
        assert_eq!(serial.lock().unwrap().writer().as_slice(), b"A");
    }
}
