//! Stage 4's address map, plus where the virtio-mmio disks sit.
//!
//! | disk | window                    | GSI | guest name |
//! |------|---------------------------|-----|------------|
//! | 0    | 0xd000_0000..0xd000_1000  | 5   | /dev/vda   |
//! | 1    | 0xd000_1000..0xd000_2000  | 6   | /dev/vdb   |
//! | …    | + 0x1000 each             | [`DISK_GSIS`] | … |

pub use stage04::layout::*;

/// Where the first disk's register window is: in the 32-bit device hole, below the PCI window.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// The interrupts of disks 0, 1, …: free ISA IRQs (not 8, the RTC, nor 13, the FPU). The MP
/// table routes every ISA IRQ, so the guest finds them.
pub const DISK_GSIS: [u32; 8] = [5, 6, 7, 9, 10, 11, 12, 14];
