// mutant: Uses the CRC-32 polynomial in its normal form, 0x04c11db7, with the reflected (right-shifting) algorithm.
/// The CRC-32 polynomial of IEEE 802.3, bit-reversed (the "reflected" form zlib uses).
const CRC32_POLYNOMIAL: u32 = 0x04c1_1db7;

/// CRC-32 as zlib's `crc32()` and Ethernet compute it: reflected, initial value and final
/// XOR all ones. Bit by bit: slow, short, and easy to check against `python3 -c
/// 'import zlib; print(hex(zlib.crc32(b"123456789")))'` (0xcbf43926).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            // Shift one bit out; if it was 1, divide by (XOR with) the polynomial.
            let divide = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (CRC32_POLYNOMIAL & divide);
        }
    }
    !crc
}

impl EduDevice {
    /// The extra operation: CRC-32 of the first `count` bytes of the DMA buffer, computed at
    /// once on the vCPU thread (4 KiB at most, so no worker is needed).
    fn start_crc32(&mut self, count: u32) {
        let Some(bytes) = self.dma_buffer.get(..count as usize) else {
            self.guest_errors.report("edu", &EduError::Crc32Count(count));
            return;
        };
        self.crc32_result = crc32(bytes);
        self.crc32_count = count;
    }
}
