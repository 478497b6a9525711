// mutant: Always reports received data available (0x04), never the character timeout (0x0C) for data below the trigger level.
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
            IIR_RDA_ID
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
