//! The Global Descriptor Table: the segments a 64-bit vCPU runs with.
//!
//! In long mode segmentation is mostly gone (bases and limits are ignored for CS/DS/ES/SS), but
//! the CPU still needs a code segment with the L bit set, and Linux expects `__BOOT_CS = 0x10`
//! and `__BOOT_DS = 0x18` when it is entered at its 64-bit entry point. KVM wants the same
//! segments twice: as descriptors in guest memory (the guest may reload them) and as unpacked
//! `kvm_segment`s in the special registers (the hidden part of each segment register).
//!
//! # Resources
//! - Intel SDM vol. 3A, §3.4.5 "Segment Descriptors".
//! - Linux `Documentation/arch/x86/boot.rst`, "64-bit Boot Protocol".

use kvm_bindings::kvm_segment;

/// Selector of the 64-bit code segment (Linux `__BOOT_CS`).
pub const BOOT_CS: u16 = 0x10;
/// Selector of the data segment (Linux `__BOOT_DS`).
pub const BOOT_DS: u16 = 0x18;

// Access and flags bits of a descriptor, as `gdt_entry` takes them: flags in bits 12..15
// (G, D/B, L, AVL), access byte in bits 0..7 (P, DPL, S, type).
/// Granularity: the limit counts 4 KiB pages.
pub const FLAG_GRANULARITY: u16 = 1 << 15;
/// Default operand size 32 bits (must be clear for a 64-bit code segment).
pub const FLAG_DB: u16 = 1 << 14;
/// Long mode: a 64-bit code segment.
pub const FLAG_LONG: u16 = 1 << 13;
/// Present.
pub const ACCESS_PRESENT: u16 = 1 << 7;
/// Code or data (not a system segment).
pub const ACCESS_CODE_OR_DATA: u16 = 1 << 4;
/// Type: execute/read code, accessed.
pub const TYPE_CODE_EXEC_READ: u16 = 0xb;
/// Type: read/write data, accessed.
pub const TYPE_DATA_READ_WRITE: u16 = 0x3;

/// Packs a segment descriptor (SDM figure 3-8).
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    (base & 0xff00_0000) << 32
        | (flags & 0xf0ff) << 40
        | (limit & 0x000f_0000) << 32
        | (base & 0x00ff_ffff) << 16
        | (limit & 0x0000_ffff)
}

/// The boot GDT: null, unused, code at 0x10, data at 0x18.
pub const BOOT_GDT: [u64; 4] = [
    0,
    0,
    gdt_entry(FLAG_GRANULARITY | FLAG_LONG | ACCESS_PRESENT | ACCESS_CODE_OR_DATA | TYPE_CODE_EXEC_READ, 0, 0xfffff),
    gdt_entry(FLAG_GRANULARITY | FLAG_DB | ACCESS_PRESENT | ACCESS_CODE_OR_DATA | TYPE_DATA_READ_WRITE, 0, 0xfffff),
];

// qa:begin stage3-segment
/// Unpacks descriptor `entry` (found at GDT index `index`) into the form KVM_SET_SREGS takes.
pub fn kvm_segment_from_gdt(entry: u64, index: u8) -> kvm_segment {
    let limit = ((entry >> 32) & 0x000f_0000 | entry & 0x0000_ffff) as u32;
    let granular = (entry >> 55) & 1 == 1;
    kvm_segment {
        base: (entry >> 16) & 0x00ff_ffff | (entry >> 32) & 0xff00_0000,
        // With G set, the limit is in 4 KiB units: KVM wants it in bytes.
        limit: if granular { limit << 12 | 0xfff } else { limit },
        selector: u16::from(index) * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g: granular as u8,
        avl: ((entry >> 52) & 1) as u8,
        unusable: u8::from((entry >> 47) & 1 == 0),
        padding: 0,
    }
}
// qa:end stage3-segment

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_descriptors_match_the_well_known_values() {
        // The values every 64-bit boot loader writes (Firecracker, QEMU's linuxboot).
        assert_eq!(BOOT_GDT[2], 0x00af_9b00_0000_ffff);
        assert_eq!(BOOT_GDT[3], 0x00cf_9300_0000_ffff);
    }

    #[test]
    fn code_segment_unpacks_to_a_64_bit_ring_0_segment() {
        let cs = kvm_segment_from_gdt(BOOT_GDT[2], 2);
        assert_eq!(cs.selector, BOOT_CS);
        assert_eq!((cs.l, cs.db, cs.dpl, cs.present, cs.s, cs.type_), (1, 0, 0, 1, 1, 0xb));
        assert_eq!((cs.base, cs.limit, cs.g), (0, 0xffff_ffff, 1));
        let ds = kvm_segment_from_gdt(BOOT_GDT[3], 3);
        assert_eq!((ds.selector, ds.l, ds.db, ds.type_), (BOOT_DS, 0, 1, 3));
    }

    #[test]
    fn base_and_limit_round_trip() {
        let entry = gdt_entry(ACCESS_PRESENT | ACCESS_CODE_OR_DATA | TYPE_DATA_READ_WRITE, 0x1234_5678, 0xabcde);
        let seg = kvm_segment_from_gdt(entry, 5);
        assert_eq!((seg.base, seg.limit, seg.g, seg.selector), (0x1234_5678, 0xabcde, 0, 40));
        assert_eq!(kvm_segment_from_gdt(0, 0).unusable, 1, "the null descriptor is unusable");
    }
}
