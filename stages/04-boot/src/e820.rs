//! The E820 memory map: how the kernel learns which physical addresses are RAM.
//!
//! On a PC the BIOS answers `int 0x15, eax=0xe820`; with the 64-bit boot protocol there is
//! no BIOS, so the loader writes the same table into the zero page. Each guest RAM region is
//! usable RAM, except the last KiB of conventional memory (the EBDA, where the MP table is),
//! which is reserved. Holes (the legacy window, the device hole) are simply absent.
//!
//! # Resources
//! - Linux `Documentation/arch/x86/zero-page.rst` (`e820_table`); ACPI spec, "System Address
//!   Map Interfaces".

use crate::bootparams::{E820_MAX_ENTRIES, E820_RAM, E820_RESERVED};
use crate::layout::{EBDA_START, LOW_RAM_END};
use stage02::memory::GuestMemory;

// lab:begin solution stage4-e820 "list each guest RAM region as usable RAM, with the EBDA below 640 KiB reserved and the holes left out"
/// Builds the E820 table for `mem`: (address, size, type) entries in address order.
pub fn e820_entries(mem: &GuestMemory) -> Vec<(u64, u64, u32)> {
    let mut entries = Vec::new();
    for region in mem.regions() {
        let (start, end) = (region.start().0, region.end().0);
        if start < EBDA_START && end >= LOW_RAM_END {
            entries.push((start, EBDA_START - start, E820_RAM));
            entries.push((EBDA_START, LOW_RAM_END - EBDA_START, E820_RESERVED));
            if end > LOW_RAM_END {
                entries.push((LOW_RAM_END, end - LOW_RAM_END, E820_RAM));
            }
        } else {
            entries.push((start, end - start, E820_RAM));
        }
    }
    entries.truncate(E820_MAX_ENTRIES);
    entries
}
// lab:end

#[cfg(test)]
mod tests {
    use super::*;
    use stage02::layout::ram_regions;

    #[test]
    fn low_memory_ends_with_a_reserved_ebda_and_holes_are_absent() {
        let mem = GuestMemory::new(&ram_regions(256 << 20)).unwrap();
        assert_eq!(
            e820_entries(&mem),
            vec![
                (0, 0x9fc00, E820_RAM),
                (0x9fc00, 0x400, E820_RESERVED),
                (0x10_0000, (256 << 20) - 0x10_0000, E820_RAM)
            ]
        );
    }

    #[test]
    fn ram_above_4_gib_is_listed() {
        let mem = GuestMemory::new(&ram_regions(4 << 30)).unwrap();
        let entries = e820_entries(&mem);
        assert_eq!(entries.last(), Some(&(1 << 32, 1 << 30, E820_RAM)));
        assert!(entries.iter().all(|&(a, s, _)| a + s <= 0xc000_0000 || a >= 1 << 32), "nothing in the hole");
    }
}
