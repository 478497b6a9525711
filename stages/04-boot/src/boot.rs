//! Putting a Linux machine together: the steps of the recipe every later stage follows
//! ([`crate::machine::Machine`] calls them in this order).
//!
//! 1. configure memory and the interrupt controllers ([`configure_irqchip`]);
//! 2. configure I/O: the devices, each at its ports or addresses (`crate::legacy`, and the
//!    later stages' console, disks and PCI), each adding its kernel command-line options;
//! 3. load the kernel, initrd and command line, and write the zero page, E820 map and MP
//!    table ([`load_guest`]);
//! 4. configure the vCPUs: the boot CPU in 64-bit mode at the kernel's entry point, the others
//!    waiting for the kernel to start them ([`create_vcpus`]);
//! 5. run ([`run`]).

use crate::bootparams::{ZeroPage, CMDLINE_SIZE, INITRD_ADDR_MAX};
use crate::cmdline::{build_cmdline, CmdlineError};
use crate::e820::e820_entries;
use crate::layout::*;
use crate::loader::{load_initrd, load_kernel, LoaderError};
use crate::mptable::{setup_mptable, MptableError};
use kvm_bindings::kvm_pit_config;
use stage02::memory::{GuestAddress, GuestMemory, MemoryError};
use stage02::vm::Vm;
use stage03::control::StopReason;
use stage03::regs::EntryPoint;
use stage03::vcpu::{join_vcpus, Vcpu, VcpuContext, VcpuError};
use std::path::Path;

/// Errors from building the machine.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A KVM ioctl failed.
    #[error("{0} failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// Loading the kernel or initrd failed.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// The command line is unusable.
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    /// The MP table could not be written.
    #[error(transparent)]
    Mptable(#[from] MptableError),
    /// Boot structures did not fit in guest memory.
    #[error("cannot write boot structures: {0}")]
    Memory(#[from] MemoryError),
    /// A vCPU could not be set up.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
}

// qa:begin stage4-irqchip
/// Creates the in-kernel PIC, IO-APIC and PIT. Must happen before the vCPUs are created,
/// so that each gets an in-kernel local APIC.
pub fn configure_irqchip(vm: &Vm) -> Result<(), BootError> {
    vm.fd.set_tss_address(KVM_TSS_ADDRESS as usize).map_err(|e| BootError::Kvm("KVM_SET_TSS_ADDR", e))?;
    vm.fd
        .set_identity_map_address(KVM_IDENTITY_MAP_ADDRESS)
        .map_err(|e| BootError::Kvm("KVM_SET_IDENTITY_MAP_ADDR", e))?;
    vm.fd.create_irq_chip().map_err(|e| BootError::Kvm("KVM_CREATE_IRQCHIP", e))?;
    // The PIT's speaker port (0x61) exists too, so the kernel's PIT calibration works.
    let pit = kvm_pit_config { flags: kvm_bindings::KVM_PIT_SPEAKER_DUMMY, ..Default::default() };
    vm.fd.create_pit2(pit).map_err(|e| BootError::Kvm("KVM_CREATE_PIT2", e))
}
// qa:end stage4-irqchip

/// Loads kernel and initrd, writes the command line, zero page, E820 map and MP table.
/// Returns the 64-bit entry point.
pub fn load_guest(
    mem: &GuestMemory,
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &[&str],
    vcpus: u8,
) -> Result<u64, BootError> {
    let kernel = load_kernel(mem, kernel)?;
    let mut zero_page = ZeroPage::with_setup_header(&kernel.setup_header);
    zero_page.set_loader();

    let max_len = match zero_page.u32(CMDLINE_SIZE) {
        0 => CMDLINE_MAX_SIZE as usize - 1,
        n => n as usize,
    };
    let line = build_cmdline(cmdline, max_len)?;
    mem.zero(GuestAddress(CMDLINE_START), line.len() + 1)?;
    mem.write(GuestAddress(CMDLINE_START), line.as_bytes())?;
    zero_page.set_cmdline(CMDLINE_START);

    if let Some(initrd) = initrd {
        let initrd_addr_max = match zero_page.u32(INITRD_ADDR_MAX) {
            0 => 0x37ff_ffff, // the boot protocol's default for old kernels
            n => u64::from(n),
        };
        let (address, size) = load_initrd(mem, initrd, kernel.end, initrd_addr_max)?;
        zero_page.set_initrd(address, size);
    }
    zero_page.set_e820(&e820_entries(mem));
    mem.write(GuestAddress(ZERO_PAGE_START), zero_page.as_bytes())?;
    setup_mptable(mem, vcpus)?;
    Ok(kernel.entry)
}

// qa:begin stage4-create-vcpus
/// Creates `count` vCPUs. vCPU 0 starts at `entry` in 64-bit mode with RSI = the zero page;
/// the others wait, as real application processors do, for the kernel's INIT/SIPI.
pub fn create_vcpus(vm: &Vm, count: u8, entry: u64) -> Result<Vec<Vcpu>, BootError> {
    let mut vcpus = Vec::with_capacity(usize::from(count));
    for id in 0..count {
        let vcpu = Vcpu::new(&vm.kvm, &vm.fd, id, count)?;
        configure_lint(&vcpu)?;
        if id == 0 {
            let boot = EntryPoint { rip: entry, rsp: BOOT_STACK_POINTER, rsi: ZERO_PAGE_START, rdi: 0 };
            vcpu.configure_long_mode(&vm.memory, boot)?;
        } else {
            stage03::regs::configure_fpu(&vcpu.fd).map_err(VcpuError::from)?;
        }
        vcpus.push(vcpu);
    }
    Ok(vcpus)
}
// qa:end stage4-create-vcpus

/// Local APIC LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, as a BIOS leaves them.
fn configure_lint(vcpu: &Vcpu) -> Result<(), BootError> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const DELIVERY_EXTINT: u32 = 7;
    const DELIVERY_NMI: u32 = 4;
    let mut lapic = vcpu.fd.get_lapic().map_err(|e| BootError::Kvm("KVM_GET_LAPIC", e))?;
    for (register, mode) in [(APIC_LVT0, DELIVERY_EXTINT), (APIC_LVT1, DELIVERY_NMI)] {
        let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[register + i] as u8);
        let value = (u32::from_le_bytes(bytes) & !0x700) | mode << 8;
        for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
            lapic.regs[register + i] = byte as _;
        }
    }
    vcpu.fd.set_lapic(&lapic).map_err(|e| BootError::Kvm("KVM_SET_LAPIC", e))
}

/// Starts every vCPU on its thread and waits until the VM stops.
pub fn run(vcpus: Vec<Vcpu>, context: &VcpuContext) -> Result<StopReason, BootError> {
    let threads = vcpus.into_iter().map(|v| v.start(context.clone())).collect::<Result<Vec<_>, _>>()?;
    Ok(join_vcpus(threads, &context.control))
}
