// mutant: Points every PDPT entry at the first page directory, so each GiB above the first maps to the first GiB.
/// Writes identity page tables for the first 4 GiB; returns the value for CR3.
pub fn setup_identity_paging(mem: &GuestMemory) -> Result<u64, MemoryError> {
    let directories = IDENTITY_MAPPED_SIZE / GIB;
    mem.write_obj(GuestAddress(PML4_START), PDPTE_START | PTE_PRESENT | PTE_WRITABLE)?;
    for gib in 0..directories {
        let directory = PDE_START + gib * 0x1000;
        mem.write_obj(GuestAddress(PDPTE_START + gib * 8), PDE_START | PTE_PRESENT | PTE_WRITABLE)?;
        for entry in 0..512 {
            let page = gib * GIB + entry * TWO_MIB;
            let pde = page | PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE;
            mem.write_obj(GuestAddress(directory + entry * 8), pde)?;
        }
    }
    Ok(PML4_START)
}
