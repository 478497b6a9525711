// mutant: Registers the RAM with KVM_MEM_READONLY in flags, so every guest write to RAM exits to the VMM as MMIO.
/// Tells KVM about each region: slot `i` maps guest-physical `region.start()` to the host mapping.
pub fn register_memory_slots(vm: &VmFd, memory: &GuestMemory) -> Result<(), VmError> {
    for (slot, region) in memory.regions().iter().enumerate() {
        let slot_region = kvm_bindings::kvm_userspace_memory_region {
            slot: slot as u32,
            flags: kvm_bindings::KVM_MEM_READONLY,
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
