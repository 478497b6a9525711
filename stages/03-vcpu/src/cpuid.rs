//! CPUID: what the guest is told about the CPU it runs on.
//!
//! KVM_GET_SUPPORTED_CPUID lists what KVM can virtualise on this host; the VMM edits that
//! list per vCPU (its APIC ID, how many CPUs there are, "you are running on a hypervisor")
//! and hands it to KVM_SET_CPUID2. On this course's hosts KVM_SET_CPUID2 is accepted but not
//! applied (see `host_workarounds`); on hardware KVM it is what the guest sees.
//!
//! # Resources
//! - Intel SDM vol. 2A, CPUID instruction; <https://docs.kernel.org/virt/kvm/api.html>.

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuFd};

/// Leaf 1 (feature information).
pub const LEAF_FEATURES: u32 = 0x1;
/// Leaf 1 EBX bits 31..24: initial APIC ID.
pub const EBX_APIC_ID_SHIFT: u32 = 24;
/// Leaf 1 EBX bits 23..16: maximum number of addressable logical processors.
pub const EBX_CPU_COUNT_SHIFT: u32 = 16;
/// Leaf 1 ECX bit 31: running under a hypervisor.
pub const ECX_HYPERVISOR_BIT: u32 = 1 << 31;
/// Leaf 1 EDX bit 28: more than one logical processor in the package.
pub const EDX_HTT_BIT: u32 = 1 << 28;
/// Leaf 0xA: architectural performance monitoring (hidden: the lab VMM does not virtualise a PMU).
pub const LEAF_PERF_MONITORING: u32 = 0xa;
/// Leaf 0xB: extended topology; EDX holds the x2APIC ID.
pub const LEAF_EXTENDED_TOPOLOGY: u32 = 0xb;

/// Errors from CPUID setup.
#[derive(Debug, thiserror::Error)]
#[error("{0} failed: {1}")]
pub struct CpuidError(&'static str, #[source] kvm_ioctls::Error);

/// The host's supported CPUID, as KVM reports it.
pub fn supported_cpuid(kvm: &Kvm) -> Result<CpuId, CpuidError> {
    kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(|e| CpuidError("KVM_GET_SUPPORTED_CPUID", e))
}

// qa:begin stage3-cpuid-filter
/// Edits `cpuid` for vCPU `id` of `count`.
pub fn filter_cpuid(cpuid: &mut CpuId, id: u8, count: u8) {
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            LEAF_FEATURES => {
                entry.ebx &= 0x0000_ffff;
                entry.ebx |= u32::from(id) << EBX_APIC_ID_SHIFT | u32::from(count) << EBX_CPU_COUNT_SHIFT;
                entry.ecx |= ECX_HYPERVISOR_BIT;
                if count > 1 {
                    entry.edx |= EDX_HTT_BIT;
                }
            }
            LEAF_PERF_MONITORING => (entry.eax, entry.ebx, entry.ecx, entry.edx) = (0, 0, 0, 0),
            LEAF_EXTENDED_TOPOLOGY => entry.edx = u32::from(id),
            _ => {}
        }
    }
}
// qa:end stage3-cpuid-filter

/// Filters the supported CPUID for this vCPU and applies it.
pub fn configure_cpuid(kvm: &Kvm, vcpu: &VcpuFd, id: u8, count: u8) -> Result<(), CpuidError> {
    let mut cpuid = supported_cpuid(kvm)?;
    filter_cpuid(&mut cpuid, id, count);
    vcpu.set_cpuid2(&cpuid).map_err(|e| CpuidError("KVM_SET_CPUID2", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    fn entry(function: u32, ebx: u32, ecx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 { function, ebx, ecx, edx: 0xffff_ffff, ..Default::default() }
    }

    #[test]
    fn each_vcpu_gets_its_apic_id_and_the_hypervisor_bit() {
        let mut cpuid = CpuId::from_entries(&[entry(1, 0xff12_3456, 0), entry(0xb, 0, 0), entry(0xa, 1, 1)]).unwrap();
        filter_cpuid(&mut cpuid, 3, 4);
        let entries = cpuid.as_slice();
        assert_eq!(entries[0].ebx, 0x0304_3456);
        assert_ne!(entries[0].ecx & ECX_HYPERVISOR_BIT, 0);
        assert_eq!(entries[1].edx, 3);
        assert_eq!((entries[2].eax, entries[2].ebx, entries[2].edx), (0, 0, 0));
    }
}
