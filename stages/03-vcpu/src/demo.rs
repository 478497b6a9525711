//! The stage-3 demo guest: every vCPU prints one line from 64-bit mode, then halts.
//!
//! The vCPUs share one serial port, so they take turns: vCPU N waits until the counter at
//! [`DEMO_TURN_ADDRESS`] equals N, prints its line, and increments the counter with a locked
//! instruction. In the middle of its line each vCPU executes `int3`; the handler installed in
//! the guest's IDT finishes the line, which shows that exceptions reach the guest — on hosts
//! that cannot emulate `int3`, only thanks to the [`host_workarounds`](crate::host_workarounds).

use crate::gdt::BOOT_CS;
use crate::layout::{DEMO_CODE_START, DEMO_STACKS_START, DEMO_TURN_ADDRESS, IDT_START};
use crate::regs::EntryPoint;
use kvm_ioctls::VcpuFd;
use stage01::out_bytes_code;
use stage02::memory::{GuestAddress, GuestMemory, MemoryError};

/// What the `int3` handler adds to each line.
pub const INT3_HANDLED: &str = ", int3 handled by the guest IDT";

/// Interrupt gate type: present, DPL 0, 64-bit interrupt gate (SDM §6.14.1).
pub const GATE_PRESENT_INTERRUPT: u8 = 0x8e;

/// The demo code, and the offset of its `int3` handler.
pub fn guest_code() -> (Vec<u8>, u64) {
    let turn = (DEMO_TURN_ADDRESS as u32).to_le_bytes();
    let mut code = vec![0x66, 0xba, 0xf8, 0x03]; //            mov dx, 0x3f8
    code.extend([0xf3, 0x90]); //                               wait: pause
    code.extend([0x8b, 0x04, 0x25]); //                         mov eax, [turn]
    code.extend(turn);
    code.extend([0x39, 0xf8, 0x75, 0xf3]); //                   cmp eax, edi; jne wait
    code.extend(out_bytes_code(b"vCPU "));
    code.extend([0x89, 0xf8, 0xb1, 0x0a, 0xf6, 0xf1]); //       mov eax, edi; mov cl, 10; div cl
    code.extend([0x84, 0xc0, 0x74, 0x03, 0x04, 0x30, 0xee]); // test al, al; jz ones; add al, '0'; out dx, al
    code.extend([0x88, 0xe0, 0x04, 0x30, 0xee]); //             ones: mov al, ah; add al, '0'; out dx, al
    code.extend(out_bytes_code(b": 64-bit long mode"));
    code.push(0xcc); //                                         int3
    code.extend(out_bytes_code(b"\n"));
    code.extend([0xf0, 0xff, 0x04, 0x25]); //                   lock inc dword [turn]
    code.extend(turn);
    code.push(0xf4); //                                         hlt
    let handler = code.len() as u64;
    code.extend(out_bytes_code(INT3_HANDLED.as_bytes()));
    code.extend([0x48, 0xcf]); //                               iretq
    (code, handler)
}

/// An IDT gate pointing at `handler` in the boot code segment.
pub fn interrupt_gate(handler: u64) -> [u8; 16] {
    let mut gate = [0u8; 16];
    gate[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    gate[2..4].copy_from_slice(&BOOT_CS.to_le_bytes());
    gate[5] = GATE_PRESENT_INTERRUPT;
    gate[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    gate[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    gate
}

/// Loads the demo code and an IDT whose breakpoint gate points at the handler.
pub fn load(mem: &GuestMemory) -> Result<(), MemoryError> {
    let (code, handler) = guest_code();
    mem.write(GuestAddress(DEMO_CODE_START), &code)?;
    mem.write_obj(GuestAddress(DEMO_TURN_ADDRESS), 0u32)?;
    mem.zero(GuestAddress(IDT_START), 256 * 16)?;
    mem.write(GuestAddress(IDT_START + 3 * 16), &interrupt_gate(DEMO_CODE_START + handler))
}

/// Where vCPU `id` starts: the demo code, its own stack, its number in RDI.
pub fn entry_point(id: u8) -> EntryPoint {
    let stack_top = DEMO_STACKS_START + (u64::from(id) + 1) * 0x1000 - 16;
    EntryPoint { rip: DEMO_CODE_START, rsp: stack_top, rsi: 0, rdi: u64::from(id) }
}

/// Points the vCPU's IDTR at the demo IDT (after `configure_long_mode`, which clears it).
pub fn use_demo_idt(vcpu: &VcpuFd) -> Result<(), kvm_ioctls::Error> {
    let mut sregs = vcpu.get_sregs()?;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 256 * 16 - 1;
    vcpu.set_sregs(&sregs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_splits_the_handler_address() {
        let gate = interrupt_gate(0x1234_5678_9abc_def0);
        assert_eq!(gate, [0xf0, 0xde, 0x10, 0, 0, 0x8e, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]);
    }

    #[test]
    fn the_handler_follows_the_halt() {
        let (code, handler) = guest_code();
        assert_eq!(code[handler as usize - 1], 0xf4, "hlt just before the handler");
        assert_eq!(&code[code.len() - 2..], [0x48, 0xcf], "iretq ends the handler");
    }
}
