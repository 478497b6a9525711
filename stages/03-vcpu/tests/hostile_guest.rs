//! The host workarounds against guest-chosen values that would overflow (needs /dev/kvm).

use stage02::memory::GuestAddress;
use stage02::vm::Vm;
use stage03::host_workarounds::{HostWorkarounds, WorkaroundMode, OPCODE_INT3, VECTOR_GENERAL_PROTECTION};
use stage03::paging::map_4k_page;
use stage03::regs::{configure_long_mode, EntryPoint};

#[test]
fn an_int3_at_the_last_byte_of_the_address_space_becomes_a_general_protection_fault() {
    checkpoints::require_kvm();
    let vm = Vm::new(64 << 20).expect("VM");
    let vcpu = vm.fd.create_vcpu(0).expect("vCPU");
    let top = u64::MAX;
    configure_long_mode(&vcpu, &vm.memory, EntryPoint { rip: top, rsp: 0x8ff0, rsi: 0, rdi: 0 }).expect("long mode");
    // The last page of the address space holds an int3 in its last byte; the bytes after it
    // wrap around to linear 0, which the identity tables map.
    let cr3 = vcpu.get_sregs().expect("sregs").cr3;
    let mut free_tables = 0x40_0000;
    map_4k_page(&vm.memory, cr3, top & !0xfff, 0x30_0000, &mut free_tables).expect("map the top page");
    vm.memory.write_obj(GuestAddress(0x30_0fff), OPCODE_INT3).expect("int3");

    let workarounds = HostWorkarounds::new(WorkaroundMode::On);
    workarounds.emulate(&vcpu, &vm.memory).expect("handled as a guest fault, not a VMM error");

    assert_eq!(vcpu.get_regs().expect("regs").rip, top, "RIP stays on the faulting instruction");
    let events = vcpu.get_vcpu_events().expect("events");
    assert_eq!((events.exception.injected, events.exception.nr), (1, VECTOR_GENERAL_PROTECTION));
    assert_eq!((events.exception.has_error_code, events.exception.error_code), (1, 0));
}
