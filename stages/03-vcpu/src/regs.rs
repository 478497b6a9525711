//! The registers a vCPU starts with: 64-bit long mode, flat segments, identity paging.
//!
//! A real CPU reaches long mode in steps (real mode → protected mode → paging → long mode).
//! KVM lets the VMM skip the steps: it sets the final state directly through KVM_SET_SREGS,
//! KVM_SET_REGS and KVM_SET_FPU — which is also how Linux's 64-bit boot protocol is entered.
//!
//! # Resources
//! - Intel SDM vol. 3A, §9.8.5 "Initializing IA-32e Mode".
//! - Linux `Documentation/arch/x86/boot.rst`, "64-bit Boot Protocol".

use crate::gdt::{kvm_segment_from_gdt, BOOT_GDT};
use crate::layout::GDT_START;
use crate::paging::setup_identity_paging;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use stage02::memory::{GuestAddress, GuestMemory};

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.MP: monitor coprocessor.
pub const CR0_MP: u64 = 1 << 1;
/// CR0.ET: extension type (always 1 on modern CPUs).
pub const CR0_ET: u64 = 1 << 4;
/// CR0.NE: native x87 error reporting.
pub const CR0_NE: u64 = 1 << 5;
/// CR0.PG: paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension, required for long mode.
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always 1.
pub const RFLAGS_RESERVED: u64 = 1 << 1;
/// RFLAGS.IF: interrupts enabled.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS.DF: string direction.
pub const RFLAGS_DF: u64 = 1 << 10;

/// Errors from setting up registers.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// The GDT or page tables did not fit in guest RAM.
    #[error("cannot write boot structures to guest memory: {0}")]
    Memory(#[from] stage02::memory::MemoryError),
    /// A register ioctl failed.
    #[error("{0} failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
}

/// Where a vCPU starts executing in long mode.
#[derive(Debug, Clone, Copy)]
pub struct EntryPoint {
    /// RIP.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RSI (the zero page address, for Linux).
    pub rsi: u64,
    /// RDI (the vCPU number, for the demo guests).
    pub rdi: u64,
}

// lab:begin solution stage3-long-mode "load the boot GDT's code and data segments, point CR3 at the page tables, and set CR4.PAE, CR0.PE|PG (with MP, ET, NE) and EFER.LME|LMA"
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
    sregs.efer |= EFER_LME | EFER_LMA;
}
// lab:end

// qa:begin stage3-configure-long-mode
/// Writes the GDT and identity page tables to guest memory and puts the vCPU in 64-bit mode.
pub fn configure_long_mode(vcpu: &VcpuFd, mem: &GuestMemory, entry: EntryPoint) -> Result<(), RegsError> {
    for (index, descriptor) in BOOT_GDT.iter().enumerate() {
        mem.write_obj(GuestAddress(GDT_START + index as u64 * 8), *descriptor)?;
    }
    let cr3 = setup_identity_paging(mem)?;

    let mut sregs = vcpu.get_sregs().map_err(|e| RegsError::Kvm("KVM_GET_SREGS", e))?;
    set_long_mode_sregs(&mut sregs, cr3);
    vcpu.set_sregs(&sregs).map_err(|e| RegsError::Kvm("KVM_SET_SREGS", e))?;

    let regs = kvm_regs {
        rip: entry.rip,
        rsp: entry.rsp,
        rbp: entry.rsp,
        rsi: entry.rsi,
        rdi: entry.rdi,
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(|e| RegsError::Kvm("KVM_SET_REGS", e))?;
    configure_fpu(vcpu)
}
// qa:end stage3-configure-long-mode

/// Addresses the `--show-long-mode` dry run translates through the vCPU's page tables: each end
/// of each GiB of the identity map, and the first byte above it.
pub const PAGING_PROBES: [u64; 10] =
    [0, 0x1f_ffff, 0x20_0000, 0x3fff_ffff, 0x4000_0000, 0x8000_0000, 0xbfff_ffff, 0xc000_0000, 0xffff_ffff, 1 << 32];

/// What a vCPU will start with, read back from KVM (KVM_GET_SREGS), one field a line: GDTR,
/// the segments, the control registers' long-mode bits, EFER, and where its page tables send
/// [`PAGING_PROBES`]. For checking the setup against the SDM and the boot protocol without
/// running the guest.
pub fn describe_long_mode(vcpu: &VcpuFd, mem: &GuestMemory) -> Result<String, RegsError> {
    let sregs = vcpu.get_sregs().map_err(|e| RegsError::Kvm("KVM_GET_SREGS", e))?;
    let bit = |value: u64, mask: u64| u8::from(value & mask != 0);
    let mut out = format!("  gdtr  base {:#x} limit {:#x}\n", sregs.gdt.base, sregs.gdt.limit);
    for (name, s) in
        [("cs", sregs.cs), ("ds", sregs.ds), ("es", sregs.es), ("fs", sregs.fs), ("gs", sregs.gs), ("ss", sregs.ss)]
    {
        out += &format!(
            "  {name}    selector {:#x} type {:#x} present={} dpl={} l={} db={}\n",
            s.selector, s.type_, s.present, s.dpl, s.l, s.db
        );
    }
    let cr0 = sregs.cr0;
    out += &format!(
        "  cr0   PE={} MP={} ET={} NE={} PG={}\n",
        bit(cr0, CR0_PE),
        bit(cr0, CR0_MP),
        bit(cr0, CR0_ET),
        bit(cr0, CR0_NE),
        bit(cr0, CR0_PG)
    );
    out += &format!("  cr3   {:#x}\n  cr4   PAE={}\n", sregs.cr3, bit(sregs.cr4, CR4_PAE));
    out += &format!("  efer  LME={} LMA={}\n", bit(sregs.efer, EFER_LME), bit(sregs.efer, EFER_LMA));
    for gva in PAGING_PROBES {
        let gpa = crate::paging::translate_gva(mem, sregs.cr3, gva);
        out += &format!("  gva {gva:#x} -> {}\n", gpa.map_or("not mapped".to_string(), |gpa| format!("gpa {gpa:#x}")));
    }
    Ok(out)
}

/// The x87 and SSE control words as `FNINIT` and a reset leave MXCSR: FCW 0x37f (all exceptions
/// masked, 64-bit precision) and MXCSR 0x1f80 (SDM Vol. 1, 8.1.5 and 10.2.3), what Linux expects.
pub fn configure_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
    vcpu.set_fpu(&fpu).map_err(|e| RegsError::Kvm("KVM_SET_FPU", e))
}
