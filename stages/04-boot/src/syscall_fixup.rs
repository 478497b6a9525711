//! The host workaround that only Linux needs: finishing user-mode `syscall`s.
//!
//! On the nested KVM of this course's machines (see `stage03::host_workarounds`), a `syscall`
//! from user mode jumps to LSTAR but stays at CPL 3, so fetching the supervisor-only kernel
//! entry code page-faults. Once the kernel has set LSTAR and its final IDT, the VMM plants an
//! `int3` on the first real instruction of the guest's #PF handler (a `cld`). When that `int3`
//! traps to the VMM and the fault frame on the stack says "user mode, RIP == LSTAR", the VMM
//! drops the frame and resumes at LSTAR in kernel mode, as `syscall` would have: RCX and R11
//! already hold the return RIP and RFLAGS, RFLAGS is masked by SFMASK, RSP is the user's.
//! Any other page fault: the VMM does what the replaced `cld` would have done.
//!
//! It is an [`ExitHook`] placed before stage 3's layer, so it sees its own `int3` first.
//!
//! # Resources
//! - Intel SDM vol. 2B, SYSCALL; vol. 3A §6.14 (64-bit IDT gates, the exception frame).
//! - `../shared/docs/host-kvm.md` of this project, item 4.

use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use stage02::memory::{GuestAddress, GuestMemory};
use stage03::exit_hook::{Emulated, ExitHook, ExitInfo};
use stage03::host_workarounds::{read_virtual, virtual_to_physical, OPCODE_INT3};
use stage03::msrs::{read_msr, MSR_LSTAR, MSR_SYSCALL_MASK};
use stage03::regs::{RFLAGS_DF, RFLAGS_RESERVED};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Opcode of `cld`, the instruction the hook replaces.
pub const OPCODE_CLD: u8 = 0xfc;
/// Vector of the page-fault exception (#PF).
pub const VECTOR_PAGE_FAULT: u64 = 14;
/// Size of a 64-bit IDT gate.
pub const IDT_GATE_SIZE: u64 = 16;
/// Linux runs from its final mapping at or above this address; below it the IDT is the early one.
pub const KERNEL_TEXT_START: u64 = 0xffff_ffff_8000_0000;
/// How often (in exits of any vCPU) to look whether the kernel is ready for the hook: it reads
/// two registers, and only until the hook is in.
pub const INSTALL_CHECK_INTERVAL: u64 = 64;

/// Where the hook is and what the guest's `syscall` set-up is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Default)]
enum HookState {
    #[default]
    NotYet,
    Installed(SyscallHook),
    Unavailable,
}

/// The fix-up, one per VM; add it to the VM's hooks only when the host workarounds are on.
pub struct SyscallFixup {
    memory: Arc<GuestMemory>,
    state: Mutex<HookState>,
    exits: AtomicU64,
    /// User-mode `syscall`s completed by the VMM.
    pub completed: AtomicU64,
}

impl SyscallFixup {
    /// A fix-up for the guest whose RAM is `memory`, waiting for the kernel to be ready.
    pub fn new(memory: Arc<GuestMemory>) -> Self {
        SyscallFixup { memory, state: Mutex::default(), exits: AtomicU64::new(0), completed: AtomicU64::new(0) }
    }

    /// The hook, once it is in.
    pub fn hook(&self) -> Option<SyscallHook> {
        match *self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            HookState::Installed(hook) => Some(hook),
            _ => None,
        }
    }

    /// Plants the hook once the guest kernel has set LSTAR and its final IDT. Cheap to call
    /// often: it does nothing once the hook is in (or known to be impossible).
    pub fn maybe_install(&self, vcpu: &VcpuFd, mem: &GuestMemory) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
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
    ) -> Result<(), String> {
        // The #PF frame: error code, RIP, CS, RFLAGS, RSP, SS.
        let mut frame = [0u8; 48];
        read_virtual(vcpu, mem, sregs, regs.rsp, &mut frame)
            .ok_or_else(|| format!("cannot read the page-fault frame at RSP {:#x}", regs.rsp))?;
        let word = |i: usize| u64::from_le_bytes(frame[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let (fault_rip, fault_cs, user_rsp) = (word(1), word(2), word(4));
        if fault_rip == hook.lstar && fault_cs & 3 == 3 {
            // Finish the syscall: the CPU already saved RIP in RCX and RFLAGS in R11.
            regs.rip = hook.lstar;
            regs.rsp = user_rsp;
            regs.rflags = (regs.r11 & !hook.sfmask) | RFLAGS_RESERVED;
            self.completed.fetch_add(1, Ordering::Relaxed);
        } else {
            // An ordinary page fault: do what the one-byte `cld` we replaced would have done.
            regs.rflags &= !RFLAGS_DF;
            regs.rip = regs.rip.wrapping_add(1);
        }
        vcpu.set_regs(&regs).map_err(|e| format!("KVM_SET_REGS failed: {e}"))
    }
}

impl ExitHook for SyscallFixup {
    fn exit_handled(&self, _exit: &ExitInfo, fd: &VcpuFd, _in_vmm: Duration) {
        let exits = self.exits.fetch_add(1, Ordering::Relaxed) + 1;
        if exits.is_multiple_of(INSTALL_CHECK_INTERVAL) {
            // A cheap moment to see whether the guest kernel is far enough along.
            self.maybe_install(fd, &self.memory);
        }
    }

    fn emulation_failure(&self, _vcpu: u8, fd: &VcpuFd, memory: &GuestMemory) -> Emulated {
        let Some(hook) = self.hook() else { return Emulated::NotMine };
        let (Ok(regs), Ok(sregs)) = (fd.get_regs(), fd.get_sregs()) else { return Emulated::NotMine };
        if regs.rip != hook.address {
            return Emulated::NotMine;
        }
        match self.complete_syscall(fd, memory, &sregs, regs, hook) {
            Ok(()) => Emulated::Done,
            Err(why) => Emulated::Failed(why),
        }
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
    if u64::from(sregs.idt.limit) < (VECTOR_PAGE_FAULT + 1) * IDT_GATE_SIZE - 1 {
        return HookSearch::NotReady;
    }
    // The guest chose the IDT base (`lidt`): the gate's address wraps as a linear address
    // would, and an unmapped one just means "not ready".
    let gate_address = sregs.idt.base.wrapping_add(VECTOR_PAGE_FAULT * IDT_GATE_SIZE);
    let mut gate = [0u8; IDT_GATE_SIZE as usize];
    if read_virtual(vcpu, mem, &sregs, gate_address, &mut gate).is_none() {
        return HookSearch::NotReady;
    }
    let handler = u64::from(u16::from_le_bytes([gate[0], gate[1]]))
        | u64::from(u16::from_le_bytes([gate[6], gate[7]])) << 16
        | u64::from(u32::from_le_bytes([gate[8], gate[9], gate[10], gate[11]])) << 32;
    // Until the kernel runs from its final (high) mapping, this is the early IDT.
    if handler < KERNEL_TEXT_START {
        return HookSearch::NotReady;
    }
    let mut code = [0u8; 16];
    if read_virtual(vcpu, mem, &sregs, handler, &mut code).is_none() {
        return HookSearch::NotReady;
    }
    let Some(offset) = find_cld(&code) else {
        return HookSearch::Impossible(format!("the #PF handler starts {:02x?}, not cld", &code[..6]));
    };
    let Some(address) = handler.checked_add(offset as u64) else {
        return HookSearch::Impossible(format!("the #PF handler at {handler:#x} runs past the address space"));
    };
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
    fn the_cld_is_found_after_endbr64_and_nops() {
        let mut code = [0u8; 16];
        code[..8].copy_from_slice(&[0xf3, 0x0f, 0x1e, 0xfa, 0x0f, 0x1f, 0x00, 0xfc]);
        assert_eq!(find_cld(&code), Some(7));
        code[..2].copy_from_slice(&[0xfc, 0x00]);
        assert_eq!(find_cld(&code), Some(0));
        code[0] = 0x55; // push rbp: not a handler we know
        assert_eq!(find_cld(&code), None);
    }
}
