//! `stage08 --demo paging` and `stage08 --demo exits`: the two exercises of this stage, each in
//! a second and without Linux.
//!
//! - `paging` builds 4-level page tables in 16 MiB of guest memory (4 KiB, 2 MiB and 1 GiB
//!   pages, entries without P, entries with reserved bits, a table outside RAM) and prints the
//!   walk of one address through each: every entry read, and where the walk ended.
//! - `exits` runs stage 3's small guest (two vCPUs, each printing one line from long mode, then
//!   `hlt`) with the exit recorder attached, and prints what it recorded: exits by vCPU and
//!   kind, by device, how many had their guest RIP, and the boot timeline's marks.
//!
//! # Resources
//! - Intel SDM vol. 3A, §4.5 "4-Level Paging and 5-Level Paging" (tables 4-15 to 4-20: the
//!   entry formats, PS, the reserved bits).

use crate::recorder::ExitRecorder;
use crate::stats::timeline::{BootEvent, BootTimeline};
use crate::stats::{ExitKind, ExitStats};
use crate::walk::{
    walk, Next, Outcome, Paging, ENTRY_SIZE, PTE_NO_EXECUTE, PTE_PAGE_SIZE, PTE_PRESENT, PTE_USER, PTE_WRITABLE,
};
use stage02::devices::console::PortConsole;
use stage02::memory::{GuestAddress, GuestMemory, MemoryError};
use stage02::vm::Vm;
use stage03::control::VmControl;
use stage03::demo as stage3_guest;
use stage03::exit_hook::ExitHooks;
use stage03::host_workarounds::{HostWorkarounds, WorkaroundMode};
use stage03::vcpu::{join_vcpus, Vcpu, VcpuContext};
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The demonstrations `--demo` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Demo {
    /// Page walks over tables the demo builds (no KVM needed).
    Paging,
    /// Exit recording over stage 3's two-vCPU guest.
    Exits,
}

/// Runs `demo`, printing to stdout.
///
/// # Errors
/// When the demo cannot set itself up (memory, KVM, vCPUs); never for what it shows.
pub fn run(demo: Demo) -> Result<(), Box<dyn Error>> {
    match demo {
        Demo::Paging => Ok(paging()?),
        Demo::Exits => exits(),
    }
}

const P: u64 = PTE_PRESENT;
const RW: u64 = PTE_PRESENT | PTE_WRITABLE;
const PML4: u64 = 0x10000;
const PDPT: u64 = 0x11000;
const PD: u64 = 0x12000;
const PT: u64 = 0x13000;
const USER_PDPT: u64 = 0x14000;
const USER_PD: u64 = 0x15000;
const USER_PT: u64 = 0x16000;

fn set(mem: &GuestMemory, table: u64, index: u64, entry: u64) -> Result<(), MemoryError> {
    mem.write_obj(GuestAddress(table + index * ENTRY_SIZE), entry)
}

fn paging() -> Result<(), MemoryError> {
    let mem = GuestMemory::new(&[(0, 16 << 20)])?;
    // A user page at 0x7f12_3456_7000 (indices 254, 72, 418, 359); and one at 0x7f12_6000_0000
    // (254, 73, 256, 0) under a read-only PDPT entry.
    set(&mem, PML4, 254, USER_PDPT | RW | PTE_USER)?;
    set(&mem, USER_PDPT, 72, USER_PD | RW | PTE_USER)?;
    set(&mem, USER_PD, 418, USER_PT | RW | PTE_USER)?;
    set(&mem, USER_PT, 359, 0x55000 | RW | PTE_USER | PTE_NO_EXECUTE)?;
    set(&mem, USER_PDPT, 73, USER_PD | P | PTE_USER)?;
    set(&mem, USER_PD, 256, USER_PT | RW | PTE_USER)?;
    set(&mem, USER_PT, 0, 0x66000 | RW | PTE_USER)?;
    // The low 8 GiB: PDPT[0] -> PD -> PT for the first 2 MiB; the rest large pages or traps.
    set(&mem, PML4, 0, PDPT | RW)?;
    set(&mem, PML4, 2, PDPT | RW | PTE_PAGE_SIZE)?; // PS in a PML4 entry: reserved
    set(&mem, PDPT, 0, PD | RW)?;
    set(&mem, PD, 0, PT | RW)?;
    set(&mem, PT, 0x1f, 0x2000 | RW)?;
    set(&mem, PD, 3, 0x80_0000 | RW | PTE_PAGE_SIZE | 1 << 12)?; // 2 MiB page; bit 12 is PAT
    set(&mem, PD, 4, 0x90_0000 | PTE_WRITABLE | PTE_PAGE_SIZE)?; // everything but P
    set(&mem, PD, 5, 0xa0_0000 | RW | PTE_PAGE_SIZE | 1 << 13)?; // bit 13: reserved in a 2 MiB PDE
    set(&mem, PDPT, 3, 0xc000_0000 | RW | PTE_PAGE_SIZE)?; // a 1 GiB page at 3 GiB
    set(&mem, PDPT, 5, 0x4000_0000 | RW)?; // a PD at 1 GiB, outside RAM

    let cases: [(&str, &str, u64); 10] = [
        ("4k", "a user page, four levels, CR3 with PCD|PWT set", 0x7f12_3456_7123),
        ("4k-low", "the first 2 MiB through a PT", 0x1f456),
        ("read-only", "the PDPT entry clears RW for what is below it", 0x7f12_6000_0abc),
        ("2m", "a 2 MiB page whose entry has PAT (bit 12) set", 0x0067_8abc),
        ("1g", "a 1 GiB page", 0xc123_4567),
        ("not-present", "a PD entry with every bit but P", 0x0091_0000),
        ("reserved-2m", "a 2 MiB entry with bit 13 set", 0x00a1_2345),
        ("reserved-pml4", "PS set in a PML4 entry", 0x0100_0000_0000),
        ("outside-ram", "a PDPT entry pointing at a PD at 1 GiB, outside RAM", 0x1_4000_1000),
        ("non-canonical", "bit 47 set, bits 63:48 clear", 0x0000_8000_0000_0000),
    ];
    let paging = Paging::four_level(PML4 | 0x18);
    for (name, what, gva) in cases {
        println!("# {name}: {what}");
        let walk = walk(&mem, &paging, gva);
        println!("[{name}] gva {gva:#x}");
        for step in &walk.steps {
            let next = match step.next {
                Next::Table(table) => format!("table {table:#x}"),
                Next::Page { base, size } => format!("{size} page {base:#x}"),
                Next::Stop => "stop".to_string(),
            };
            println!(
                "[{name}]   {:<4}[{:3}] @ {:#x}: {:#018x} -> {next}",
                step.level.name(),
                step.index,
                step.entry_gpa,
                step.entry
            );
        }
        match walk.outcome {
            Outcome::Mapped(m) => {
                let rights = [
                    if m.writable { "writable" } else { "read-only" },
                    if m.user { "user" } else { "kernel only" },
                    if m.executable { "executable" } else { "no-execute" },
                ];
                println!("[{name}] => gpa {:#x} ({} page at {:#x}; {})", m.gpa, m.page, m.page_base, rights.join(", "));
            }
            other => println!("[{name}] => {other}"),
        }
    }
    Ok(())
}

fn exits() -> Result<(), Box<dyn Error>> {
    const VCPUS: u8 = 2;
    let start = Instant::now();
    let vm = Vm::new(64 << 20)?;
    stage3_guest::load(&vm.memory)?;
    let console = Arc::new(Mutex::new(PortConsole::new(std::io::stdout())));
    vm.buses.pio.insert("com1", u64::from(stage01::SERIAL_PORT), 1, console)?;
    let stats = Arc::new(ExitStats::new(usize::from(VCPUS)));
    let timeline = Arc::new(BootTimeline::new(start));
    let mut hooks = ExitHooks::default();
    hooks.push(Arc::new(ExitRecorder::new(Arc::clone(&stats), Arc::clone(&timeline), Arc::clone(&vm.buses))));
    // Hosts that cannot emulate int3 need stage 3's workarounds (as `stage03` turns them on).
    hooks.push(Arc::new(HostWorkarounds::new(WorkaroundMode::Auto)));
    let context = VcpuContext {
        memory: Arc::clone(&vm.memory),
        buses: Arc::clone(&vm.buses),
        control: Arc::new(VmControl::new()),
        hooks,
    };
    let mut vcpus = Vec::new();
    for id in 0..VCPUS {
        let vcpu = Vcpu::new(&vm.kvm, &vm.fd, id, VCPUS)?;
        vcpu.configure_long_mode(&vm.memory, stage3_guest::entry_point(id))?;
        stage3_guest::use_demo_idt(&vcpu.fd).map_err(|e| format!("KVM_SET_SREGS failed: {e}"))?;
        vcpus.push(vcpu);
    }
    let threads = vcpus.into_iter().map(|vcpu| vcpu.start(context.clone())).collect::<Result<Vec<_>, _>>()?;
    let reason = join_vcpus(threads, &context.control);
    println!("# what the exit recorder saw ({reason})");
    let snapshot = stats.snapshot();
    for (id, counts) in snapshot.per_vcpu.iter().enumerate() {
        let kinds: Vec<String> = ExitKind::ALL
            .iter()
            .filter(|&&kind| counts.kinds[kind as usize].count > 0)
            .map(|&kind| format!("{} {}", kind.name(), counts.kinds[kind as usize].count))
            .collect();
        println!("[exits] vCPU {id}: {} exits: {}", counts.total(), kinds.join(", "));
    }
    let mut devices: Vec<_> = snapshot.all.devices.iter().collect();
    devices.sort_by_key(|(name, _)| **name);
    for (name, counts) in devices {
        println!("[exits] device {}: {} reads, {} writes", name.unwrap_or("(none)"), counts.reads, counts.writes);
    }
    println!(
        "[exits] exits without a guest RIP: {}; distinct RIPs: {}",
        snapshot.all.untracked.exits,
        snapshot.all.rips.len()
    );
    for event in [BootEvent::FirstInstruction, BootEvent::FirstConsoleByte] {
        let seen = if timeline.at(event).is_some() { "marked" } else { "not marked" };
        println!("[timeline] {}: {seen}", event.label());
    }
    Ok(())
}
