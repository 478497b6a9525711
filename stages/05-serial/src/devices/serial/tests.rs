//! Unit tests of the UART: one per register behaviour, asserted against the named constants, and
//! the probe sequences Linux runs on a port it finds.

use super::*;
use std::io::sink;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use stage04::irq::testing::CountingTrigger;

const RAW_INPUT_BUF: [u8; 3] = [b'a', b'b', b'c'];

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
