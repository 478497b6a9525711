//! Stage 6's address map, plus the window where PCI BARs are placed.
//!
//! ```text
//! 0xd000_0000 virtio-mmio disks (stage 6)
//! 0xe000_0000 ┬ PCI_MMIO_WINDOW_START: BARs go here
//! 0xf000_0000 ┴ PCI_MMIO_WINDOW_END
//! 0xfec0_0000 IO-APIC, then the local APICs (inside KVM): no BAR may cover them
//! ```

pub use stage06::layout::*;

/// Start of the window where the VMM places BARs (in stage 2's MMIO hole, above virtio-mmio).
pub const PCI_MMIO_WINDOW_START: u64 = 0xe000_0000;
/// End (exclusive) of the BAR window: 256 MiB, well below the IO-APIC.
pub const PCI_MMIO_WINDOW_END: u64 = 0xf000_0000;
/// From the IO-APIC to 4 GiB: APICs, and on real machines HPET and the BIOS flash. A BAR
/// that overlaps it would be shadowed.
pub const HIGH_RESERVED_SIZE: u64 = (1 << 32) - IOAPIC_START;
