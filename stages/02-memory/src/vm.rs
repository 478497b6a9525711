//! The VM: a KVM VM file descriptor, its guest memory registered as memory slots, and the buses.

use crate::bus::Bus;
use crate::layout;
use crate::memory::{GuestMemory, MemoryError};
use kvm_ioctls::{Kvm, VmFd};
use std::sync::Arc;

/// Errors from creating the VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// /dev/kvm is missing, inaccessible or speaks another API (stage 1 explains which).
    #[error(transparent)]
    OpenKvm(#[from] stage01::HelloError),
    /// A KVM ioctl on the VM failed.
    #[error("{0} failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// Guest memory could not be set up.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// The port-I/O and MMIO buses, shared by every vCPU thread.
pub struct Buses {
    /// Devices on I/O ports (`in`/`out`).
    pub pio: Bus,
    /// Memory-mapped devices (loads and stores outside RAM).
    pub mmio: Bus,
}

impl Default for Buses {
    fn default() -> Self {
        Buses { pio: Bus::new("pio"), mmio: Bus::new("mmio") }
    }
}

/// A VM with its memory and (still empty) buses.
pub struct Vm {
    /// The /dev/kvm handle, for system-wide queries (supported CPUID, MSR lists).
    pub kvm: Kvm,
    /// The VM file descriptor, shared with devices that raise interrupt lines (KVM_IRQ_LINE).
    pub fd: Arc<VmFd>,
    /// Guest RAM.
    pub memory: Arc<GuestMemory>,
    /// Device buses.
    pub buses: Arc<Buses>,
}

impl Vm {
    /// Opens KVM, creates a VM, maps `mem_size` bytes of RAM around the holes of
    /// [`layout::ram_regions`] and registers one memory slot per region.
    pub fn new(mem_size: u64) -> Result<Vm, VmError> {
        let kvm = stage01::open_kvm()?;
        let fd = kvm.create_vm().map_err(|e| VmError::Kvm("KVM_CREATE_VM", e))?;
        let memory = Arc::new(GuestMemory::new(&layout::ram_regions(mem_size))?);
        register_memory_slots(&fd, &memory)?;
        Ok(Vm { kvm, fd: Arc::new(fd), memory, buses: Arc::new(Buses::default()) })
    }
}

// lab:begin solution stage2-memory-slots "register each guest RAM region with KVM as memory slot i (KVM_SET_USER_MEMORY_REGION)"
/// Tells KVM about each region: slot `i` maps guest-physical `region.start()` to the host mapping.
pub fn register_memory_slots(vm: &VmFd, memory: &GuestMemory) -> Result<(), VmError> {
    for (slot, region) in memory.regions().iter().enumerate() {
        let slot_region = kvm_bindings::kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start().0,
            memory_size: region.size(),
            userspace_addr: region.host_address(),
        };
        // SAFETY: the mapping stays alive as long as `memory`, which the VM's owner keeps for the
        // VM's whole life (`Vm` holds both, and drops the VM fd first).
        unsafe { vm.set_user_memory_region(slot_region) }.map_err(|e| VmError::Kvm("KVM_SET_USER_MEMORY_REGION", e))?;
    }
    Ok(())
}
// lab:end
