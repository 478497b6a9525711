//! Identity-mapped page tables, and walking the guest's own page tables.
//!
//! Long mode requires paging. Before the guest has page tables of its own, the VMM builds
//! some: four levels, where virtual address X maps to physical address X for the first 4 GiB,
//! using 2 MiB pages (so no page tables below the page directories are needed).
//!
//! The other direction matters too: to look at the instruction a vCPU stopped on, the VMM
//! must translate the guest's virtual RIP to a guest-physical address by walking whatever
//! tables CR3 points to — tables the guest wrote, so every entry is untrusted.
//!
//! # Resources
//! - Intel SDM vol. 3A, §4.5 "4-Level Paging and 5-Level Paging".

use crate::layout::{IDENTITY_MAPPED_SIZE, PDE_START, PDPTE_START, PML4_START};
use stage02::memory::{GuestAddress, GuestMemory, MemoryError};

/// Entry bit: present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// Entry bit: writable.
pub const PTE_WRITABLE: u64 = 1 << 1;
/// Entry bit (in a PDPTE or PDE): this entry maps a 1 GiB or 2 MiB page directly.
pub const PTE_PAGE_SIZE: u64 = 1 << 7;
/// Bits 12..51 of an entry: the physical address of the next table or of the page.
pub const PTE_ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

const GIB: u64 = 1 << 30;
const TWO_MIB: u64 = 2 << 20;

// lab:begin solution stage3-identity-paging "write a PML4, one PDPT and 2 MiB page directories that map the first 4 GiB to themselves; return the PML4 address for CR3"
/// Writes identity page tables for the first 4 GiB; returns the value for CR3.
pub fn setup_identity_paging(mem: &GuestMemory) -> Result<u64, MemoryError> {
    let directories = IDENTITY_MAPPED_SIZE / GIB;
    mem.write_obj(GuestAddress(PML4_START), PDPTE_START | PTE_PRESENT | PTE_WRITABLE)?;
    for gib in 0..directories {
        let directory = PDE_START + gib * 0x1000;
        mem.write_obj(GuestAddress(PDPTE_START + gib * 8), directory | PTE_PRESENT | PTE_WRITABLE)?;
        for entry in 0..512 {
            let page = gib * GIB + entry * TWO_MIB;
            let pde = page | PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE;
            mem.write_obj(GuestAddress(directory + entry * 8), pde)?;
        }
    }
    Ok(PML4_START)
}
// lab:end

/// Translates a guest-virtual address with the 4-level tables rooted at `cr3`.
///
/// Returns `None` for a non-present entry or a table outside guest RAM: the tables belong to the
/// guest and may say anything.
pub fn translate_gva(mem: &GuestMemory, cr3: u64, gva: u64) -> Option<u64> {
    let mut table = cr3 & PTE_ADDRESS_MASK;
    for level in (0..4).rev() {
        let shift = 12 + 9 * level;
        let index = (gva >> shift) & 0x1ff;
        let entry: u64 = mem.read_obj(GuestAddress(table + index * 8)).ok()?;
        if entry & PTE_PRESENT == 0 {
            return None;
        }
        let address = entry & PTE_ADDRESS_MASK;
        // Levels 2 and 1 (PDPTE, PDE) may map a 1 GiB or 2 MiB page directly.
        if (level == 1 || level == 2) && entry & PTE_PAGE_SIZE != 0 {
            let page_mask = (1u64 << shift) - 1;
            return Some((address & !page_mask) | (gva & page_mask));
        }
        table = address;
    }
    Some(table | (gva & 0xfff))
}

/// Maps the 4 KiB page at guest-virtual `gva` to guest-physical `gpa` in the 4-level tables
/// rooted at `cr3`, taking any missing table from `free_tables` (a bump pointer to zeroed,
/// page-aligned guest RAM, advanced by 4 KiB per table). For tests and demo guests that need
/// a mapping the identity tables do not have, such as the top of the address space.
pub fn map_4k_page(mem: &GuestMemory, cr3: u64, gva: u64, gpa: u64, free_tables: &mut u64) -> Result<(), MemoryError> {
    let mut table = cr3 & PTE_ADDRESS_MASK;
    for level in (1..4).rev() {
        let slot = GuestAddress(table + ((gva >> (12 + 9 * level)) & 0x1ff) * 8);
        let entry: u64 = mem.read_obj(slot)?;
        table = if entry & PTE_PRESENT != 0 {
            entry & PTE_ADDRESS_MASK
        } else {
            let next = *free_tables;
            *free_tables += 0x1000;
            mem.write_obj(slot, next | PTE_PRESENT | PTE_WRITABLE)?;
            next
        };
    }
    mem.write_obj(GuestAddress(table + ((gva >> 12) & 0x1ff) * 8), (gpa & PTE_ADDRESS_MASK) | PTE_PRESENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> GuestMemory {
        GuestMemory::new(&[(0, 16 << 20)]).unwrap()
    }

    #[test]
    fn identity_tables_map_every_address_to_itself() {
        let mem = memory();
        let cr3 = setup_identity_paging(&mem).unwrap();
        for addr in [0, 0x1234, 0x20_0000, 0x1_0000_0000 - 1, 0xc000_1234] {
            assert_eq!(translate_gva(&mem, cr3, addr), Some(addr), "{addr:#x}");
        }
        assert_eq!(translate_gva(&mem, cr3, IDENTITY_MAPPED_SIZE), None, "beyond 4 GiB");
    }

    #[test]
    fn entries_read_back_as_written() {
        let mem = memory();
        setup_identity_paging(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPTE_START | 0x3);
        let second_pde: u64 = mem.read_obj(GuestAddress(PDE_START + 8)).unwrap();
        assert_eq!(second_pde, 0x20_0000 | 0x83);
    }

    #[test]
    fn a_4k_mapping_built_by_the_guest_is_followed() {
        let mem = memory();
        // PML4 at 0x10000 -> PDPT 0x11000 -> PD 0x12000 -> PT 0x13000 -> page 0x55000.
        for (table, next) in [(0x10000u64, 0x11000u64), (0x11000, 0x12000), (0x12000, 0x13000)] {
            mem.write_obj(GuestAddress(table), next | PTE_PRESENT).unwrap();
        }
        mem.write_obj(GuestAddress(0x13000 + 8 * 3), 0x55000u64 | PTE_PRESENT).unwrap();
        assert_eq!(translate_gva(&mem, 0x10000, 0x3abc), Some(0x55abc));
        assert_eq!(translate_gva(&mem, 0x10000, 0x4abc), None, "not present");
    }

    #[test]
    fn a_page_mapped_at_the_top_of_the_address_space_is_found() {
        let mem = memory();
        let cr3 = setup_identity_paging(&mem).unwrap();
        let mut free_tables = 0x10_0000;
        map_4k_page(&mem, cr3, 0xffff_ffff_ffff_f000, 0x55000, &mut free_tables).unwrap();
        assert_eq!(translate_gva(&mem, cr3, u64::MAX), Some(0x55fff));
        assert_eq!(free_tables, 0x10_3000, "three new tables: PDPT, PD, PT");
        assert_eq!(translate_gva(&mem, cr3, 0x1234), Some(0x1234), "the identity map is untouched");
    }

    #[test]
    fn hostile_tables_do_not_escape_guest_ram() {
        let mem = memory();
        mem.write_obj(GuestAddress(0x10000), 0x000f_ffff_ffff_f000u64 | PTE_PRESENT).unwrap();
        assert_eq!(translate_gva(&mem, 0x10000, 0x1000), None);
        assert_eq!(translate_gva(&mem, u64::MAX, 0), None);
    }
}
