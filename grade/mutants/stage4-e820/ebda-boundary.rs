// mutant: Tests end > LOW_RAM_END instead of >=, so the low region, which ends exactly at 640 KiB, gets no reserved EBDA.
/// Builds the E820 table for `mem`: (address, size, type) entries in address order.
pub fn e820_entries(mem: &GuestMemory) -> Vec<(u64, u64, u32)> {
    let mut entries = Vec::new();
    for region in mem.regions() {
        let (start, end) = (region.start().0, region.end().0);
        if start < EBDA_START && end > LOW_RAM_END {
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
