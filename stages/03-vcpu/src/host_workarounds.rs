//! Trap-and-emulate by the VMM itself, for hosts whose KVM cannot run some guest instructions.
//!
//! On the machines this course is tested on, `/dev/kvm` is `kvm_pvm`: a nested KVM that runs
//! guest kernel code through KVM's instruction emulator. Instructions that emulator lacks end
//! in `KVM_EXIT_INTERNAL_ERROR` (emulation failure) instead of running. The VMM then does what
//! the hardware would have done — exactly the trap-and-emulate idea of the course, one level up:
//! - `int3` and `int n`: step over the instruction and inject the exception (vector 3 or n);
//! - `fwait`: nothing to do (no pending x87 exceptions), step over it;
//! - `clac`/`stac`: flip RFLAGS.AC;
//! - a user-mode `syscall` arrives at LSTAR still in user mode and faults (#PF). The VMM plants
//!   an `int3` on the guest's #PF handler and, when that fault came from a `syscall`, finishes
//!   the `syscall` itself: kernel mode at LSTAR, RFLAGS masked by SFMASK (see [`SyscallHook`]).
//!
//! Some features must also be hidden on the kernel command line ([`KERNEL_CMDLINE_WORKAROUNDS`])
//! because this host ignores KVM_SET_CPUID2.
//!
//! The layer is detected automatically (`/sys/module/kvm_pvm` exists) and can be forced on or
//! off. On hardware KVM none of these exits happen, so the layer is inert there.
//!
//! # Resources
//! - `../shared/docs/host-kvm.md` of this project; Intel SDM vol. 2 (INT n, SYSCALL).

use crate::msrs::{read_msr, MSR_LSTAR, MSR_SYSCALL_MASK};
use crate::paging::translate_gva;
use crate::regs::{CR0_PG, EFER_LMA, RFLAGS_DF, RFLAGS_RESERVED};
use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use stage02::memory::{GuestAddress, GuestMemory};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Kernel command-line options that hide CPU features this host cannot emulate:
/// XSAVE/XRSTOR, `lock cmpxchg16b`, SMAP (`clac`/`stac`) and `popcnt`.
pub const KERNEL_CMDLINE_WORKAROUNDS: &str = "noxsave clearcpuid=cx16,smap,popcnt";

/// What a multi-vCPU boot adds on this host: application processors start in real mode at the
/// kernel's trampoline after INIT/SIPI, and that start-up hangs under kvm_pvm, so the kernel
/// is told to bring up only the boot CPU. It still reads every CPU from the MP table.
pub const KERNEL_CMDLINE_SMP_WORKAROUND: &str = "maxcpus=1";

/// The kernel module whose presence means "this host needs the workarounds".
pub const PVM_MODULE_PATH: &str = "/sys/module/kvm_pvm";

/// Opcode of `int3`.
pub const OPCODE_INT3: u8 = 0xcc;
/// Opcode of `int imm8`.
pub const OPCODE_INT_N: u8 = 0xcd;
/// Opcode of `fwait`.
pub const OPCODE_FWAIT: u8 = 0x9b;
/// Opcode of `cld`.
pub const OPCODE_CLD: u8 = 0xfc;
/// RFLAGS.AC: alignment check / SMAP override.
pub const RFLAGS_AC: u64 = 1 << 18;
/// Vector of the breakpoint exception (#BP).
pub const VECTOR_BREAKPOINT: u8 = 3;
/// Vector of the page-fault exception (#PF).
pub const VECTOR_PAGE_FAULT: u64 = 14;

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
    /// User-mode `syscall`s completed by the VMM.
    pub syscall_fixups: AtomicU64,
}

/// The `int3` planted on the guest's page-fault handler, to finish user-mode `syscall`s.
///
/// A `syscall` on this host jumps to LSTAR but stays at CPL 3, so fetching the (supervisor-only)
/// kernel entry code page-faults. The #PF handler's first real instruction is `cld`; we replace
/// it with `int3`. When that `int3` traps to us and the fault frame on the stack says "user mode,
/// RIP == LSTAR", we drop the frame and resume at LSTAR in kernel mode with the user's RSP and
/// RFLAGS masked by SFMASK, as `syscall` would have. Any other page fault: we emulate `cld`.
#[derive(Debug, Clone, Copy)]
pub struct SyscallHook {
    /// Guest-virtual address of the patched instruction.
    pub address: u64,
    /// Its guest-physical address.
    pub physical: u64,
    /// The guest's LSTAR.
    pub lstar: u64,
    /// The guest's SFMASK.
    pub sfmask: u64,
}

/// The workaround layer. One per VM, shared by its vCPUs.
#[derive(Debug, Default)]
pub struct HostWorkarounds {
    enabled: bool,
    hook: Mutex<HookState>,
    /// How often each workaround fired.
    pub counts: WorkaroundCounts,
}

#[derive(Debug, Default)]
enum HookState {
    #[default]
    NotYet,
    Installed(SyscallHook),
    Unavailable,
}

/// Why an emulation failure could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum WorkaroundError {
    /// The layer is off.
    #[error("the host-KVM workarounds are off")]
    Disabled,
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

    /// Handles a `KVM_EXIT_INTERNAL_ERROR` with suberror "emulation failure".
    ///
    /// # Errors
    /// When the layer is off or the instruction is not one it knows; the vCPU cannot go on then.
    pub fn handle_emulation_failure(&self, vcpu: &VcpuFd, mem: &GuestMemory) -> Result<(), WorkaroundError> {
        if !self.enabled {
            return Err(WorkaroundError::Disabled);
        }
        let mut regs = vcpu.get_regs().map_err(|e| WorkaroundError::Kvm("KVM_GET_REGS", e))?;
        let sregs = vcpu.get_sregs().map_err(|e| WorkaroundError::Kvm("KVM_GET_SREGS", e))?;
        if let Some(hook) = self.installed_hook() {
            if regs.rip == hook.address {
                return self.complete_syscall(vcpu, mem, &sregs, regs, hook);
            }
        }
        let mut bytes = [0u8; 4];
        read_virtual(vcpu, mem, &sregs, sregs.cs.base.wrapping_add(regs.rip), &mut bytes)
            .ok_or(WorkaroundError::UnreadableInstruction(regs.rip))?;
        match decode(&bytes).ok_or(WorkaroundError::Unsupported(bytes, regs.rip))? {
            Emulation::Inject { length, vector } => {
                regs.rip += length;
                vcpu.set_regs(&regs).map_err(|e| WorkaroundError::Kvm("KVM_SET_REGS", e))?;
                inject_exception(vcpu, vector)?;
                self.counts.injected_interrupts.fetch_add(1, Ordering::Relaxed);
            }
            Emulation::Skip { length, set, clear } => {
                regs.rip += length;
                regs.rflags = (regs.rflags | set) & !clear;
                vcpu.set_regs(&regs).map_err(|e| WorkaroundError::Kvm("KVM_SET_REGS", e))?;
                self.counts.emulated_instructions.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn installed_hook(&self) -> Option<SyscallHook> {
        match *self.hook.lock().unwrap_or_else(|e| e.into_inner()) {
            HookState::Installed(hook) => Some(hook),
            _ => None,
        }
    }

    /// Plants the `syscall` hook once the guest kernel has set LSTAR and its final IDT.
    ///
    /// Cheap to call often: it does nothing once the hook is in (or known to be impossible).
    pub fn maybe_install_syscall_hook(&self, vcpu: &VcpuFd, mem: &GuestMemory) {
        if !self.enabled {
            return;
        }
        let mut state = self.hook.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*state, HookState::NotYet) {
            return;
        }
        match find_page_fault_hook(vcpu, mem) {
            HookSearch::NotReady => {}
            HookSearch::Impossible(why) => {
                eprintln!("[minivirt] host workaround: no syscall hook ({why}); user-mode syscalls will fault");
                *state = HookState::Unavailable;
            }
            HookSearch::Found(hook) => {
                if mem.write_obj(GuestAddress(hook.physical), OPCODE_INT3).is_ok() {
                    *state = HookState::Installed(hook);
                }
            }
        }
    }

    fn complete_syscall(
        &self,
        vcpu: &VcpuFd,
        mem: &GuestMemory,
        sregs: &kvm_sregs,
        mut regs: kvm_regs,
        hook: SyscallHook,
    ) -> Result<(), WorkaroundError> {
        // The #PF frame: error code, RIP, CS, RFLAGS, RSP, SS.
        let mut frame = [0u8; 48];
        read_virtual(vcpu, mem, sregs, regs.rsp, &mut frame).ok_or(WorkaroundError::UnreadableInstruction(regs.rsp))?;
        let word = |i: usize| u64::from_le_bytes(frame[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let (fault_rip, fault_cs, user_rsp) = (word(1), word(2), word(4));
        if fault_rip == hook.lstar && fault_cs & 3 == 3 {
            // Finish the syscall: the CPU already saved RIP in RCX and RFLAGS in R11.
            regs.rip = hook.lstar;
            regs.rsp = user_rsp;
            regs.rflags = (regs.r11 & !hook.sfmask) | RFLAGS_RESERVED;
            self.counts.syscall_fixups.fetch_add(1, Ordering::Relaxed);
        } else {
            // An ordinary page fault: do what the `cld` we replaced would have done.
            regs.rflags &= !RFLAGS_DF;
            regs.rip += 1;
        }
        vcpu.set_regs(&regs).map_err(|e| WorkaroundError::Kvm("KVM_SET_REGS", e))
    }
}

/// Delivers exception `vector` to the guest on its next entry.
pub fn inject_exception(vcpu: &VcpuFd, vector: u8) -> Result<(), WorkaroundError> {
    let mut events = vcpu.get_vcpu_events().map_err(|e| WorkaroundError::Kvm("KVM_GET_VCPU_EVENTS", e))?;
    events.exception.injected = 1;
    events.exception.nr = vector;
    events.exception.has_error_code = 0;
    events.exception.error_code = 0;
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

fn virtual_to_physical(vcpu: &VcpuFd, mem: &GuestMemory, sregs: &kvm_sregs, linear: u64) -> Option<u64> {
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

enum HookSearch {
    NotReady,
    Impossible(String),
    Found(SyscallHook),
}

/// Looks for the `cld` at the start of the guest kernel's #PF handler.
fn find_page_fault_hook(vcpu: &VcpuFd, mem: &GuestMemory) -> HookSearch {
    let Some(lstar) = read_msr(vcpu, MSR_LSTAR).filter(|&l| l != 0) else {
        return HookSearch::NotReady;
    };
    let Ok(sregs) = vcpu.get_sregs() else { return HookSearch::NotReady };
    if u64::from(sregs.idt.limit) < (VECTOR_PAGE_FAULT + 1) * 16 - 1 {
        return HookSearch::NotReady;
    }
    let mut gate = [0u8; 16];
    if read_virtual(vcpu, mem, &sregs, sregs.idt.base + VECTOR_PAGE_FAULT * 16, &mut gate).is_none() {
        return HookSearch::NotReady;
    }
    let handler = u64::from(u16::from_le_bytes([gate[0], gate[1]]))
        | u64::from(u16::from_le_bytes([gate[6], gate[7]])) << 16
        | u64::from(u32::from_le_bytes([gate[8], gate[9], gate[10], gate[11]])) << 32;
    // Until the kernel runs from its final (high) mapping, this is the early IDT.
    if handler < 0xffff_ffff_8000_0000 {
        return HookSearch::NotReady;
    }
    let mut code = [0u8; 16];
    if read_virtual(vcpu, mem, &sregs, handler, &mut code).is_none() {
        return HookSearch::NotReady;
    }
    let Some(offset) = find_cld(&code) else {
        return HookSearch::Impossible(format!("the #PF handler starts {:02x?}, not cld", &code[..6]));
    };
    let address = handler + offset as u64;
    let Some(physical) = virtual_to_physical(vcpu, mem, &sregs, address) else {
        return HookSearch::NotReady;
    };
    let sfmask = read_msr(vcpu, MSR_SYSCALL_MASK).unwrap_or(0);
    HookSearch::Found(SyscallHook { address, physical, lstar, sfmask })
}

/// Offset of the first `cld` in a handler prologue, skipping `endbr64` and NOP padding
/// (the patched-out `clac` of an `ASM_CLAC` site).
pub fn find_cld(code: &[u8; 16]) -> Option<usize> {
    let mut i = if code[..4] == [0xf3, 0x0f, 0x1e, 0xfa] { 4 } else { 0 };
    while i < 12 {
        match code[i] {
            0x90 | 0x66 => i += 1,
            0x0f if code[i + 1] == 0x1f => i += 3,
            OPCODE_CLD => return Some(i),
            _ => return None,
        }
    }
    None
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
    fn the_cld_is_found_after_endbr64_and_nops() {
        let mut code = [0u8; 16];
        code[..8].copy_from_slice(&[0xf3, 0x0f, 0x1e, 0xfa, 0x0f, 0x1f, 0x00, 0xfc]);
        assert_eq!(find_cld(&code), Some(7));
        code[..2].copy_from_slice(&[0xfc, 0x00]);
        assert_eq!(find_cld(&code), Some(0));
        code[0] = 0x55; // push rbp: not a handler we know
        assert_eq!(find_cld(&code), None);
    }

    #[test]
    fn off_means_off() {
        assert!(!HostWorkarounds::new(WorkaroundMode::Off).enabled());
        assert!(HostWorkarounds::new(WorkaroundMode::On).enabled());
    }
}
