//! Long-mode setup read back from KVM (needs /dev/kvm).

use stage02::memory::GuestAddress;
use stage02::vm::Vm;
use stage03::gdt::{BOOT_CS, BOOT_DS, BOOT_GDT};
use stage03::layout::{GDT_START, PML4_START};
use stage03::regs::{configure_long_mode, EntryPoint, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME};

#[test]
fn a_configured_vcpu_is_in_64_bit_mode_with_the_boot_segments() {
    checkpoints::require_kvm();
    let vm = Vm::new(64 << 20).expect("VM");
    let vcpu = vm.fd.create_vcpu(0).expect("vCPU");
    let entry = EntryPoint { rip: 0x10_0200, rsp: 0x8ff0, rsi: 0x7000, rdi: 0 };
    configure_long_mode(&vcpu, &vm.memory, entry).expect("long mode");

    let sregs = vcpu.get_sregs().unwrap();
    assert_eq!(sregs.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
    assert_ne!(sregs.cr4 & CR4_PAE, 0);
    assert_eq!(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
    assert_eq!(sregs.cr3, PML4_START);
    assert_eq!((sregs.cs.selector, sregs.cs.l, sregs.cs.db), (BOOT_CS, 1, 0));
    assert_eq!((sregs.ds.selector, sregs.ss.selector), (BOOT_DS, BOOT_DS));
    assert_eq!(sregs.gdt.base, GDT_START);

    let regs = vcpu.get_regs().unwrap();
    assert_eq!((regs.rip, regs.rsp, regs.rsi, regs.rflags), (0x10_0200, 0x8ff0, 0x7000, 2));

    let code_descriptor: u64 = vm.memory.read_obj(GuestAddress(GDT_START + 16)).unwrap();
    assert_eq!(code_descriptor, BOOT_GDT[2], "the GDT in guest memory matches the segment registers");
}
