//! One monitor session: a command line in, its answer out, against the running machine.
//!
//! Each session (the console's, or one connection on the socket) keeps its own parser — QEMU's
//! `x` remembers the last format — and its own current vCPU (`cpu N`). Nothing a user types
//! can stop the VM by accident: bad input is a one-line error and the guest runs on.

use super::command::{AddressSpace, Command, CommandParser, Expr, InfoTopic, Register};
use super::format::{self, CpuSummary, DeviceRange};
use crate::pagemap::{HostFrame, Pagemap, PagemapError};
use crate::symbols::SymbolTable;
use crate::vcpus::{VcpuAccess, VcpuState};
use crate::walk::{walk, PagingMode};
use stage02::memory::{GuestAddress, GuestMemory};
use stage02::vm::Buses;
use stage03::control::{StopReason, VmControl};
use stage04::layout::{APIC_START, IOAPIC_START};
use stage05::event_loop::ConsoleMonitor;
use std::sync::Arc;

/// The devices KVM emulates in the kernel: they take no exits and are on no bus of ours.
const IN_KERNEL_MMIO: [(&str, u64, u64); 2] =
    [("ioapic (in KVM)", IOAPIC_START, 0x1000), ("local apic (in KVM)", APIC_START, 0x1000)];
/// The in-kernel PIC, PIT and its speaker port.
const IN_KERNEL_PIO: [(&str, u64, u64); 4] = [
    ("pic master (in KVM)", 0x20, 2),
    ("pit (in KVM)", 0x40, 4),
    ("speaker (in KVM)", 0x61, 1),
    ("pic slave (in KVM)", 0xa0, 2),
];

/// What the monitor can see of the machine; shared by every session.
pub struct MachineView {
    /// Guest RAM.
    pub memory: Arc<GuestMemory>,
    /// The device buses, for `info mtree`.
    pub buses: Arc<Buses>,
    /// The vCPUs' registers and the pause switch.
    pub vcpus: Arc<VcpuAccess>,
    /// The stop flag, for `quit`.
    pub control: Arc<VmControl>,
    /// The guest kernel's symbols, if loaded.
    pub symbols: Option<Arc<SymbolTable>>,
    /// The `info stats` report, if statistics are being kept.
    pub stats: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

/// A session's answer to one line.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// The text to show (may be empty), each line ending in `\n`.
    pub text: String,
    /// Whether the session ends (`quit`).
    pub quit: bool,
}

impl Answer {
    fn text(text: impl Into<String>) -> Answer {
        Answer { text: text.into(), quit: false }
    }
}

/// One monitor session.
pub struct Session {
    view: Arc<MachineView>,
    parser: CommandParser,
    cpu: u8,
}

impl Session {
    /// A session on `view`, with vCPU 0 selected.
    pub fn new(view: Arc<MachineView>) -> Session {
        Session { view, parser: CommandParser::new(), cpu: 0 }
    }

    /// Runs one command line.
    pub fn execute(&mut self, line: &str) -> Answer {
        match self.parser.parse(line) {
            Ok(None) => Answer::text(""),
            Ok(Some(command)) => self.run(command),
            Err(error) => Answer::text(format!("{error}\n")),
        }
    }

    fn run(&mut self, command: Command) -> Answer {
        let view = Arc::clone(&self.view);
        let text = match command {
            Command::Help(topic) => format::help(topic),
            Command::Info(InfoTopic::Mtree) => self.mtree(),
            Command::Info(InfoTopic::Registers) => match self.state() {
                Ok(state) => format::registers(&state.regs, &state.sregs, view.symbols.as_deref()),
                Err(e) => e,
            },
            Command::Info(InfoTopic::Cpus) => self.cpus(),
            Command::Info(InfoTopic::Stats) => match &view.stats {
                Some(report) => report(),
                None => "statistics are off: start the VMM with --stats or --stats-json\n".into(),
            },
            Command::Stop => {
                view.vcpus.pause();
                String::new()
            }
            Command::Cont => {
                view.vcpus.resume();
                String::new()
            }
            Command::Quit => {
                view.control.request_stop(StopReason::Quit);
                return Answer { text: String::new(), quit: true };
            }
            Command::Cpu(index) => match u8::try_from(index).ok().filter(|&i| i < view.vcpus.count()) {
                Some(index) => {
                    self.cpu = index;
                    String::new()
                }
                None => format!("invalid CPU index {index}: this machine has {} vCPUs\n", view.vcpus.count()),
            },
            Command::Dump { space, format, address } => match self.address(&address) {
                Ok(start) => self.dump(space, format, start),
                Err(e) => e,
            },
            Command::Gva2Gpa(address) => self.with_walk(&address, |walk, _| format::gva2gpa(walk)),
            Command::Gpa2Hva(address) => match self.address(&address) {
                Ok(gpa) => format::gpa2hva(&view.memory, gpa),
                Err(e) => e,
            },
            Command::Gpa2Hpa(address) => match self.address(&address) {
                Ok(gpa) => format::gpa2hpa(&view.memory, gpa, host_frame),
                Err(e) => e,
            },
            Command::Translate(address) => {
                self.with_walk(&address, |walk, memory| format::translate(walk, memory, host_frame))
            }
        };
        Answer::text(text)
    }

    /// The current vCPU's registers, or the one-line reason they cannot be read.
    fn state(&self) -> Result<VcpuState, String> {
        self.view.vcpus.state(self.cpu).map_err(|e| format!("{e}\n"))
    }

    /// Evaluates an address expression, reading registers only when it names one.
    fn address(&self, address: &Expr) -> Result<u64, String> {
        if !address.uses_registers() {
            return Ok(address.evaluate(|_| 0));
        }
        let state = self.state()?;
        Ok(address.evaluate(|register| register_value(&state, register)))
    }

    fn paging(&self) -> Result<PagingMode, String> {
        let s = self.state()?.sregs;
        Ok(PagingMode::from_registers(s.cr0, s.cr3, s.cr4, s.efer))
    }

    fn dump(&self, space: AddressSpace, format: super::command::DumpFormat, start: u64) -> String {
        let memory = &self.view.memory;
        match space {
            AddressSpace::Physical => {
                format::memory_dump(start, format, |gpa, buf| memory.read(GuestAddress(gpa), buf))
            }
            AddressSpace::Virtual => match self.paging() {
                Ok(paging) => format::memory_dump(start, format, |gva, buf| paging.read_virtual(memory, gva, buf)),
                Err(e) => e,
            },
        }
    }

    fn with_walk(&self, address: &Expr, answer: impl Fn(&crate::walk::Walk, &GuestMemory) -> String) -> String {
        let gva = match self.address(address) {
            Ok(gva) => gva,
            Err(e) => return e,
        };
        match self.paging() {
            Ok(PagingMode::Long(paging)) => answer(&walk(&self.view.memory, &paging, gva), &self.view.memory),
            Ok(PagingMode::Off) => format!("vCPU {} has paging off: GVA {gva:#x} is GPA {gva:#x}\n", self.cpu),
            Ok(PagingMode::Legacy) => {
                format!("vCPU {} is not in long mode: its 32-bit tables are not walked\n", self.cpu)
            }
            Err(e) => e,
        }
    }

    fn mtree(&self) -> String {
        let ranges = |bus: &stage02::bus::Bus, in_kernel: &[(&str, u64, u64)]| {
            let mut ranges: Vec<DeviceRange> = bus
                .ranges()
                .into_iter()
                .map(|r| DeviceRange { name: r.name.to_string(), base: r.base, len: r.len })
                .collect();
            ranges.extend(in_kernel.iter().map(|&(name, base, len)| DeviceRange { name: name.into(), base, len }));
            ranges
        };
        let buses = &self.view.buses;
        format::mtree(&self.view.memory, &ranges(&buses.mmio, &IN_KERNEL_MMIO), &ranges(&buses.pio, &IN_KERNEL_PIO))
    }

    fn cpus(&self) -> String {
        let vcpus = &self.view.vcpus;
        let summaries: Vec<CpuSummary> = (0..vcpus.count())
            .map(|index| {
                let answer = vcpus.with_vcpu(index, |fd| (fd.get_regs().map(|r| r.rip).ok(), thread_id()));
                let (rip, thread_id) = answer.unwrap_or((None, -1));
                CpuSummary { index: u32::from(index), thread_id, rip }
            })
            .collect();
        format::cpus(&summaries, u32::from(self.cpu), self.view.symbols.as_deref())
    }
}

/// The Linux thread id of the calling thread (the vCPU thread, when run by `with_vcpu`).
fn thread_id() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    i64::from(unsafe { libc::gettid() })
}

/// The console's monitor (Ctrl-A c) is a session like a socket connection's.
impl ConsoleMonitor for Session {
    fn execute(&mut self, line: &str) -> String {
        Session::execute(self, line).text
    }
}

/// The host frame behind a VMM address, from this process's pagemap.
fn host_frame(hva: u64) -> Result<HostFrame, PagemapError> {
    Pagemap::open()?.frame(hva)
}

fn register_value(state: &VcpuState, register: Register) -> u64 {
    let (r, s) = (&state.regs, &state.sregs);
    match register {
        Register::Rax => r.rax,
        Register::Rbx => r.rbx,
        Register::Rcx => r.rcx,
        Register::Rdx => r.rdx,
        Register::Rsi => r.rsi,
        Register::Rdi => r.rdi,
        Register::Rbp => r.rbp,
        Register::Rsp => r.rsp,
        Register::R8 => r.r8,
        Register::R9 => r.r9,
        Register::R10 => r.r10,
        Register::R11 => r.r11,
        Register::R12 => r.r12,
        Register::R13 => r.r13,
        Register::R14 => r.r14,
        Register::R15 => r.r15,
        Register::Rip => r.rip,
        Register::Rflags => r.rflags,
        Register::Cr0 => s.cr0,
        Register::Cr2 => s.cr2,
        Register::Cr3 => s.cr3,
        Register::Cr4 => s.cr4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> (Session, Arc<MachineView>) {
        let memory = Arc::new(GuestMemory::new(&[(0, 0x10_0000)]).unwrap());
        memory.write(GuestAddress(0x1000), b"minivirt").unwrap();
        let control = Arc::new(VmControl::new());
        let view = Arc::new(MachineView {
            memory,
            buses: Arc::new(Buses::default()),
            vcpus: Arc::new(VcpuAccess::new(Arc::clone(&control), 1)),
            control,
            symbols: None,
            stats: None,
        });
        (Session::new(Arc::clone(&view)), view)
    }

    #[test]
    fn physical_memory_reads_without_a_vcpu() {
        let (mut session, _) = session();
        let answer = session.execute("xp /8c 0x1000");
        assert!(answer.text.contains("'m' 'i' 'n' 'i' 'v' 'i' 'r' 't'"), "{}", answer.text);
        assert!(!answer.quit);
    }

    #[test]
    fn bad_input_is_one_line_and_the_session_goes_on() {
        let (mut session, view) = session();
        for line in ["frobnicate", "xp /8z 0x1000", "gpa2hva 0xzz", "cpu 5"] {
            let answer = session.execute(line);
            assert_eq!(answer.text.lines().count(), 1, "{line}: {}", answer.text);
            assert!(!answer.quit);
        }
        assert!(!view.control.is_stopping());
        assert!(session.execute("x /2x 0x1000").text.contains("not running"), "a GVA needs a running vCPU");
    }

    #[test]
    fn the_memory_tree_lists_ram_and_the_devices_kvm_emulates() {
        let (mut session, _) = session();
        let text = session.execute("info mtree").text;
        assert!(text.contains("ioapic (in KVM)") && text.contains("pit (in KVM)"), "{text}");
    }

    #[test]
    fn quit_stops_the_vm() {
        let (mut session, view) = session();
        assert!(session.execute("quit").quit);
        assert_eq!(view.control.reason(), Some(StopReason::Quit));
    }
}
