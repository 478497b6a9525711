//! Trap-and-emulate by the VMM itself, for hosts whose KVM cannot run some guest instructions.
//!
//! On the machines this course is tested on, `/dev/kvm` is `kvm_pvm`: a nested KVM that runs
//! guest kernel code through KVM's instruction emulator. Instructions that emulator lacks end
//! in `KVM_EXIT_INTERNAL_ERROR` (emulation failure) instead of running. The VMM then does what
//! the hardware would have done — exactly the trap-and-emulate idea of the course, one level up:
//! - `int3` and `int n`: step over the instruction and inject the exception (vector 3 or n);
//! - `fwait`: nothing to do (no pending x87 exceptions), step over it;
//! - `clac`/`stac`: flip RFLAGS.AC.
//!
//! One more fix-up concerns Linux only (user-mode `syscall`), so it lives in stage 4, where
//! Linux first runs (`stage04::syscall_fixup`). Both are [`ExitHook`]s: the exit loop a student
//! reads knows nothing about them.
//!
//! Some features must also be hidden on the kernel command line ([`KERNEL_CMDLINE_WORKAROUNDS`])
//! because this host ignores KVM_SET_CPUID2.
//!
//! The layer is detected automatically (`/sys/module/kvm_pvm` exists) and can be forced on or
//! off. On hardware KVM none of these exits happen, so the layer is inert there.
//!
//! # Resources
//! - `../shared/docs/host-kvm.md` of this project; Intel SDM vol. 2 (INT n, SYSCALL).

use crate::exit_hook::{Emulated, ExitHook};
use crate::paging::translate_gva;
use crate::regs::{CR0_PG, EFER_LMA};
use kvm_bindings::kvm_sregs;
use kvm_ioctls::VcpuFd;
use stage02::memory::{GuestAddress, GuestMemory};
use std::sync::atomic::{AtomicU64, Ordering};

/// Kernel command-line options that hide CPU features this host cannot emulate:
/// XSAVE/XRSTOR, `lock cmpxchg16b`, SMAP (`clac`/`stac`) and `popcnt`.
pub const KERNEL_CMDLINE_WORKAROUNDS: &str = "noxsave clearcpuid=cx16,smap,popcnt";

/// What a multi-vCPU boot adds on this host. The application processors do start (INIT/SIPI,
/// the real-mode trampoline, long mode), but Linux then sends IPIs with the paravirtual
/// `KVM_HC_SEND_IPI` hypercall, and a `vmcall` spins inside kvm_pvm without ever completing
/// (the vCPU stays on it, KVM's `hypercalls` counter stays 0). `nopv` makes the kernel a plain
/// x86 guest: IPIs go through the local APIC, which the in-kernel irqchip delivers. The cost is
/// kvm-clock: the kernel falls back to the jiffies clocksource.
pub const KERNEL_CMDLINE_SMP_WORKAROUND: &str = "nopv";

/// The kernel module whose presence means "this host needs the workarounds".
pub const PVM_MODULE_PATH: &str = "/sys/module/kvm_pvm";

/// Opcode of `int3`.
pub const OPCODE_INT3: u8 = 0xcc;
/// Opcode of `int imm8`.
pub const OPCODE_INT_N: u8 = 0xcd;
/// Opcode of `fwait`.
pub const OPCODE_FWAIT: u8 = 0x9b;
/// RFLAGS.AC: alignment check / SMAP override.
pub const RFLAGS_AC: u64 = 1 << 18;
/// Vector of the breakpoint exception (#BP).
pub const VECTOR_BREAKPOINT: u8 = 3;
/// Vector of the general-protection exception (#GP).
pub const VECTOR_GENERAL_PROTECTION: u8 = 13;

/// Whether to use the workarounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WorkaroundMode {
    /// On when the host's KVM is kvm_pvm.
    #[default]
    Auto,
    /// Always on.
    On,
    /// Always off.
    Off,
}

/// How often each workaround fired.
#[derive(Debug, Default)]
pub struct WorkaroundCounts {
    /// Exceptions injected for `int3`/`int n`.
    pub injected_interrupts: AtomicU64,
    /// Instructions skipped or emulated (`fwait`, `clac`, `stac`).
    pub emulated_instructions: AtomicU64,
}

/// The workaround layer. One per VM, shared by its vCPUs.
#[derive(Debug, Default)]
pub struct HostWorkarounds {
    enabled: bool,
    /// How often each workaround fired.
    pub counts: WorkaroundCounts,
}

/// Why an emulation failure could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum WorkaroundError {
    /// The instruction at RIP could not be read.
    #[error("cannot read the instruction at RIP {0:#x}")]
    UnreadableInstruction(u64),
    /// An instruction we do not emulate.
    #[error("cannot emulate instruction bytes {0:02x?} at RIP {1:#x}")]
    Unsupported([u8; 4], u64),
    /// A register ioctl failed.
    #[error("{0} failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
}

/// What the VMM does about the instruction at RIP.
#[derive(Debug, PartialEq, Eq)]
pub enum Emulation {
    /// Skip `length` bytes, then deliver exception `vector` (trap-like: the saved RIP is after it).
    Inject {
        /// Instruction length.
        length: u64,
        /// Exception vector.
        vector: u8,
    },
    /// Skip `length` bytes and set/clear RFLAGS bits.
    Skip {
        /// Instruction length.
        length: u64,
        /// RFLAGS bits to set.
        set: u64,
        /// RFLAGS bits to clear.
        clear: u64,
    },
}

// qa:begin stage3-decode-emulation-failure
/// Decides what to do about the instruction starting with `bytes`.
pub fn decode(bytes: &[u8; 4]) -> Option<Emulation> {
    match *bytes {
        [OPCODE_INT3, ..] => Some(Emulation::Inject { length: 1, vector: VECTOR_BREAKPOINT }),
        [OPCODE_INT_N, vector, ..] => Some(Emulation::Inject { length: 2, vector }),
        [OPCODE_FWAIT, ..] => Some(Emulation::Skip { length: 1, set: 0, clear: 0 }),
        [0x0f, 0x01, 0xca, _] => Some(Emulation::Skip { length: 3, set: 0, clear: RFLAGS_AC }), // clac
        [0x0f, 0x01, 0xcb, _] => Some(Emulation::Skip { length: 3, set: RFLAGS_AC, clear: 0 }), // stac
        _ => None,
    }
}
// qa:end stage3-decode-emulation-failure

impl HostWorkarounds {
    /// Decides whether the layer is on: `Auto` looks for the kvm_pvm module.
    pub fn new(mode: WorkaroundMode) -> Self {
        let enabled = match mode {
            WorkaroundMode::Auto => std::path::Path::new(PVM_MODULE_PATH).exists(),
            WorkaroundMode::On => true,
            WorkaroundMode::Off => false,
        };
        HostWorkarounds { enabled, ..Default::default() }
    }

    /// Whether the layer is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Emulates the instruction at the vCPU's RIP, as the hardware would have run it.
    ///
    /// # Errors
    /// When the instruction cannot be read or is not one the layer knows; the vCPU cannot go on.
    pub fn emulate(&self, vcpu: &VcpuFd, mem: &GuestMemory) -> Result<(), WorkaroundError> {
        let mut regs = vcpu.get_regs().map_err(|e| WorkaroundError::Kvm("KVM_GET_REGS", e))?;
        let sregs = vcpu.get_sregs().map_err(|e| WorkaroundError::Kvm("KVM_GET_SREGS", e))?;
        let mut bytes = [0u8; 4];
        read_virtual(vcpu, mem, &sregs, sregs.cs.base.wrapping_add(regs.rip), &mut bytes)
            .ok_or(WorkaroundError::UnreadableInstruction(regs.rip))?;
        let emulation = decode(&bytes).ok_or(WorkaroundError::Unsupported(bytes, regs.rip))?;
        let (length, vector) = match emulation {
            Emulation::Inject { length, vector } => (length, Some(vector)),
            Emulation::Skip { length, set, clear } => {
                regs.rflags = (regs.rflags | set) & !clear;
                (length, None)
            }
        };
        // The guest chose RIP: an instruction that ends past the top of the address space is
        // a #GP on real hardware (RIP would be non-canonical), never an overflow in the VMM.
        let Some(next) = regs.rip.checked_add(length) else {
            stage02::guest_error!(
                "host-workarounds",
                "instruction at RIP {:#x} runs past the address space; #GP",
                regs.rip
            );
            return inject_exception(vcpu, VECTOR_GENERAL_PROTECTION, Some(0));
        };
        regs.rip = next;
        vcpu.set_regs(&regs).map_err(|e| WorkaroundError::Kvm("KVM_SET_REGS", e))?;
        match vector {
            Some(vector) => {
                inject_exception(vcpu, vector, None)?;
                self.counts.injected_interrupts.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.counts.emulated_instructions.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// One line for the end of a run: how often each workaround fired.
    pub fn summary(&self) -> String {
        format!(
            "{} exceptions injected, {} instructions emulated",
            self.counts.injected_interrupts.load(Ordering::Relaxed),
            self.counts.emulated_instructions.load(Ordering::Relaxed)
        )
    }
}

impl ExitHook for HostWorkarounds {
    fn emulation_failure(&self, _vcpu: u8, fd: &VcpuFd, memory: &GuestMemory) -> Emulated {
        if !self.enabled {
            return Emulated::NotMine;
        }
        match self.emulate(fd, memory) {
            Ok(()) => Emulated::Done,
            Err(e) => Emulated::Failed(e.to_string()),
        }
    }
}

/// Delivers exception `vector` (with its error code, for the vectors that push one) to the
/// guest on its next entry.
pub fn inject_exception(vcpu: &VcpuFd, vector: u8, error_code: Option<u32>) -> Result<(), WorkaroundError> {
    let mut events = vcpu.get_vcpu_events().map_err(|e| WorkaroundError::Kvm("KVM_GET_VCPU_EVENTS", e))?;
    events.exception.injected = 1;
    events.exception.nr = vector;
    events.exception.has_error_code = u8::from(error_code.is_some());
    events.exception.error_code = error_code.unwrap_or(0);
    events.flags = 0;
    vcpu.set_vcpu_events(&events).map_err(|e| WorkaroundError::Kvm("KVM_SET_VCPU_EVENTS", e))
}

/// Reads guest-virtual memory at `address` (a linear address) as the vCPU would see it.
pub fn read_virtual(vcpu: &VcpuFd, mem: &GuestMemory, sregs: &kvm_sregs, address: u64, buf: &mut [u8]) -> Option<()> {
    for (i, byte) in buf.iter_mut().enumerate() {
        let linear = address.wrapping_add(i as u64);
        *byte = mem.read_obj(GuestAddress(virtual_to_physical(vcpu, mem, sregs, linear)?)).ok()?;
    }
    Some(())
}

/// The guest-physical address of linear address `linear`, as the vCPU's paging mode maps it.
pub fn virtual_to_physical(vcpu: &VcpuFd, mem: &GuestMemory, sregs: &kvm_sregs, linear: u64) -> Option<u64> {
    if sregs.cr0 & CR0_PG == 0 {
        Some(linear)
    } else if sregs.efer & EFER_LMA != 0 {
        translate_gva(mem, sregs.cr3, linear)
    } else {
        // 32-bit paging: let KVM walk it.
        let translation = vcpu.translate_gva(linear).ok()?;
        (translation.valid != 0).then_some(translation.physical_address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int3_and_int_n_are_injected_after_the_instruction() {
        assert_eq!(decode(&[0xcc, 0, 0, 0]), Some(Emulation::Inject { length: 1, vector: 3 }));
        assert_eq!(decode(&[0xcd, 0x80, 0, 0]), Some(Emulation::Inject { length: 2, vector: 0x80 }));
    }

    #[test]
    fn fwait_clac_and_stac_are_emulated_in_place() {
        assert_eq!(decode(&[0x9b, 0, 0, 0]), Some(Emulation::Skip { length: 1, set: 0, clear: 0 }));
        assert_eq!(decode(&[0x0f, 0x01, 0xca, 0]), Some(Emulation::Skip { length: 3, set: 0, clear: RFLAGS_AC }));
        assert_eq!(decode(&[0x0f, 0x01, 0xcb, 0]), Some(Emulation::Skip { length: 3, set: RFLAGS_AC, clear: 0 }));
    }

    #[test]
    fn other_instructions_are_not_guessed_at() {
        assert_eq!(decode(&[0x0f, 0xc7, 0x0e, 0]), None); // cmpxchg16b
        assert_eq!(decode(&[0x0f, 0xae, 0x2f, 0]), None); // xrstor
    }

    #[test]
    fn off_means_off() {
        assert!(!HostWorkarounds::new(WorkaroundMode::Off).enabled());
        assert!(HostWorkarounds::new(WorkaroundMode::On).enabled());
    }
}
