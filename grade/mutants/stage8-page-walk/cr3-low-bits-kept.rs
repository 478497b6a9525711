// mutant: Uses CR3 as the table address without masking off its low bits (PCD, PWT, a PCID).
/// Walks the guest's page tables for `gva`, recording every entry read.
///
/// Never fails and never reads outside guest RAM: whatever the tables say ends up in
/// [`Walk::outcome`].
///
/// # Arguments
/// * `mem` - Guest RAM, where the tables are.
/// * `paging` - CR3 and the paging features of the vCPU whose tables to walk.
/// * `gva` - The address to translate.
///
/// # Example
/// ```
/// use stage02::memory::{GuestAddress, GuestMemory};
/// use stage08::walk::{walk, Paging, PTE_PAGE_SIZE, PTE_PRESENT};
///
/// let mem = GuestMemory::new(&[(0, 0x10_0000)]).unwrap();
/// // PML4 at 0x1000 → PDPT at 0x2000, whose entry 0 maps the first GiB as one page.
/// mem.write_obj(GuestAddress(0x1000), 0x2000u64 | PTE_PRESENT).unwrap();
/// mem.write_obj(GuestAddress(0x2000), PTE_PAGE_SIZE | PTE_PRESENT).unwrap();
/// let walk = walk(&mem, &Paging::four_level(0x1000), 0x1234_5678);
/// assert_eq!(walk.gpa(), Some(0x1234_5678));
/// assert_eq!(walk.steps.len(), 2);
/// ```
pub fn walk(mem: &GuestMemory, paging: &Paging, gva: u64) -> Walk {
    let mut steps = Vec::new();
    let stopped =
        |steps, level, reason| Walk { gva, paging: *paging, steps, outcome: Outcome::Stopped { level, reason } };
    if !paging.is_canonical(gva) {
        return Walk { gva, paging: *paging, steps, outcome: Outcome::NonCanonical };
    }
    let (mut writable, mut user, mut executable) = (true, true, true);
    let mut table = paging.cr3;
    for &level in paging.levels() {
        let index = level.index(gva);
        let entry_gpa = table + index * ENTRY_SIZE;
        let Ok(entry) = mem.read_obj::<u64>(GuestAddress(entry_gpa)) else {
            return stopped(steps, level, StopReason::TableOutsideRam(table));
        };
        let mut step = Step { level, table, index, entry_gpa, entry, next: Next::Stop };
        if entry & PTE_PRESENT == 0 {
            steps.push(step);
            return stopped(steps, level, StopReason::NotPresent);
        }
        let reserved = paging.reserved_bits(level, entry);
        if reserved != 0 {
            steps.push(step);
            return stopped(steps, level, StopReason::ReservedBits(reserved));
        }
        // Access rights are the most restrictive of all levels.
        writable &= entry & PTE_WRITABLE != 0;
        user &= entry & PTE_USER != 0;
        executable &= !(paging.no_execute_enabled && entry & PTE_NO_EXECUTE != 0);

        let address = entry & PTE_ADDRESS_MASK;
        let page = match level.large_page() {
            Some(size) if entry & PTE_PAGE_SIZE != 0 => Some(size),
            _ if level == Level::Pt => Some(PageSize::Size4K),
            _ => None,
        };
        let Some(page) = page else {
            step.next = Next::Table(address);
            steps.push(step);
            table = address;
            continue;
        };
        // In a large page's entry bit 12 is PAT, not an address bit: align the base.
        let base = address & !(page.bytes() - 1);
        step.next = Next::Page { base, size: page };
        steps.push(step);
        let mapping =
            Mapping { gpa: base | (gva & (page.bytes() - 1)), page, page_base: base, writable, user, executable };
        return Walk { gva, paging: *paging, steps, outcome: Outcome::Mapped(mapping) };
    }
    unreachable!("the PT level always maps a page or stops the walk")
}
