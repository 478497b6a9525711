//! The 16550A UART of stage 5 under any sequence of register accesses and host input.
//!
//! Invariants, checked after every step:
//! - the receiver never holds more than its size: [`FIFO_SIZE`] bytes with the FIFOs on, one
//!   without (drained and counted through LSR DR and RBR, as a driver would);
//! - registers read back only the bits a 16550A has (IER 0–3, MCR 0–4, IIR's fixed zeros and one
//!   of its six identifications, LSR with THRE and TEMT always on and no line errors but OE);
//! - every THR write outside loopback reaches the output, exactly one byte; host input is
//!   accepted up to the room there is, none in loopback;
//! - one access raises at most one interrupt edge.

use arbitrary::{Arbitrary, Unstructured};
use stage02::bus::BusDevice;
use stage04::irq::testing::CountingTrigger;
use stage05::devices::serial::*;

/// One step of the guest or the host.
#[derive(Arbitrary, Debug)]
pub enum SerialOp {
    /// The guest reads a register (offsets 8–11 are past the UART).
    Read {
        /// Offset from the base port, modulo 12.
        offset: u8,
    },
    /// The guest writes a register.
    Write {
        /// Offset from the base port, modulo 12.
        offset: u8,
        /// The byte written.
        value: u8,
    },
    /// The guest reads 0 to 8 bytes at once through the bus.
    WideRead {
        /// Offset from the base port, modulo 8.
        offset: u8,
        /// Access size, modulo 9.
        len: u8,
    },
    /// The guest writes 0 to 8 bytes at once through the bus.
    WideWrite {
        /// Offset from the base port, modulo 8.
        offset: u8,
        /// The bytes, cut to 8.
        bytes: Vec<u8>,
    },
    /// The host hands input to the UART regardless of the room left (overruns).
    Input(Vec<u8>),
    /// The host hands input as the event loop does: only what [`Serial::receive_room`] allows.
    PolitInput(Vec<u8>),
    /// The guest reads everything the receiver holds; the count is checked against its size.
    Drain,
}

/// Runs one input: a list of [`SerialOp`]s on a UART in its reset state.
pub fn serial(data: &[u8]) {
    let Ok(ops) = Vec::<SerialOp>::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let trigger = CountingTrigger::default();
    let mut uart = Serial::new(trigger.clone(), Vec::new());
    let mut expected_output = 0usize;
    for (step, op) in ops.iter().enumerate() {
        let edges = trigger.count();
        let at = || format!("step {step} ({op:?})");
        match op {
            SerialOp::Read { offset } => {
                let offset = u64::from(offset % 12);
                let dlab = registers(&mut uart).lcr & LCR_DLAB_BIT != 0;
                let value = uart.read(offset);
                check_read(offset, value, dlab, &at);
            }
            SerialOp::Write { offset, value } => {
                let offset = u64::from(offset % 12);
                expected_output += transmits(&mut uart, offset) as usize;
                uart.write(offset, *value);
            }
            SerialOp::WideRead { offset, len } => {
                let mut data = vec![0u8; usize::from(len % 9)];
                let dlab = registers(&mut uart).lcr & LCR_DLAB_BIT != 0;
                BusDevice::read(&mut uart, u64::from(offset % 8), &mut data);
                if let Some((&first, rest)) = data.split_first() {
                    check_read(u64::from(offset % 8), first, dlab, &at);
                    assert!(rest.iter().all(|&b| b == UNMAPPED_READ_VALUE), "{}: wide read {data:x?}", at());
                }
            }
            SerialOp::WideWrite { offset, bytes } => {
                let offset = u64::from(offset % 8);
                let bytes = &bytes[..bytes.len().min(8)];
                if !bytes.is_empty() {
                    expected_output += transmits(&mut uart, offset) as usize;
                }
                BusDevice::write(&mut uart, offset, bytes);
            }
            SerialOp::Input(bytes) | SerialOp::PolitInput(bytes) => {
                let room = uart.fifo_capacity();
                let bytes = match op {
                    SerialOp::PolitInput(_) => &bytes[..bytes.len().min(uart.receive_room())],
                    _ => bytes.as_slice(),
                };
                let looping = registers(&mut uart).mcr & MCR_LOOP_BIT != 0;
                let accepted = uart.enqueue_raw_bytes(bytes);
                let expected = if looping { 0 } else { bytes.len().min(room) };
                assert_eq!(accepted, expected, "{}: {} bytes offered with room for {room}", at(), bytes.len());
            }
            SerialOp::Drain => drain(&mut uart, &at),
        }
        assert!(trigger.count() <= edges + 1, "{}: {} interrupt edges for one access", at(), trigger.count() - edges);
        assert!(uart.fifo_capacity() <= FIFO_SIZE, "{}: room for {} bytes", at(), uart.fifo_capacity());
        assert_eq!(uart.writer().len(), expected_output, "{}: bytes transmitted", at());
    }
    drain(&mut uart, &|| "the end".to_string());
}

/// The registers a check may read without side effects.
struct Registers {
    lcr: u8,
    mcr: u8,
}

fn registers<T: Trigger, W: std::io::Write + Send>(uart: &mut Serial<T, W>) -> Registers {
    Registers { lcr: uart.read(LCR_OFFSET), mcr: uart.read(MCR_OFFSET) }
}

/// Whether a write at `offset` now is a THR write that leaves on the line.
fn transmits<T: Trigger, W: std::io::Write + Send>(uart: &mut Serial<T, W>, offset: u64) -> bool {
    let Registers { lcr, mcr } = registers(uart);
    offset == DATA_OFFSET && lcr & LCR_DLAB_BIT == 0 && mcr & MCR_LOOP_BIT == 0
}

/// Checks a value read at `offset` against the bits the register can have.
fn check_read(offset: u64, value: u8, dlab: bool, at: &dyn Fn() -> String) {
    match offset {
        IER_OFFSET if !dlab => assert_eq!(value & !IER_UART_VALID_BITS, 0, "{}: IER {value:#x}", at()),
        IIR_OFFSET => {
            let id = value & IIR_ID_MASK;
            let ids = [IIR_NONE_BIT, IIR_LINE_STATUS_ID, IIR_RDA_ID, IIR_RX_TIMEOUT_ID, IIR_THR_EMPTY_ID, 0];
            assert!(ids.contains(&id), "{}: IIR {value:#x}", at());
            assert_eq!(value & 0x30, 0, "{}: IIR bits 4-5 in {value:#x}", at());
            let fifo = value & IIR_FIFO_BITS;
            assert!(fifo == 0 || fifo == IIR_FIFO_BITS, "{}: IIR FIFO bits in {value:#x}", at());
            assert!(id != IIR_RX_TIMEOUT_ID || fifo != 0, "{}: character timeout without FIFOs", at());
        }
        MCR_OFFSET => assert_eq!(value & !MCR_VALID_BITS, 0, "{}: MCR {value:#x}", at()),
        LSR_OFFSET => {
            let always = LSR_THR_EMPTY_BIT | LSR_TRANSMITTER_EMPTY_BIT;
            assert_eq!(value & always, always, "{}: LSR {value:#x} without THRE/TEMT", at());
            let never = LSR_PARITY_ERROR_BIT | LSR_FRAMING_ERROR_BIT | LSR_BREAK_INTERRUPT_BIT | LSR_FIFO_ERROR_BIT;
            assert_eq!(value & never, 0, "{}: LSR {value:#x} has errors the line cannot have", at());
        }
        o if o >= SERIAL_SIZE => assert_eq!(value, UNMAPPED_READ_VALUE, "{}: offset {o}", at()),
        _ => {}
    }
}

/// Reads the receiver empty, as a driver does (LSR DR, then RBR), and checks how much it held.
fn drain<T: Trigger, W: std::io::Write + Send>(uart: &mut Serial<T, W>, at: &dyn Fn() -> String) {
    // RBR is behind the divisor latch while DLAB is set: a driver clears it first.
    let lcr = uart.read(LCR_OFFSET);
    uart.write(LCR_OFFSET, lcr & !LCR_DLAB_BIT);
    let size = if uart.read(IIR_OFFSET) & IIR_FIFO_BITS != 0 { FIFO_SIZE } else { RBR_SIZE };
    let mut held = 0;
    while uart.read(LSR_OFFSET) & LSR_DATA_READY_BIT != 0 {
        uart.read(DATA_OFFSET);
        held += 1;
        assert!(held <= size, "{}: the receiver of {size} bytes held more", at());
    }
    assert!(uart.in_buffer_empty(), "{}: LSR says empty, the receiver does not", at());
    assert_eq!(uart.fifo_capacity(), size, "{}: room in an empty receiver", at());
    uart.write(LCR_OFFSET, lcr);
}
