//! The guest-physical address map: every magic address of the machine lives here.
//!
//! ```text
//! 0x0000_0000 ┌──────────────────────┐
//!             │ low RAM (640 KiB)    │ region 0: real-mode code, BIOS data area, zero page
//! 0x000a_0000 ├──────────────────────┤
//!             │ legacy window        │ no RAM: VGA, option ROMs, BIOS (MMIO)
//! 0x0010_0000 ├──────────────────────┤
//!             │ main RAM             │ region 1: up to 3 GiB
//! 0xc000_0000 ├──────────────────────┤
//!             │ device hole (1 GiB)  │ MMIO devices, IO-APIC, local APIC
//! 0x1_0000_0000├─────────────────────┤
//!             │ high RAM             │ region 2: whatever `--mem` asks beyond 3 GiB
//!             └──────────────────────┘
//! ```
//!
//! # Resources
//! - The PC memory map as Linux sees it: <https://wiki.osdev.org/Memory_Map_(x86)>.
//! - Firecracker's `arch/x86_64/layout.rs`, which this imitates.

/// Start of guest RAM.
pub const LOW_RAM_START: u64 = 0;
/// End of conventional memory (640 KiB); the legacy video and ROM window follows.
pub const LOW_RAM_END: u64 = 0xa_0000;
/// Start of the legacy window (VGA memory, option ROMs, the BIOS).
pub const LEGACY_WINDOW_START: u64 = LOW_RAM_END;
/// Start of RAM above the legacy window: 1 MiB, where Linux is loaded.
pub const MAIN_RAM_START: u64 = 0x10_0000;
/// Start of the 32-bit device hole: RAM stops here and MMIO devices begin.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// Size of the 32-bit device hole.
pub const MMIO_HOLE_SIZE: u64 = 0x4000_0000;
/// RAM that does not fit below the hole continues here (4 GiB).
pub const HIGH_RAM_START: u64 = MMIO_HOLE_START + MMIO_HOLE_SIZE;

/// The smallest `--mem` that leaves some RAM above 1 MiB.
pub const MIN_MEM_SIZE: u64 = 2 << 20;
/// The largest `--mem` we accept (a sanity bound, far above what the lab needs).
pub const MAX_MEM_SIZE: u64 = 1 << 40;

/// Where the stage-2 demo device sits: inside the legacy window, so real-mode code can reach it.
pub const DEMO_DEVICE_START: u64 = LEGACY_WINDOW_START;

// qa:begin stage2-ram-regions
/// Splits `mem_size` bytes of RAM around the legacy window and the device hole.
///
/// Returns `(start, size)` pairs in address order. Like a real PC, the 384 KiB legacy window
/// is address space, not RAM, so the guest gets `mem_size - 384 KiB` of usable RAM.
pub fn ram_regions(mem_size: u64) -> Vec<(u64, u64)> {
    let mut regions = vec![(LOW_RAM_START, LOW_RAM_END.min(mem_size))];
    let below_hole_end = mem_size.min(MMIO_HOLE_START);
    if below_hole_end > MAIN_RAM_START {
        regions.push((MAIN_RAM_START, below_hole_end - MAIN_RAM_START));
    }
    if mem_size > MMIO_HOLE_START {
        regions.push((HIGH_RAM_START, mem_size - MMIO_HOLE_START));
    }
    regions
}
// qa:end stage2-ram-regions

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn small_memory_has_a_low_and_a_main_region() {
        assert_eq!(ram_regions(256 * MIB), vec![(0, 0xa_0000), (MIB, 255 * MIB)]);
    }

    #[test]
    fn ram_never_overlaps_the_legacy_window_or_the_device_hole() {
        for mem in [2 * MIB, 3 * GIB, 3 * GIB + 4096, 8 * GIB] {
            for (start, size) in ram_regions(mem) {
                let end = start + size;
                assert!(end <= LEGACY_WINDOW_START || start >= MAIN_RAM_START, "{mem:#x}");
                assert!(end <= MMIO_HOLE_START || start >= HIGH_RAM_START, "{mem:#x}");
            }
        }
    }

    #[test]
    fn memory_beyond_3_gib_moves_above_4_gib() {
        assert_eq!(ram_regions(5 * GIB), vec![(0, 0xa_0000), (MIB, 3 * GIB - MIB), (4 * GIB, 2 * GIB)]);
    }
}
