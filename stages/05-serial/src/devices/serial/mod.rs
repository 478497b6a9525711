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
//! The register offsets, bits and reset values are in `registers.rs`, named after the datasheet, and
//! re-exported here; the unit tests, one per register behaviour, are in `tests.rs`.
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

mod registers;
#[cfg(test)]
mod tests;

pub use registers::*;

/// What a read finds where no register answers (offsets from [`SERIAL_SIZE`] on, and the bytes of a
/// wide read beyond the first): all ones, like an ISA data bus that nobody drives.
pub const UNMAPPED_READ_VALUE: u8 = 0xff;

/// Bytes the receive FIFO holds. The PC16550D's is 16 bytes; this one is 64, like vm-superio's, so the
/// VMM can hand over more of its input at a time.
pub const FIFO_SIZE: usize = 64;
/// Bytes the receiver holds while the FIFOs are off: the one-byte RBR of the 16450 character mode.
pub const RBR_SIZE: usize = 1;

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
