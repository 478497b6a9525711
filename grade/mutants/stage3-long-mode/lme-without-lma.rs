// mutant: Sets EFER.LME but not EFER.LMA, as if KVM would activate long mode itself when paging is on.
/// The special registers of 64-bit mode: flat segments from [`BOOT_GDT`], no IDT yet, CR3 =
/// `cr3`, and the control-register and EFER bits that make the CPU run in long mode.
pub fn set_long_mode_sregs(sregs: &mut kvm_sregs, cr3: u64) {
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (BOOT_GDT.len() * 8 - 1) as u16;
    // No IDT yet: the guest installs its own before it enables interrupts.
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    let code = kvm_segment_from_gdt(BOOT_GDT[2], 2);
    let data = kvm_segment_from_gdt(BOOT_GDT[3], 3);
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr3 = cr3;
    sregs.cr4 |= CR4_PAE;
    sregs.cr0 |= CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG;
    sregs.efer |= EFER_LME;
}
