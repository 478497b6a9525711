//! A CMOS/RTC stub at ports 0x70–0x71, so the kernel's clock read finishes at once.
//!
//! Linux reads the wall-clock time from the MC146818 RTC at boot and waits while the
//! "update in progress" bit is set. An empty bus reads 0xff — the bit is always set — so
//! without this stub the kernel would spin through its retries. Time registers read 0 (the
//! epoch); status register A reports no update in progress; B reports 24-hour binary mode.
//!
//! # Resources
//! - MC146818 datasheet; Linux `drivers/rtc/rtc-mc146818-lib.c`.

use stage02::bus::BusDevice;

/// Status register A: divider on, rate 6, no update in progress.
pub const REGISTER_A: u8 = 0x0a;
/// Status register B.
pub const REGISTER_B: u8 = 0x0b;
/// Status register D.
pub const REGISTER_D: u8 = 0x0d;

/// The CMOS index/data pair.
#[derive(Default)]
pub struct Cmos {
    index: u8,
}

impl BusDevice for Cmos {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = match (offset, self.index) {
            (0, _) => self.index,
            (_, REGISTER_A) => 0x26,
            (_, REGISTER_B) => 0x02 | 0x04, // 24-hour, binary
            (_, REGISTER_D) => 0x80,        // RAM and time valid
            (_, 0x07 | 0x08) => 1,          // day of month, month: 1, not 0
            _ => 0,
        };
        data.fill(0);
        data[0] = value;
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 {
            // Bit 7 is the NMI mask, not part of the index.
            self.index = data[0] & 0x7f;
        }
    }
}
