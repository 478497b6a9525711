// mutant: Lists all of low memory as usable RAM, without the reserved EBDA below 640 KiB where the MP table is.
/// Builds the E820 table for `mem`: (address, size, type) entries in address order.
pub fn e820_entries(mem: &GuestMemory) -> Vec<(u64, u64, u32)> {
    let mut entries = Vec::new();
    for region in mem.regions() {
        let (start, end) = (region.start().0, region.end().0);
        entries.push((start, end - start, E820_RAM));
    }
    entries.truncate(E820_MAX_ENTRIES);
    entries
}
