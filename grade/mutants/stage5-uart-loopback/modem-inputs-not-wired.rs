// mutant: Leaves the modem status inputs at the virtual peer's values in loopback instead of wiring them to the modem control outputs.
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
        DEFAULT_MODEM_STATUS
    }
