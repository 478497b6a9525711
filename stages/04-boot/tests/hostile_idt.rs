//! The syscall fix-up against a guest that points its IDT or its #PF handler at the top of the
//! address space, where the VMM's address arithmetic would overflow (needs /dev/kvm).

use kvm_bindings::{kvm_msr_entry, Msrs};
use kvm_ioctls::VcpuFd;
use stage02::memory::GuestAddress;
use stage02::vm::Vm;
use stage03::msrs::MSR_LSTAR;
use stage03::paging::map_4k_page;
use stage03::regs::{configure_long_mode, EntryPoint};
use stage04::syscall_fixup::{SyscallFixup, OPCODE_CLD, VECTOR_PAGE_FAULT};
use std::sync::Arc;

/// A vCPU in long mode whose kernel has set LSTAR (so the fix-up looks for its hook).
fn linux_like_vcpu(vm: &Vm) -> VcpuFd {
    let vcpu = vm.fd.create_vcpu(0).expect("vCPU");
    configure_long_mode(&vcpu, &vm.memory, EntryPoint { rip: 0x10_0000, rsp: 0x8ff0, rsi: 0, rdi: 0 })
        .expect("long mode");
    let lstar =
        Msrs::from_entries(&[kvm_msr_entry { index: MSR_LSTAR, data: 0xffff_ffff_8100_0000, ..Default::default() }])
            .expect("msrs");
    assert_eq!(vcpu.set_msrs(&lstar).expect("KVM_SET_MSRS"), 1);
    vcpu
}

fn set_idt(vcpu: &VcpuFd, base: u64) {
    let mut sregs = vcpu.get_sregs().expect("sregs");
    sregs.idt.base = base;
    sregs.idt.limit = 0xfff;
    vcpu.set_sregs(&sregs).expect("sregs");
}

#[test]
fn an_idt_based_at_the_top_of_the_address_space_is_not_an_overflow() {
    checkpoints::require_kvm();
    let vm = Vm::new(64 << 20).expect("VM");
    let vcpu = linux_like_vcpu(&vm);
    set_idt(&vcpu, u64::MAX - 0x40);
    let fixup = SyscallFixup::new(Arc::clone(&vm.memory));
    fixup.maybe_install(&vcpu, &vm.memory);
    assert_eq!(fixup.hook(), None, "no hook from an unmapped gate");
}

#[test]
fn a_page_fault_handler_whose_cld_lies_past_the_address_space_is_refused() {
    checkpoints::require_kvm();
    let vm = Vm::new(64 << 20).expect("VM");
    let vcpu = linux_like_vcpu(&vm);
    // The #PF gate points at the last 8 bytes of the address space: 8 NOPs there, and the `cld`
    // after them wraps around to linear address 0.
    let handler = u64::MAX - 7;
    let idt = 0x5_0000;
    set_idt(&vcpu, idt);
    let mut gate = [0u8; 16];
    gate[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    gate[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    gate[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    vm.memory.write(GuestAddress(idt + VECTOR_PAGE_FAULT * 16), &gate).expect("gate");
    let cr3 = vcpu.get_sregs().expect("sregs").cr3;
    let mut free_tables = 0x40_0000;
    map_4k_page(&vm.memory, cr3, handler & !0xfff, 0x30_0000, &mut free_tables).expect("map the top page");
    vm.memory.write(GuestAddress(0x30_0ff8), &[0x90; 8]).expect("nops");
    vm.memory.write_obj(GuestAddress(0), OPCODE_CLD).expect("cld");

    let fixup = SyscallFixup::new(Arc::clone(&vm.memory));
    fixup.maybe_install(&vcpu, &vm.memory);
    assert_eq!(fixup.hook(), None, "no hook past the end of the address space");
    let byte: u8 = vm.memory.read_obj(GuestAddress(0)).expect("read");
    assert_eq!(byte, OPCODE_CLD, "nothing planted");
}
