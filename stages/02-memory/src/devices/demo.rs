//! A demo MMIO device with three registers, to show an MMIO exit end to end.
//!
//! | offset | name    | access | meaning                                   |
//! |--------|---------|--------|-------------------------------------------|
//! | 0x0    | ID      | read   | [`DEMO_ID`], "MINI" in ASCII              |
//! | 0x4    | SCRATCH | r/w    | holds whatever the guest writes           |
//! | 0x8    | COUNT   | read   | how many writes the device has seen       |
//!
//! Other offsets read as zero and ignore writes. Accesses may be 1, 2 or 4 bytes wide.

use crate::bus::BusDevice;

/// Offset of the identification register.
pub const ID_OFFSET: u64 = 0x0;
/// Offset of the scratch register.
pub const SCRATCH_OFFSET: u64 = 0x4;
/// Offset of the write counter.
pub const COUNT_OFFSET: u64 = 0x8;
/// The value of the ID register: "MINI" read as a little-endian u32.
pub const DEMO_ID: u32 = u32::from_le_bytes(*b"MINI");
/// Size of the device's MMIO range.
pub const DEMO_SIZE: u64 = 0x10;

/// The demo device's registers.
#[derive(Debug, Default)]
pub struct DemoDevice {
    scratch: u32,
    writes: u32,
}

impl DemoDevice {
    fn register(&self, offset: u64) -> u32 {
        match offset {
            ID_OFFSET => DEMO_ID,
            SCRATCH_OFFSET => self.scratch,
            COUNT_OFFSET => self.writes,
            _ => 0,
        }
    }
}

impl BusDevice for DemoDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // A narrow read sees the low bytes of the register (or of the next one, if unaligned).
        let register = offset & !3;
        let next = register.checked_add(4).map_or(0, |r| self.register(r));
        let value = u64::from(self.register(register)) | u64::from(next) << 32;
        let bytes = value.to_le_bytes();
        let start = (offset - register) as usize;
        let end = (start + data.len()).min(bytes.len());
        data.fill(0);
        data[..end - start].copy_from_slice(&bytes[start..end]);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.writes = self.writes.wrapping_add(1);
        if offset == SCRATCH_OFFSET && data.len() <= 4 {
            let mut bytes = self.scratch.to_le_bytes();
            bytes[..data.len()].copy_from_slice(data);
            self.scratch = u32::from_le_bytes(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read32(dev: &mut DemoDevice, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        dev.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    #[test]
    fn id_reads_mini() {
        let mut dev = DemoDevice::default();
        assert_eq!(read32(&mut dev, ID_OFFSET), DEMO_ID);
        let mut byte = [0u8];
        dev.read(ID_OFFSET + 1, &mut byte);
        assert_eq!(byte, [b'I']);
    }

    #[test]
    fn scratch_keeps_what_is_written_and_writes_are_counted() {
        let mut dev = DemoDevice::default();
        dev.write(SCRATCH_OFFSET, &0xdead_beefu32.to_le_bytes());
        dev.write(SCRATCH_OFFSET, &[0x11]);
        assert_eq!(read32(&mut dev, SCRATCH_OFFSET), 0xdead_be11);
        dev.write(ID_OFFSET, &[0; 4]);
        assert_eq!(read32(&mut dev, ID_OFFSET), DEMO_ID, "ID is read-only");
        assert_eq!(read32(&mut dev, COUNT_OFFSET), 3);
    }

    #[test]
    fn odd_accesses_do_not_panic() {
        let mut dev = DemoDevice::default();
        let mut wide = [0xffu8; 8];
        dev.read(0xd, &mut wide);
        dev.read(u64::MAX - 3, &mut wide);
        dev.write(u64::MAX, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(wide, [0; 8]);
    }
}
