//! The stage-1 serial port grown into a bus device: every byte written to it goes to a writer.
//!
//! It is output-only: reads return 0. Stage 4 makes it look enough like a 16550 for Linux, and
//! stage 5 replaces it with a real UART model.

use crate::bus::BusDevice;
use std::io::Write;

/// An output-only port: bytes written at offset 0 are passed to `out`.
pub struct PortConsole<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> PortConsole<W> {
    /// A console that writes to `out` (stdout in the VMM, a `Vec<u8>` in tests).
    pub fn new(out: W) -> Self {
        PortConsole { out }
    }

    /// What has been written so far, for writers that keep it.
    pub fn output(&self) -> &W {
        &self.out
    }
}

impl<W: Write + Send> BusDevice for PortConsole<W> {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 {
            // A console that cannot write (closed stdout) must not stop the guest.
            let _ = self.out.write_all(&data[..1]).and_then(|()| self.out.flush());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_written_to_the_data_port_reach_the_writer() {
        let mut console = PortConsole::new(Vec::new());
        console.write(0, b"h");
        console.write(0, b"i");
        console.write(1, b"x");
        assert_eq!(console.output(), b"hi");
    }
}
