//! The BIOS area: read-only memory at 0xE0000–0xFFFFF, where a PC has its BIOS ROM.
//!
//! Stage 2 left the whole legacy window (640 KiB–1 MiB) without memory, so every guest load
//! there is an MMIO exit that the VMM answers with nothing. Linux reads the top of that
//! window a lot at boot, because that is where firmware keeps its tables: `pcibios_irq_init`
//! looks for a PCI interrupt routing table (`$PIR` every 16 bytes, then `$IRT` byte by byte)
//! in 0xF0000–0xFFFFF, `probe_roms` looks for ROM signatures, and `smp_scan_config` would look
//! for the MP floating pointer there if it had not found ours in the EBDA first. On the lab
//! guest that scan alone is about 70,000 of a boot's 87,000 exits.
//!
//! A PC has its BIOS ROM there, QEMU maps the last 128 KiB of its BIOS image there
//! (`isa-bios`), and Firecracker backs it with ordinary guest memory. minivirt maps 128 KiB of
//! zeros with the `KVM_MEM_READONLY` flag: guest loads are served from memory inside KVM (no
//! exit, no table found, as on a board without one), and a guest store — a ROM cannot be
//! written — comes to the VMM as an MMIO write, which nothing on the MMIO bus claims.
//!
//! The area is address space, not RAM: it is not in [`GuestMemory`](stage02::memory::GuestMemory)
//! and the E820 map does not list it ([`crate::e820`]), so the kernel never allocates from it.
//! Its pages are the host's shared zero page until something writes them, which nothing does:
//! it costs no resident memory.
//!
//! # Resources
//! - `KVM_SET_USER_MEMORY_REGION` and `KVM_MEM_READONLY` (`KVM_CAP_READONLY_MEM`):
//!   <https://docs.kernel.org/virt/kvm/api.html>.
//! - Linux `arch/x86/pci/irq.c` (`pirq_find_routing_table`), `arch/x86/kernel/probe_roms.c`,
//!   `arch/x86/kernel/mpparse.c` (`smp_scan_config`).
//! - QEMU `hw/i386/x86.c` (`x86_bios_rom_init`: the `isa-bios` alias at 0xE0000).

use crate::layout::{BIOS_AREA_SIZE, BIOS_AREA_START};
use kvm_ioctls::{Cap, Kvm, VmFd};
use std::io;

/// Errors from mapping the BIOS area.
#[derive(Debug, thiserror::Error)]
pub enum BiosAreaError {
    /// mmap refused the host memory behind it.
    #[error("cannot map the BIOS area: {0}")]
    Mmap(#[source] io::Error),
    /// KVM refused the memory slot.
    #[error("KVM_SET_USER_MEMORY_REGION (read-only BIOS area) failed: {0}")]
    Slot(#[source] kvm_ioctls::Error),
}

/// The read-only memory behind [`BIOS_AREA_START`]: a private anonymous mapping of zeros.
#[derive(Debug)]
pub struct BiosArea {
    host_address: *mut libc::c_void,
    slot: u32,
}

// SAFETY: the mapping is read-only plain memory owned by this struct; nothing in the VMM reads
// or writes it through a Rust reference, only the guest reads it (through KVM).
unsafe impl Send for BiosArea {}
// SAFETY: as above; `&BiosArea` gives access to nothing but its numbers.
unsafe impl Sync for BiosArea {}

impl BiosArea {
    /// Maps the area and registers it as read-only memory slot `slot` (the first slot after
    /// guest RAM's). Returns `None` when the host's KVM has no read-only memory
    /// (`KVM_CAP_READONLY_MEM`): the guest then finds no memory there, as before.
    ///
    /// # Errors
    /// When mmap or KVM refuses.
    pub fn register(kvm: &Kvm, vm: &VmFd, slot: u32) -> Result<Option<BiosArea>, BiosAreaError> {
        if !kvm.check_extension(Cap::ReadonlyMem) {
            return Ok(None);
        }
        // SAFETY: a new private anonymous mapping with no address hint; the result is checked.
        // PROT_READ: the VMM has nothing to write there, and zero pages cost no memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BIOS_AREA_SIZE as usize,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(BiosAreaError::Mmap(io::Error::last_os_error()));
        }
        // Owned from here on: an error below unmaps it.
        let area = BiosArea { host_address: ptr, slot };
        let region = kvm_bindings::kvm_userspace_memory_region {
            slot,
            flags: kvm_bindings::KVM_MEM_READONLY,
            guest_phys_addr: BIOS_AREA_START,
            memory_size: BIOS_AREA_SIZE,
            userspace_addr: area.host_address(),
        };
        // SAFETY: the mapping lives as long as `area`, which the machine keeps until its vCPUs
        // have stopped; a read-only slot never lets the guest write it.
        unsafe { vm.set_user_memory_region(region) }.map_err(BiosAreaError::Slot)?;
        Ok(Some(area))
    }

    /// The KVM memory slot it occupies.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The host virtual address of its first byte.
    pub fn host_address(&self) -> u64 {
        self.host_address as u64
    }
}

impl Drop for BiosArea {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `register`; nothing refers to it any more.
        unsafe { libc::munmap(self.host_address, BIOS_AREA_SIZE as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e820::e820_entries;
    use stage02::layout::ram_regions;
    use stage02::memory::{GuestAddress, GuestMemory};
    use stage02::vm::Vm;

    #[test]
    fn the_area_is_neither_guest_ram_nor_in_the_e820_map() {
        let end = BIOS_AREA_START + BIOS_AREA_SIZE;
        for mem in [2 << 20, 256 << 20, 5 << 30] {
            let memory = GuestMemory::new(&ram_regions(mem)).unwrap();
            assert!(!memory.contains_range(GuestAddress(BIOS_AREA_START), 1), "{mem:#x}");
            assert!(!memory.contains_range(GuestAddress(end - 1), 1), "{mem:#x}");
            for (start, size, kind) in e820_entries(&memory) {
                assert!(start + size <= BIOS_AREA_START || start >= end, "{mem:#x}: {start:#x}+{size:#x} type {kind}");
            }
        }
    }

    #[test]
    fn the_area_takes_the_slot_after_guest_ram_read_only() {
        let vm = Vm::new(256 << 20).expect("this test needs /dev/kvm");
        let slot = vm.memory.regions().len() as u32;
        let area = BiosArea::register(&vm.kvm, &vm.fd, slot).unwrap().expect("x86 KVM has KVM_CAP_READONLY_MEM");
        assert_eq!(area.slot(), 2, "slots 0 and 1 are the 256 MiB guest's RAM");
        // SAFETY: reading the first byte of a live read-only mapping of zeros.
        assert_eq!(unsafe { *(area.host_address() as *const u8) }, 0);
    }
}
