//! `stage02`: a real-mode guest that writes to two RAM regions and talks to an MMIO device.

use clap::Parser;
use kvm_ioctls::VcpuFd;
use stage02::devices::{console::PortConsole, demo};
use stage02::exit::{handle_exit, ExitOutcome};
use stage02::memory::{GuestAddress, GuestMemory};
use stage02::vm::Vm;
use stage02::{cli, layout};
use std::error::Error;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// Stage 2 of minivirt: guest memory in slots, and buses that route exits to devices.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Guest RAM size (K, M or G suffix); above 3G the rest is mapped above 4 GiB.
    #[arg(long, default_value = "256M", value_parser = cli::parse_mem_size)]
    mem: u64,
    /// Print how GPA→HVA translation answers for ranges at the ends of each region, then exit
    /// (no VM is created).
    #[arg(long)]
    show_translations: bool,
}

/// Where the real-mode guest code is loaded.
const CODE_ADDRESS: u64 = 0x1000;
/// A word the guest writes in region 0 (low RAM).
const LOW_PROBE: u64 = 0x8000;
/// A word the guest writes in region 1, reached in real mode as 0xffff:0x0010.
const MAIN_PROBE: u64 = layout::MAIN_RAM_START;

/// Real-mode code: write one word into each of two regions, copy the demo device's ID register
/// into its scratch register, read it back, and say whether they matched.
fn guest_code() -> Vec<u8> {
    let mut code = vec![
        0xba, 0xf8, 0x03, //                       mov dx, 0x3f8
        0xc7, 0x06, 0x00, 0x80, 0x11, 0x11, //     mov word [0x8000], 0x1111     (region 0)
        0xb8, 0xff, 0xff, 0x8e, 0xc0, //           mov ax, 0xffff; mov es, ax
        0x26, 0xc7, 0x06, 0x10, 0x00, 0x22, 0x22, // mov word [es:0x10], 0x2222 (0x100000, region 1)
        0xb8, 0x00, 0xa0, 0x8e, 0xd8, //           mov ax, 0xa000; mov ds, ax    (demo device)
        0x66, 0xa1, 0x00, 0x00, //                 mov eax, [0x0]                (ID)
        0x66, 0xa3, 0x04, 0x00, //                 mov [0x4], eax                (SCRATCH)
        0x66, 0x8b, 0x1e, 0x04, 0x00, //           mov ebx, [0x4]
        0x66, 0x39, 0xc3, //                       cmp ebx, eax
    ];
    let mut ok = stage01::out_bytes_code(b"guest: MMIO scratch register OK\n");
    ok.push(0xf4); // hlt
    code.extend_from_slice(&[0x75, ok.len() as u8]); // jne mismatch
    code.extend(ok);
    code.extend(stage01::out_bytes_code(b"guest: MMIO scratch register MISMATCH\n"));
    code.push(0xf4); // mismatch: hlt
    code
}

fn main() -> ExitCode {
    stage01::default_sigpipe();
    let args: Args = stage01::parse_args();
    let result = if args.show_translations { show_translations(args.mem) } else { run(args.mem) };
    stage01::exit_status("stage02", result)
}

fn run(mem: u64) -> Result<(), Box<dyn Error>> {
    let vm = Vm::new(mem)?;
    println!("guest RAM: {} MiB in {} regions", vm.memory.total_size() >> 20, vm.memory.regions().len());
    for (slot, region) in vm.memory.regions().iter().enumerate() {
        println!(
            "  slot {slot}: GPA {:#012x}..{:#012x} ({:>7} KiB) -> HVA {:#x}",
            region.start().0,
            region.end().0,
            region.size() >> 10,
            region.host_address()
        );
    }
    let console = Arc::new(Mutex::new(PortConsole::new(std::io::stdout())));
    vm.buses.pio.insert("console", u64::from(stage01::SERIAL_PORT), 1, console)?;
    let demo_device = Arc::new(Mutex::new(demo::DemoDevice::default()));
    vm.buses.mmio.insert("demo", layout::DEMO_DEVICE_START, demo::DEMO_SIZE, demo_device)?;
    vm.memory.write(GuestAddress(CODE_ADDRESS), &guest_code())?;

    let mut vcpu = vm.fd.create_vcpu(0).map_err(|e| format!("KVM_CREATE_VCPU failed: {e}"))?;
    enter_real_mode(&vcpu)?;
    run_until_halt(&mut vcpu, &vm)?;

    for addr in [LOW_PROBE, MAIN_PROBE] {
        let value: u16 = vm.memory.read_obj(GuestAddress(addr))?;
        let slot = vm.memory.regions().iter().position(|r| r.start().0 <= addr && addr < r.end().0);
        println!("host reads {value:#06x} at GPA {addr:#x} (slot {})", slot.unwrap_or(usize::MAX));
    }
    Ok(())
}

/// For each region: its first byte, the last four bytes, four bytes running one byte past its
/// end, the first byte after it, and a range from its last byte into the next region. Each is
/// translated GPA→HVA and shown as the slot and offset the host address falls in, or refused.
fn show_translations(mem: u64) -> Result<(), Box<dyn Error>> {
    let memory = GuestMemory::new(&layout::ram_regions(mem))?;
    let regions = memory.regions();
    for (slot, region) in regions.iter().enumerate() {
        let (start, end) = (region.start().0, region.end().0);
        let mut ranges = vec![(start, 1), (end - 4, 4), (end - 3, 4), (end, 1)];
        if let Some(next) = regions.get(slot + 1) {
            ranges.push((end - 1, next.start().0 - end + 2));
        }
        for (addr, len) in ranges {
            let answer = match memory.translate(GuestAddress(addr), len as usize) {
                Ok(host) => {
                    let host = host as u64;
                    let slot =
                        regions.iter().position(|r| (r.host_address()..r.host_address() + r.size()).contains(&host));
                    match slot {
                        Some(i) => format!("slot {i} + {:#x}", host - regions[i].host_address()),
                        None => format!("HVA {host:#x}, outside every region"),
                    }
                }
                Err(_) => "refused".to_string(),
            };
            println!("translate [{addr:#x}, +{len:#x}) -> {answer}");
        }
    }
    Ok(())
}

fn enter_real_mode(vcpu: &VcpuFd) -> Result<(), String> {
    let mut sregs = vcpu.get_sregs().map_err(|e| format!("KVM_GET_SREGS failed: {e}"))?;
    for segment in [&mut sregs.cs, &mut sregs.ds, &mut sregs.es, &mut sregs.ss] {
        segment.base = 0;
        segment.selector = 0;
    }
    vcpu.set_sregs(&sregs).map_err(|e| format!("KVM_SET_SREGS failed: {e}"))?;
    let regs = kvm_bindings::kvm_regs { rip: CODE_ADDRESS, rflags: 0x2, ..Default::default() };
    vcpu.set_regs(&regs).map_err(|e| format!("KVM_SET_REGS failed: {e}"))
}

fn run_until_halt(vcpu: &mut VcpuFd, vm: &Vm) -> Result<(), String> {
    loop {
        let exit = vcpu.run().map_err(|e| format!("KVM_RUN failed: {e}"))?;
        match handle_exit(exit, &vm.buses) {
            ExitOutcome::Io(_) => {}
            ExitOutcome::Mmio(access) => {
                let device = access.hit.map_or("no device".to_string(), |h| format!("{}+{:#x}", h.name, h.offset));
                let arrow = if access.is_write { "<-" } else { "->" };
                let kind = if access.is_write { "write" } else { "read " };
                println!(
                    "mmio: {kind} {:#x} ({device}) {} bytes {arrow} {:#x}",
                    access.addr,
                    access.data.len(),
                    access.value()
                );
            }
            ExitOutcome::Halted => return Ok(()),
            ExitOutcome::Other(exit) => return Err(format!("unexpected exit from the guest: {exit}")),
        }
    }
}
