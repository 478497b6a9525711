//! The PC16550D's registers as the guest sees them: offsets from the base port, the bits of each
//! register, and the values after reset, all named after the datasheet.
//!
//! The model in the parent module uses these names and nothing else; the table of which offset
//! reaches which register, and how DLAB changes it, is in the parent module's documentation.
//!
//! # Resources
//! - TI (National Semiconductor) PC16550D datasheet, SNLS378: <https://www.ti.com/lit/ds/symlink/pc16550d.pdf>
//!   ("Register Summary", the register descriptions, and the "Reset" table).

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
