//! The guest's page tables, walked by the VMM: GVA → GPA, with every level recorded.
//!
//! A guest-virtual address (GVA) is split into 9-bit indices, one per table, and a 12-bit page
//! offset. CR3 holds the guest-physical address (GPA) of the top table; each present entry
//! holds the GPA of the next table, or — with PS set in a PDPT or PD entry — of a 1 GiB or
//! 2 MiB page. With CR4.LA57 a fifth table (PML5) sits on top and addresses have 57 bits.
//!
//! ```text
//!  63      48 47    39 38    30 29    21 20    12 11         0
//! ┌──────────┬────────┬────────┬────────┬────────┬────────────┐
//! │ sign ext │  PML4  │  PDPT  │   PD   │   PT   │   offset   │
//! └──────────┴────────┴────────┴────────┴────────┴────────────┘
//! ```
//!
//! The MMU does this walk on every TLB miss; the VMM does it by hand, reading the tables out of
//! guest RAM, to answer `gva2gpa`, `x` and `translate`. The tables belong to the guest, so every
//! entry is untrusted: the walk stops, and says where and why, at a non-present entry, at
//! reserved bits, or at a table outside guest RAM. It only reads: unlike the MMU it sets no
//! accessed or dirty bits.
//!
//! Stage 3's [`stage03::paging::translate_gva`] answers only "which GPA, if any" for the
//! host workarounds; [`walk`] gives the same GPA (a test checks it) and also the path.
//!
//! # Resources
//! - Intel SDM vol. 3A, §4.5 "4-Level Paging and 5-Level Paging" (tables 4-15 to 4-20: the
//!   entry formats; §4.5.4: canonical addresses; reserved bits in each table).
//! - AMD APM vol. 2, §5.3 "Long-Mode Page Translation".
//! - Linux `arch/x86/include/asm/pgtable_types.h` (`_PAGE_BIT_*`).

use stage02::memory::{GuestAddress, GuestMemory, MemoryError};
pub use stage03::paging::{PTE_ADDRESS_MASK, PTE_PAGE_SIZE, PTE_PRESENT, PTE_WRITABLE};
use std::fmt;

// qa:begin stage8-entry-bits
/// Entry bit 2 (US): user-mode accesses allowed.
pub const PTE_USER: u64 = 1 << 2;
/// Entry bit 3 (PWT): page-level write-through.
pub const PTE_WRITE_THROUGH: u64 = 1 << 3;
/// Entry bit 4 (PCD): page-level cache disable.
pub const PTE_CACHE_DISABLE: u64 = 1 << 4;
/// Entry bit 5 (A): the MMU has used this entry.
pub const PTE_ACCESSED: u64 = 1 << 5;
/// Entry bit 6 (D): the page has been written (entries that map a page only).
pub const PTE_DIRTY: u64 = 1 << 6;
/// Entry bit 8 (G): global, kept in the TLB across CR3 writes (entries that map a page only).
pub const PTE_GLOBAL: u64 = 1 << 8;
/// Entry bit 63 (XD/NX): no instruction fetches from here (reserved unless EFER.NXE is set).
pub const PTE_NO_EXECUTE: u64 = 1 << 63;
/// Bits 13..29 of a PDPT entry with PS set: reserved (the 1 GiB page is 1 GiB-aligned; bit 12 is PAT).
pub const PDPTE_1G_RESERVED: u64 = 0x3fff_e000;
/// Bits 13..20 of a PD entry with PS set: reserved (the 2 MiB page is 2 MiB-aligned; bit 12 is PAT).
pub const PDE_2M_RESERVED: u64 = 0x1f_e000;
// qa:end stage8-entry-bits

/// Every flag [`EntryFlags`] names, in the order it prints them.
pub const ENTRY_FLAGS: [(u64, &str); 10] = [
    (PTE_PRESENT, "P"),
    (PTE_WRITABLE, "RW"),
    (PTE_USER, "US"),
    (PTE_WRITE_THROUGH, "PWT"),
    (PTE_CACHE_DISABLE, "PCD"),
    (PTE_ACCESSED, "A"),
    (PTE_DIRTY, "D"),
    (PTE_PAGE_SIZE, "PS"),
    (PTE_GLOBAL, "G"),
    (PTE_NO_EXECUTE, "NX"),
];

/// CR0 bit 31 (PG): paging enabled.
pub const CR0_PG: u64 = 1 << 31;
/// CR4 bit 12 (LA57): 5-level paging, 57-bit linear addresses.
pub const CR4_LA57: u64 = 1 << 12;
/// EFER bit 10 (LMA): long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER bit 11 (NXE): entry bit 63 means "no execute".
pub const EFER_NXE: u64 = 1 << 11;

/// Bits of the page offset: pages are 4 KiB.
pub const PAGE_SHIFT: u32 = 12;
/// A 4 KiB page.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Bits of address per table level: 512 eight-byte entries fill one 4 KiB table.
pub const INDEX_BITS: u32 = 9;
/// Mask of one table index.
pub const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Size of one table entry in bytes.
pub const ENTRY_SIZE: u64 = 8;
/// The widest physical address x86-64 defines (MAXPHYADDR ≤ 52): with it no address bit is reserved.
pub const MAX_PHYS_BITS: u8 = 52;

/// One level of the page-table tree, named as Intel names its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Page map level 5 (only with CR4.LA57): bits 48..56 of the GVA.
    Pml5,
    /// Page map level 4: bits 39..47.
    Pml4,
    /// Page-directory-pointer table: bits 30..38; an entry may map a 1 GiB page.
    Pdpt,
    /// Page directory: bits 21..29; an entry may map a 2 MiB page.
    Pd,
    /// Page table: bits 12..20; every entry maps a 4 KiB page.
    Pt,
}

// qa:begin stage8-levels
impl Level {
    /// The level's number, 5 (PML5) down to 1 (PT).
    pub fn number(self) -> u32 {
        match self {
            Level::Pml5 => 5,
            Level::Pml4 => 4,
            Level::Pdpt => 3,
            Level::Pd => 2,
            Level::Pt => 1,
        }
    }

    /// The table's name: `PML5`, `PML4`, `PDPT`, `PD` or `PT`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Pml5 => "PML5",
            Level::Pml4 => "PML4",
            Level::Pdpt => "PDPT",
            Level::Pd => "PD",
            Level::Pt => "PT",
        }
    }

    /// The lowest GVA bit of this level's index.
    pub fn shift(self) -> u32 {
        PAGE_SHIFT + INDEX_BITS * (self.number() - 1)
    }

    /// This level's 9-bit index in `gva`.
    pub fn index(self, gva: u64) -> u64 {
        (gva >> self.shift()) & INDEX_MASK
    }

    /// The page an entry at this level maps when PS is set, if it may map one.
    pub fn large_page(self) -> Option<PageSize> {
        match self {
            Level::Pdpt => Some(PageSize::Size1G),
            Level::Pd => Some(PageSize::Size2M),
            _ => None,
        }
    }
}
// qa:end stage8-levels

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The size of a mapped page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// 4 KiB, mapped by a PT entry.
    Size4K,
    /// 2 MiB, mapped by a PD entry with PS set.
    Size2M,
    /// 1 GiB, mapped by a PDPT entry with PS set.
    Size1G,
}

impl PageSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => PAGE_SIZE,
            PageSize::Size2M => 2 << 20,
            PageSize::Size1G => 1 << 30,
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Size4K => "4 KiB",
            PageSize::Size2M => "2 MiB",
            PageSize::Size1G => "1 GiB",
        })
    }
}

/// An entry's flag bits, printed by name: `P RW US A D NX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFlags(pub u64);

impl fmt::Display for EntryFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = ENTRY_FLAGS.iter().filter(|(bit, _)| self.0 & bit != 0).map(|(_, name)| *name).collect();
        f.write_str(&names.join(" "))
    }
}

/// How a vCPU translates addresses, from its control registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG is clear: a GVA is a GPA.
    Off,
    /// 64-bit long mode with 4- or 5-level tables: what [`walk`] reads.
    Long(Paging),
    /// 32-bit or PAE paging outside long mode (a guest between modes): not walked here.
    Legacy,
}

impl PagingMode {
    /// The mode the registers select. The CPU's physical-address width is unknown here, so no
    /// address bit counts as reserved ([`MAX_PHYS_BITS`]); set [`Paging::max_phys_bits`] from
    /// CPUID 0x80000008 to check those bits too.
    pub fn from_registers(cr0: u64, cr3: u64, cr4: u64, efer: u64) -> PagingMode {
        if cr0 & CR0_PG == 0 {
            PagingMode::Off
        } else if efer & EFER_LMA == 0 {
            PagingMode::Legacy
        } else {
            PagingMode::Long(Paging {
                cr3,
                five_level: cr4 & CR4_LA57 != 0,
                no_execute_enabled: efer & EFER_NXE != 0,
                max_phys_bits: MAX_PHYS_BITS,
            })
        }
    }

    /// GVA → GPA, or why there is none.
    ///
    /// # Errors
    /// [`WalkError::Unmapped`] when the walk stops, [`WalkError::LegacyPaging`] outside long mode.
    pub fn translate(&self, mem: &GuestMemory, gva: u64) -> Result<u64, WalkError> {
        match self {
            PagingMode::Off => Ok(gva),
            PagingMode::Legacy => Err(WalkError::LegacyPaging),
            PagingMode::Long(paging) => {
                let walk = walk(mem, paging, gva);
                walk.gpa().ok_or(WalkError::Unmapped { gva, outcome: walk.outcome })
            }
        }
    }

    /// Reads `buf.len()` bytes of guest-virtual memory at `gva`, translating page by page (the
    /// pages of a virtual range need not be contiguous in guest RAM), as QEMU's `x` does.
    ///
    /// # Errors
    /// [`WalkError`] for the first page that is unmapped or not RAM; `buf` may be partly filled then.
    pub fn read_virtual(&self, mem: &GuestMemory, gva: u64, buf: &mut [u8]) -> Result<(), WalkError> {
        let mut done = 0;
        while done < buf.len() {
            let address = gva.wrapping_add(done as u64);
            let gpa = self.translate(mem, address)?;
            let in_page = (PAGE_SIZE - (address & (PAGE_SIZE - 1))) as usize;
            let len = in_page.min(buf.len() - done);
            let chunk = &mut buf[done..done + len];
            mem.read(GuestAddress(gpa), chunk).map_err(|source| WalkError::NotRam { gva: address, gpa, source })?;
            done += chunk.len();
        }
        Ok(())
    }
}

/// What the walk needs to know about the vCPU: CR3 and the paging features in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// CR3: bits 12..51 are the GPA of the top table; the low bits are cache controls or a PCID.
    pub cr3: u64,
    /// CR4.LA57: five levels and 57-bit addresses instead of four and 48.
    pub five_level: bool,
    /// EFER.NXE: entry bit 63 means "no execute"; without it the bit is reserved.
    pub no_execute_enabled: bool,
    /// The CPU's physical-address width (CPUID 0x80000008 EAX bits 0..7): entry address bits
    /// from here to 51 are reserved.
    pub max_phys_bits: u8,
}

impl Paging {
    /// Plain 4-level paging with NX enabled, as Linux runs: the common case, and the tests'.
    pub fn four_level(cr3: u64) -> Paging {
        Paging { cr3, five_level: false, no_execute_enabled: true, max_phys_bits: MAX_PHYS_BITS }
    }

    /// The tables a walk visits, top first.
    pub fn levels(&self) -> &'static [Level] {
        if self.five_level {
            &[Level::Pml5, Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt]
        } else {
            &[Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt]
        }
    }

    /// How many bits of a GVA the tables translate: 48, or 57 with LA57.
    pub fn address_bits(&self) -> u32 {
        if self.five_level {
            57
        } else {
            48
        }
    }

    /// Whether `gva` is canonical: the bits above the translated ones all copy the highest
    /// translated bit (so there are two halves, user space low and the kernel high).
    pub fn is_canonical(&self, gva: u64) -> bool {
        let top = (gva as i64) >> (self.address_bits() - 1);
        top == 0 || top == -1
    }

    // qa:begin stage8-reserved-bits
    /// The bits of `entry` (present, at `level`) that must be zero; nonzero means the MMU would
    /// raise a page fault with the RSVD error bit.
    pub fn reserved_bits(&self, level: Level, entry: u64) -> u64 {
        let address_bits = u32::from(self.max_phys_bits.min(MAX_PHYS_BITS));
        let mut reserved = PTE_ADDRESS_MASK & !((1u64 << address_bits) - 1);
        if !self.no_execute_enabled {
            reserved |= PTE_NO_EXECUTE;
        }
        let page_size = entry & PTE_PAGE_SIZE != 0;
        match level {
            // PS is reserved in the two top tables: there are no 512 GiB pages.
            Level::Pml5 | Level::Pml4 => reserved |= PTE_PAGE_SIZE,
            Level::Pdpt if page_size => reserved |= PDPTE_1G_RESERVED,
            Level::Pd if page_size => reserved |= PDE_2M_RESERVED,
            _ => {}
        }
        entry & reserved
    }
    // qa:end stage8-reserved-bits
}

/// One table entry the walk read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Which table.
    pub level: Level,
    /// The GPA of the table.
    pub table: u64,
    /// The entry's index in the table (9 bits of the GVA).
    pub index: u64,
    /// The entry's own GPA: `table + index * 8`.
    pub entry_gpa: u64,
    /// The entry as the guest wrote it.
    pub entry: u64,
    /// Where it leads.
    pub next: Next,
}

impl Step {
    /// The entry's flags.
    pub fn flags(&self) -> EntryFlags {
        EntryFlags(self.entry & ENTRY_FLAGS.iter().fold(0, |mask, (bit, _)| mask | bit))
    }
}

/// Where a table entry leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The next table, at this GPA.
    Table(u64),
    /// A page starting at `base`.
    Page {
        /// The page's first GPA.
        base: u64,
        /// Its size.
        size: PageSize,
    },
    /// Nowhere: the walk stopped at this entry (see [`Outcome::Stopped`]).
    Stop,
}

/// Why a walk stopped before reaching a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The entry's P bit is clear: the guest would take a page fault.
    NotPresent,
    /// The entry has these reserved bits set: a page fault with the RSVD error bit.
    ReservedBits(u64),
    /// The table at this GPA is not in guest RAM, so its entry cannot be read.
    TableOutsideRam(u64),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::NotPresent => write!(f, "entry not present"),
            StopReason::ReservedBits(bits) => write!(f, "reserved bits {bits:#x} set"),
            StopReason::TableOutsideRam(table) => write!(f, "table at GPA {table:#x} is outside guest RAM"),
        }
    }
}

/// A GVA that reached a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The guest-physical address.
    pub gpa: u64,
    /// The page that holds it.
    pub page: PageSize,
    /// The page's first GPA.
    pub page_base: u64,
    /// RW set at every level.
    pub writable: bool,
    /// US set at every level: user mode may access it.
    pub user: bool,
    /// NX clear at every level (or NX not enabled).
    pub executable: bool,
}

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The GVA maps to a GPA.
    Mapped(Mapping),
    /// The GVA is not canonical: the MMU raises #GP before any table is read.
    NonCanonical,
    /// The walk stopped at `level`.
    Stopped {
        /// The table whose entry (or whose own address) stopped the walk.
        level: Level,
        /// Why.
        reason: StopReason,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Mapped(m) => write!(f, "GPA {:#x} ({} page at {:#x})", m.gpa, m.page, m.page_base),
            Outcome::NonCanonical => {
                write!(f, "not canonical (the bits above the highest translated bit must copy it)")
            }
            Outcome::Stopped { level, reason } => write!(f, "stopped at {level} (level {}): {reason}", level.number()),
        }
    }
}

/// A recorded walk: the GVA, the tables visited and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// The address translated.
    pub gva: u64,
    /// The registers it was translated with.
    pub paging: Paging,
    /// The entries read, top level first.
    pub steps: Vec<Step>,
    /// The result.
    pub outcome: Outcome,
}

impl Walk {
    /// The GPA, if the walk reached a page.
    pub fn gpa(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Mapped(mapping) => Some(mapping.gpa),
            _ => None,
        }
    }
}

/// Errors from translating a GVA for a read.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The walk did not reach a page.
    #[error("GVA {gva:#x}: {outcome}")]
    Unmapped {
        /// The address.
        gva: u64,
        /// Where the walk stopped.
        outcome: Outcome,
    },
    /// The page is mapped, but to a GPA that is not guest RAM (an MMIO window, say).
    #[error("GVA {gva:#x} maps to GPA {gpa:#x}, which is not guest RAM")]
    NotRam {
        /// The address.
        gva: u64,
        /// Its translation.
        gpa: u64,
        /// What guest memory said.
        #[source]
        source: MemoryError,
    },
    /// The vCPU is not in long mode (32-bit or PAE paging).
    #[error("the vCPU uses 32-bit or PAE paging; only 64-bit long-mode tables are walked")]
    LegacyPaging,
}

// lab:begin solution stage8-page-walk "walk the tables from CR3: at each level read the entry at table + index * 8, stop on a table outside RAM, a clear P bit or reserved bits, follow PS to a 1 GiB or 2 MiB page, and record every entry read"
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
    let mut table = paging.cr3 & PTE_ADDRESS_MASK;
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
// lab:end

#[cfg(test)]
mod tests {
    use super::*;
    use stage03::paging::{setup_identity_paging, translate_gva};

    const RW: u64 = PTE_PRESENT | PTE_WRITABLE;
    const PML4: u64 = 0x10000;
    const PDPT: u64 = 0x11000;
    const PD: u64 = 0x12000;
    const PT: u64 = 0x13000;

    fn memory() -> GuestMemory {
        GuestMemory::new(&[(0, 16 << 20)]).unwrap()
    }

    fn set(mem: &GuestMemory, table: u64, index: u64, entry: u64) {
        mem.write_obj(GuestAddress(table + index * ENTRY_SIZE), entry).unwrap();
    }

    /// A user page at GVA 0x7f12_3456_7000 (indices 254, 72, 418, 359) → GPA 0x55000.
    const USER_GVA: u64 = 0x7f12_3456_7000;

    fn four_level_user_page(mem: &GuestMemory) {
        set(mem, PML4, 254, PDPT | RW | PTE_USER);
        set(mem, PDPT, 72, PD | RW | PTE_USER);
        set(mem, PD, 418, PT | RW | PTE_USER);
        set(mem, PT, 359, 0x55000 | RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY | PTE_NO_EXECUTE);
    }

    #[test]
    fn indices_are_nine_bits_per_level() {
        assert_eq!([Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt].map(|l| l.index(USER_GVA)), [254, 72, 418, 359]);
        assert_eq!(Level::Pml5.index(0x01ff_0000_0000_0000), 0x1ff);
    }

    #[test]
    fn a_4k_page_records_every_level() {
        let mem = memory();
        four_level_user_page(&mem);
        let walk = walk(&mem, &Paging::four_level(PML4 | 0x18), USER_GVA + 0x123);
        let levels: Vec<Level> = walk.steps.iter().map(|s| s.level).collect();
        assert_eq!(levels, [Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt]);
        let first = walk.steps[0];
        assert_eq!((first.table, first.index, first.entry_gpa), (PML4, 254, PML4 + 254 * 8), "CR3's low bits ignored");
        assert_eq!(first.next, Next::Table(PDPT));
        assert_eq!(walk.steps[3].next, Next::Page { base: 0x55000, size: PageSize::Size4K });
        assert_eq!(walk.steps[3].flags().to_string(), "P RW US A D NX");
        let Outcome::Mapped(mapping) = walk.outcome else { panic!("{:?}", walk.outcome) };
        assert_eq!(mapping.gpa, 0x55123);
        assert!(mapping.writable && mapping.user && !mapping.executable);
    }

    #[test]
    fn access_rights_are_the_most_restrictive_of_all_levels() {
        let mem = memory();
        four_level_user_page(&mem);
        set(&mem, PDPT, 72, PD | PTE_PRESENT | PTE_USER); // read-only from the PDPT down
        let Outcome::Mapped(mapping) = walk(&mem, &Paging::four_level(PML4), USER_GVA).outcome else { panic!() };
        assert!(!mapping.writable && mapping.user);
    }

    #[test]
    fn large_pages_end_the_walk_early() {
        let mem = memory();
        set(&mem, PML4, 0, PDPT | RW);
        // PDPT[1]: a 1 GiB page at 3 GiB; PDPT[0] → PD, whose entry 3 is a 2 MiB page at 8 MiB.
        set(&mem, PDPT, 1, 0xc000_0000 | RW | PTE_PAGE_SIZE);
        set(&mem, PDPT, 0, PD | RW);
        set(&mem, PD, 3, 0x80_0000 | RW | PTE_PAGE_SIZE | (1 << 12)); // bit 12: PAT, not address
        let paging = Paging::four_level(PML4);

        let gib = walk(&mem, &paging, 0x4123_4567);
        assert_eq!(gib.gpa(), Some(0xc123_4567));
        assert_eq!(gib.steps.len(), 2);
        assert_eq!(gib.steps[1].next, Next::Page { base: 0xc000_0000, size: PageSize::Size1G });

        let two_mib = walk(&mem, &paging, 0x6f_fff0);
        assert_eq!(two_mib.gpa(), Some(0x80_0000 | 0xf_fff0));
        assert_eq!(two_mib.steps.len(), 3);
    }

    #[test]
    fn a_clear_present_bit_stops_the_walk_at_its_level() {
        let mem = memory();
        four_level_user_page(&mem);
        set(&mem, PD, 418, PT); // P clear
        let walk = walk(&mem, &Paging::four_level(PML4), USER_GVA);
        assert_eq!(walk.outcome, Outcome::Stopped { level: Level::Pd, reason: StopReason::NotPresent });
        assert_eq!(walk.steps.len(), 3, "the non-present entry is recorded");
        assert_eq!(walk.steps[2].next, Next::Stop);
        assert_eq!(walk.outcome.to_string(), "stopped at PD (level 2): entry not present");
    }

    #[test]
    fn reserved_bits_stop_the_walk() {
        let mem = memory();
        four_level_user_page(&mem);
        let mut paging = Paging::four_level(PML4);
        set(&mem, PML4, 254, PDPT | RW | PTE_USER | PTE_PAGE_SIZE); // no 512 GiB pages
        assert_eq!(
            walk(&mem, &paging, USER_GVA).outcome,
            Outcome::Stopped { level: Level::Pml4, reason: StopReason::ReservedBits(PTE_PAGE_SIZE) }
        );
        four_level_user_page(&mem);
        set(&mem, PD, 418, 0x20_0000 | RW | PTE_PAGE_SIZE | 0x2000); // a 2 MiB page must be 2 MiB-aligned
        assert_eq!(
            walk(&mem, &paging, USER_GVA).outcome,
            Outcome::Stopped { level: Level::Pd, reason: StopReason::ReservedBits(0x2000) }
        );
        four_level_user_page(&mem);
        paging.no_execute_enabled = false; // then bit 63 is reserved
        assert_eq!(
            walk(&mem, &paging, USER_GVA).outcome,
            Outcome::Stopped { level: Level::Pt, reason: StopReason::ReservedBits(PTE_NO_EXECUTE) }
        );
        paging.no_execute_enabled = true;
        paging.max_phys_bits = 39; // address bits 39..51 are reserved on such a CPU
        set(&mem, PT, 359, (1 << 40) | RW);
        assert_eq!(
            walk(&mem, &paging, USER_GVA).outcome,
            Outcome::Stopped { level: Level::Pt, reason: StopReason::ReservedBits(1 << 40) }
        );
    }

    #[test]
    fn tables_outside_ram_stop_the_walk_without_reading_them() {
        let mem = memory();
        four_level_user_page(&mem);
        set(&mem, PDPT, 72, 0xd000_0000 | RW); // a "page directory" in the device hole
        let walk = walk(&mem, &Paging::four_level(PML4), USER_GVA);
        assert_eq!(
            walk.outcome,
            Outcome::Stopped { level: Level::Pd, reason: StopReason::TableOutsideRam(0xd000_0000) }
        );
        assert_eq!(walk.steps.len(), 2);
        let hostile = super::walk(&mem, &Paging::four_level(u64::MAX), 0);
        assert_eq!(
            hostile.outcome,
            Outcome::Stopped { level: Level::Pml4, reason: StopReason::TableOutsideRam(PTE_ADDRESS_MASK) }
        );
    }

    #[test]
    fn non_canonical_addresses_are_refused_before_any_table_is_read() {
        let mem = memory();
        let paging = Paging::four_level(PML4);
        for gva in [0x0000_8000_0000_0000, 0xffff_7fff_ffff_ffff, 0x0001_0000_0000_0000] {
            let walk = walk(&mem, &paging, gva);
            assert_eq!((walk.outcome, walk.steps.len()), (Outcome::NonCanonical, 0), "{gva:#x}");
        }
        assert!(paging.is_canonical(0xffff_8000_0000_0000) && paging.is_canonical(0x7fff_ffff_ffff));
        let five = Paging { five_level: true, ..paging };
        assert!(five.is_canonical(0x00ff_0000_0000_0000) && !five.is_canonical(0x0100_0000_0000_0000));
    }

    #[test]
    fn five_level_paging_adds_the_pml5() {
        let mem = memory();
        let gva = 0x0012_3400_0000_0000; // PML5 index 0x12, PML4 index 0x68, the rest 0
        let pml5 = 0x20000;
        set(&mem, pml5, 0x12, PML4 | RW);
        set(&mem, PML4, 0x68, PDPT | RW);
        set(&mem, PDPT, 0, 0x4000_0000 | RW | PTE_PAGE_SIZE);
        let paging = PagingMode::from_registers(CR0_PG, pml5, CR4_LA57, EFER_LMA | EFER_NXE);
        let PagingMode::Long(paging) = paging else { panic!("{paging:?}") };
        let walk = walk(&mem, &paging, gva + 0x42);
        assert_eq!(walk.steps[0].level, Level::Pml5);
        assert_eq!(walk.gpa(), Some(0x4000_0042));
    }

    #[test]
    fn the_gpa_is_the_one_stage3_finds() {
        let mem = memory();
        let cr3 = setup_identity_paging(&mem).unwrap();
        four_level_user_page(&mem);
        set(&mem, cr3, 254, PDPT | RW | PTE_USER); // the user page beside the identity map
        for gva in [0, 0x1234, 0x20_0000, 0xc000_1234, 0xffff_ffff, USER_GVA + 0x9a, 0x1_0000_0000, USER_GVA + 0x1000] {
            assert_eq!(walk(&mem, &Paging::four_level(cr3), gva).gpa(), translate_gva(&mem, cr3, gva), "{gva:#x}");
        }
    }

    #[test]
    fn paging_mode_follows_the_control_registers() {
        assert_eq!(PagingMode::from_registers(0, 0x1000, 0, 0), PagingMode::Off);
        assert_eq!(PagingMode::from_registers(CR0_PG, 0x1000, 0, 0), PagingMode::Legacy);
        let mem = memory();
        assert_eq!(PagingMode::Off.translate(&mem, 0x1234).unwrap(), 0x1234);
        assert!(matches!(PagingMode::Legacy.translate(&mem, 0), Err(WalkError::LegacyPaging)));
    }

    #[test]
    fn virtual_reads_follow_each_page_to_its_own_frame() {
        let mem = memory();
        four_level_user_page(&mem);
        set(&mem, PT, 360, 0x77000 | RW | PTE_USER); // the next virtual page is elsewhere in RAM
        mem.write(GuestAddress(0x55ffc), b"mini").unwrap();
        mem.write(GuestAddress(0x77000), b"virt").unwrap();
        let mode = PagingMode::Long(Paging::four_level(PML4));
        let mut buf = [0u8; 8];
        mode.read_virtual(&mem, USER_GVA + 0xffc, &mut buf).unwrap();
        assert_eq!(&buf, b"minivirt");

        let err = mode.read_virtual(&mem, USER_GVA + 0x1ffc, &mut buf).unwrap_err();
        assert_eq!(err.to_string(), "GVA 0x7f1234569000: stopped at PT (level 1): entry not present");
        set(&mem, PT, 361, 0xd000_0000 | RW); // mapped, but to the device hole
        assert!(matches!(mode.read_virtual(&mem, USER_GVA + 0x2000, &mut buf), Err(WalkError::NotRam { .. })));
    }
}
