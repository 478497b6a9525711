//! Command-line values shared by every stage from here on.

use crate::layout::{MAX_MEM_SIZE, MIN_MEM_SIZE};

/// Parses a memory size like `256M`, `2G`, `65536K` or `1073741824` (bytes) for `--mem`.
///
/// The result must be a whole number of 4 KiB pages between 2 MiB and 1 TiB.
pub fn parse_mem_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 10),
        Some((i, 'm' | 'M')) => (&text[..i], 20),
        Some((i, 'g' | 'G')) => (&text[..i], 30),
        _ => (text, 0),
    };
    let number: u64 =
        digits.parse().map_err(|_| format!("'{text}' is not a size; use a number with K, M or G, e.g. 256M"))?;
    let bytes = number
        .checked_mul(1 << shift)
        .filter(|b| (MIN_MEM_SIZE..=MAX_MEM_SIZE).contains(b))
        .ok_or_else(|| format!("'{text}' is out of range: guest memory must be between 2M and 1024G"))?;
    if bytes % 4096 != 0 {
        return Err(format!("'{text}' is not a whole number of 4 KiB pages"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_suffixes_parse() {
        assert_eq!(parse_mem_size("256M"), Ok(256 << 20));
        assert_eq!(parse_mem_size("2g"), Ok(2 << 30));
        assert_eq!(parse_mem_size("4096K"), Ok(4 << 20));
        assert_eq!(parse_mem_size("8388608"), Ok(8 << 20));
    }

    #[test]
    fn bad_sizes_are_refused_with_a_reason() {
        for bad in ["", "M", "-1M", "12X", "1M", "5000G", "99999999999999999999G", "2097153"] {
            assert!(parse_mem_size(bad).is_err(), "{bad}");
        }
    }
}
