//! Model-specific registers a booting kernel expects to find in a known state.
//!
//! # Resources
//! - Intel SDM vol. 4, "Model-Specific Registers".
//! - Firecracker `arch/x86_64/msr.rs` `create_boot_msr_entries`, which this follows.

use kvm_bindings::{kvm_msr_entry, Msrs};
use kvm_ioctls::VcpuFd;

/// IA32_SYSENTER_CS.
pub const MSR_IA32_SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
/// IA32_MISC_ENABLE.
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
/// IA32_MISC_ENABLE bit 0: fast string operations.
pub const MISC_ENABLE_FAST_STRING: u64 = 1;
/// IA32_MTRR_DEF_TYPE: the default memory type.
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
/// MTRRs enabled (bit 11), default type write-back (6).
pub const MTRR_ENABLE_WRITE_BACK: u64 = 1 << 11 | 6;
/// IA32_TSC.
pub const MSR_IA32_TSC: u32 = 0x10;
/// STAR: SYSCALL/SYSRET segment selectors.
pub const MSR_STAR: u32 = 0xc000_0081;
/// LSTAR: the 64-bit SYSCALL entry point.
pub const MSR_LSTAR: u32 = 0xc000_0082;
/// CSTAR: the compatibility-mode SYSCALL entry point.
pub const MSR_CSTAR: u32 = 0xc000_0083;
/// SFMASK (IA32_FMASK): RFLAGS bits SYSCALL clears.
pub const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
/// KERNEL_GS_BASE: the value SWAPGS exchanges with GS.base.
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// Errors from setting MSRs.
#[derive(Debug, thiserror::Error)]
pub enum MsrError {
    /// The ioctl failed outright.
    #[error("KVM_SET_MSRS failed: {0}")]
    Kvm(#[source] kvm_ioctls::Error),
    /// KVM accepted only some of the MSRs.
    #[error("KVM_SET_MSRS set {set} of {wanted} MSRs (MSR {failed:#x} was refused)")]
    Partial {
        /// How many were set.
        set: usize,
        /// How many we asked for.
        wanted: usize,
        /// The first one refused.
        failed: u32,
    },
}

/// The boot values: SYSCALL and SYSENTER unset, fast strings on, write-back caching.
pub fn boot_msr_entries() -> Vec<kvm_msr_entry> {
    [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITE_BACK),
    ]
    .into_iter()
    .map(|(index, data)| kvm_msr_entry { index, data, ..Default::default() })
    .collect()
}

/// Sets the boot MSRs on `vcpu`.
pub fn configure_msrs(vcpu: &VcpuFd) -> Result<(), MsrError> {
    let entries = boot_msr_entries();
    let msrs =
        Msrs::from_entries(&entries).map_err(|_| MsrError::Partial { set: 0, wanted: entries.len(), failed: 0 })?;
    let set = vcpu.set_msrs(&msrs).map_err(MsrError::Kvm)?;
    if set != entries.len() {
        return Err(MsrError::Partial { set, wanted: entries.len(), failed: entries[set].index });
    }
    Ok(())
}

/// Reads one MSR; `None` if KVM refuses it.
pub fn read_msr(vcpu: &VcpuFd, index: u32) -> Option<u64> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry { index, ..Default::default() }]).ok()?;
    match vcpu.get_msrs(&mut msrs) {
        Ok(1) => Some(msrs.as_slice()[0].data),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_msrs_leave_syscall_unset_and_caching_on() {
        let entries = boot_msr_entries();
        let value = |index| entries.iter().find(|e| e.index == index).map(|e| e.data);
        assert_eq!(value(MSR_LSTAR), Some(0));
        assert_eq!(value(MSR_MTRR_DEF_TYPE), Some(0x806));
        assert_eq!(value(MSR_IA32_MISC_ENABLE), Some(1));
    }
}
