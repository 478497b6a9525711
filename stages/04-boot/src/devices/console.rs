//! An output-only serial console that looks enough like a 16550 for Linux's 8250 driver.
//!
//! Stage 2's console accepted bytes and nothing else. Linux's 8250 driver is pickier: it
//! identifies the UART through the scratch and FIFO registers, and after boot it writes the
//! console through an interrupt-driven transmit queue — without "transmitter empty"
//! interrupts on IRQ 4, user-space output stalls. So this console keeps IER, LCR, MCR, SCR
//! and the divisor latch, always reports the transmitter empty, and raises the THR-empty
//! interrupt when the driver asks for it. Reads of the receive buffer return 0: input comes
//! with stage 5's full 16550A.
//!
//! # Resources
//! - PC16550D datasheet; Linux `drivers/tty/serial/8250/8250_port.c`.

use crate::irq::Trigger;
use stage02::bus::BusDevice;
use std::io::Write;

/// Data (THR on write, RBR on read; DLL when DLAB is set).
pub const DATA: u64 = 0;
/// Interrupt enable (DLM when DLAB is set).
pub const IER: u64 = 1;
/// Interrupt identification (read) / FIFO control (write).
pub const IIR_FCR: u64 = 2;
/// Line control.
pub const LCR: u64 = 3;
/// Modem control.
pub const MCR: u64 = 4;
/// Line status.
pub const LSR: u64 = 5;
/// Modem status.
pub const MSR: u64 = 6;
/// Scratch.
pub const SCR: u64 = 7;
/// IER bit 1: interrupt when the transmit holding register is empty.
pub const IER_THRE: u8 = 0x02;
/// IIR: no interrupt pending.
pub const IIR_NONE: u8 = 0x01;
/// IIR: transmit holding register empty.
pub const IIR_THRE: u8 = 0x02;
/// IIR bits 6–7: FIFOs enabled.
pub const IIR_FIFO_ENABLED: u8 = 0xc0;
/// LSR: transmit holding register empty and transmitter empty.
pub const LSR_THRE_TEMT: u8 = 0x60;
/// LCR bit 7: divisor latch access.
pub const LCR_DLAB: u8 = 0x80;
/// MCR bit 4: loopback.
pub const MCR_LOOP: u8 = 0x10;
/// MSR: carrier detect, data set ready, clear to send.
pub const MSR_CONNECTED: u8 = 0xb0;

/// The console: registers and the THR-empty interrupt state.
pub struct Console<T: Trigger, W: Write + Send> {
    trigger: T,
    out: W,
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr: u8,
    divisor: [u8; 2],
    thre_pending: bool,
}

impl<T: Trigger, W: Write + Send> Console<T, W> {
    /// A console writing to `out` and interrupting through `trigger`.
    pub fn new(trigger: T, out: W) -> Self {
        Console { trigger, out, ier: 0, lcr: 0, mcr: 0, scr: 0, fcr: 0, divisor: [1, 0], thre_pending: false }
    }

    fn raise_thre(&mut self) {
        self.thre_pending = true;
        if self.ier & IER_THRE != 0 {
            // A lost interrupt only slows the guest's output; it must not stop the guest.
            let _ = self.trigger.trigger();
        }
    }
}

impl<T: Trigger, W: Write + Send> BusDevice for Console<T, W> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let dlab = self.lcr & LCR_DLAB != 0;
        let value = match offset {
            DATA if dlab => self.divisor[0],
            IER if dlab => self.divisor[1],
            IER => self.ier,
            IIR_FCR => {
                let fifo = if self.fcr & 1 != 0 { IIR_FIFO_ENABLED } else { 0 };
                if self.thre_pending && self.ier & IER_THRE != 0 {
                    // Reading IIR while it reports THR empty clears that interrupt.
                    self.thre_pending = false;
                    fifo | IIR_THRE
                } else {
                    fifo | IIR_NONE
                }
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => LSR_THRE_TEMT,
            MSR if self.mcr & MCR_LOOP != 0 => {
                // Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD (the 8250 driver's probe checks this).
                let m = self.mcr;
                (m & 1) << 5 | (m & 2) << 3 | (m & 4) << 4 | (m & 8) << 4
            }
            MSR => MSR_CONNECTED,
            SCR => self.scr,
            _ => 0,
        };
        data.fill(0);
        data[0] = value;
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let value = data[0];
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            DATA if dlab => self.divisor[0] = value,
            IER if dlab => self.divisor[1] = value,
            DATA => {
                if self.mcr & MCR_LOOP == 0 {
                    let _ = self.out.write_all(&[value]).and_then(|()| self.out.flush());
                }
                // Transmission is instant: the holding register is empty again at once.
                self.raise_thre();
            }
            IER => {
                let was_enabled = self.ier & IER_THRE != 0;
                self.ier = value & 0x0f;
                // Enabling THRE interrupts while the THR is empty interrupts at once (Linux relies on it).
                if !was_enabled && self.ier & IER_THRE != 0 {
                    self.raise_thre();
                }
            }
            IIR_FCR => self.fcr = value,
            LCR => self.lcr = value,
            MCR => self.mcr = value & 0x1f,
            SCR => self.scr = value,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::testing::CountingTrigger;

    fn read(console: &mut Console<CountingTrigger, Vec<u8>>, offset: u64) -> u8 {
        let mut data = [0u8];
        console.read(offset, &mut data);
        data[0]
    }

    #[test]
    fn output_reaches_the_writer_and_the_transmitter_is_always_empty() {
        let mut console = Console::new(CountingTrigger::default(), Vec::new());
        console.write(DATA, b"o");
        console.write(DATA, b"k");
        assert_eq!(console.out, b"ok");
        assert_eq!(read(&mut console, LSR), LSR_THRE_TEMT);
    }

    #[test]
    fn thre_interrupt_on_enable_and_after_each_byte_cleared_by_iir() {
        let trigger = CountingTrigger::default();
        let mut console = Console::new(trigger.clone(), Vec::new());
        console.write(IER, &[IER_THRE]);
        assert_eq!(trigger.count(), 1);
        assert_eq!(read(&mut console, IIR_FCR), IIR_THRE);
        assert_eq!(read(&mut console, IIR_FCR), IIR_NONE, "reading IIR cleared it");
        console.write(DATA, b"x");
        assert_eq!(trigger.count(), 2);
    }

    #[test]
    fn scratch_divisor_and_loopback_look_like_a_16550() {
        let mut console = Console::new(CountingTrigger::default(), Vec::new());
        console.write(SCR, &[0xa5]);
        assert_eq!(read(&mut console, SCR), 0xa5);
        console.write(LCR, &[LCR_DLAB]);
        console.write(DATA, &[0x0c]);
        assert_eq!(read(&mut console, DATA), 0x0c);
        console.write(LCR, &[0x03]);
        console.write(MCR, &[MCR_LOOP | 0x0a]); // loopback, RTS, OUT2
        assert_eq!(read(&mut console, MSR), 0x90, "CTS and DCD");
        console.write(DATA, b"z");
        assert!(console.out.is_empty(), "loopback output does not leave the UART");
    }
}
