//! Stage 1: the trap-and-emulate loop in its smallest form.
//!
//! The guest is a few bytes of real-mode code that writes a message to I/O port 0x3f8, one
//! `out` instruction per byte, then halts. Each `out` traps to us as `KVM_EXIT_IO`; we
//! "emulate" the port by printing the byte upper-cased, then resume the guest. `hlt` traps as
//! `KVM_EXIT_HLT`, and the run is over. [`handle_exit`] is the exercise.
//!
//! # Resources
//! - The KVM API: <https://docs.kernel.org/virt/kvm/api.html> (`KVM_CREATE_VM`, `KVM_RUN`).
//! - LWN, "Using the KVM API": <https://lwn.net/Articles/658511/>.

use kvm_ioctls::{Kvm, VcpuExit};
use std::io::{self, Write};

/// The I/O port the guest writes to: COM1's data register.
pub const SERIAL_PORT: u16 = 0x3f8;
/// Where the guest code sits in guest-physical memory (and the size of our one page).
pub const CODE_ADDRESS: u64 = 0x1000;
/// One page of guest memory.
pub const MEMORY_SIZE: usize = 0x1000;
/// The KVM API version every kernel since 2.6.22 reports.
pub const KVM_API_VERSION: i32 = 12;

/// What can go wrong in stage 1; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// /dev/kvm could not be opened.
    #[error("cannot open /dev/kvm ({0}): {1}")]
    OpenKvm(#[source] kvm_ioctls::Error, &'static str),
    /// The kernel speaks another KVM API.
    #[error("/dev/kvm reports KVM API version {0}, expected {KVM_API_VERSION}: this kernel's KVM is not supported")]
    ApiVersion(i32),
    /// A KVM ioctl failed.
    #[error("{0} failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// mmap of guest memory failed.
    #[error("cannot allocate guest memory: {0}")]
    Mmap(#[source] io::Error),
    /// The message does not fit in the guest's one page.
    #[error("the message is {0} bytes; at most {max} fit in one page of guest code", max = max_message_len())]
    MessageTooLong(usize),
    /// The guest stopped in a way it should not have.
    #[error("unexpected exit from the guest: {0}")]
    UnexpectedExit(String),
    /// Writing to our own stdout failed.
    #[error("cannot write the guest's output: {0}")]
    Output(#[source] io::Error),
}

/// Opens /dev/kvm and checks its API version, explaining the usual failures.
pub fn open_kvm() -> Result<Kvm, HelloError> {
    let kvm = Kvm::new().map_err(|e| {
        let hint = match e.errno() {
            libc::ENOENT => "no such device: enable virtualization (VT-x/AMD-V) and load kvm_intel or kvm_amd",
            libc::EACCES | libc::EPERM => {
                "permission denied: add yourself to the kvm group (sudo usermod -aG kvm $USER) and log in again"
            }
            _ => "check that KVM is available on this machine",
        };
        HelloError::OpenKvm(e, hint)
    })?;
    match kvm.get_api_version() {
        KVM_API_VERSION => Ok(kvm),
        other => Err(HelloError::ApiVersion(other)),
    }
}

/// Parses the command line like `clap::Parser::parse`, but a bad flag gives one line naming the
/// problem and exit code 1 (help and version still print and exit 0).
pub fn parse_args<T: clap::Parser>() -> T {
    T::try_parse().unwrap_or_else(|err| {
        use clap::error::ErrorKind;
        if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            err.exit();
        }
        let program = std::env::args().next().unwrap_or_default();
        let program = program.rsplit('/').next().unwrap_or("minivirt");
        let rendered = err.to_string();
        let first = rendered.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ");
        eprintln!("{program}: {first} (see --help)");
        std::process::exit(1)
    })
}

/// Makes a closed stdout end the program quietly, as it does for other command-line tools.
pub fn default_sigpipe() {
    // SAFETY: setting a signal disposition to its default has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// The exit status of a run that either worked or failed with one printed line: what every
/// stage's `main` returns for its modes that do not run a guest to the end (demos, dry runs).
pub fn exit_status<E: std::fmt::Display>(program: &str, result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The longest message the guest code can carry: 3 bytes per character, plus 3 for
/// `mov dx, port` and 3 for the final `hlt; jmp`.
pub const fn max_message_len() -> usize {
    (MEMORY_SIZE - CODE_ADDRESS as usize % MEMORY_SIZE - 6) / 3
}

// qa:begin stage1-guest-code
/// Generates 16-bit guest code that writes `message` to I/O port `port` byte by byte, then halts.
pub fn guest_code(message: &[u8], port: u16) -> Result<Vec<u8>, HelloError> {
    if message.len() > max_message_len() {
        return Err(HelloError::MessageTooLong(message.len()));
    }
    let [port_lo, port_hi] = port.to_le_bytes();
    let mut code = vec![0xba, port_lo, port_hi]; // mov dx, port
    code.extend(out_bytes_code(message));
    // 1: hlt; jmp 1b — halted for good, like an operating system's idle loop.
    code.extend([0xf4, 0xeb, 0xfd]);
    Ok(code)
}

/// 16-bit code that sends each byte of `message` to the port in DX: `mov al, byte; out dx, al`.
pub fn out_bytes_code(message: &[u8]) -> Vec<u8> {
    message.iter().flat_map(|&byte| [0xb0, byte, 0xee]).collect()
}
// qa:end stage1-guest-code

/// What the exit loop does once an exit has been handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitAction {
    /// Run the guest again (`KVM_RUN`).
    Resume,
    /// The guest is done: leave the loop.
    Stop,
}

// lab:begin solution stage1-exit-handling "handle one exit: print what the guest writes to SERIAL_PORT upper-cased (ASCII letters only) and resume, stop at hlt, and return UnexpectedExit for anything else"
/// Handles one exit of the guest: the "emulate" half of trap-and-emulate.
///
/// - `KVM_EXIT_IO`, an `out` to [`SERIAL_PORT`]: our serial port prints what it receives with
///   ASCII letters upper-cased (every other byte unchanged), and the guest runs on.
/// - `KVM_EXIT_HLT`: the guest has finished; the run ends.
/// - Anything else, an `out` to any other port included: this VMM emulates nothing more, so it
///   is [`HelloError::UnexpectedExit`].
pub fn handle_exit(exit: VcpuExit<'_>, out: &mut impl Write) -> Result<ExitAction, HelloError> {
    match exit {
        VcpuExit::IoOut(SERIAL_PORT, data) => {
            out.write_all(&data.to_ascii_uppercase()).map_err(HelloError::Output)?;
            Ok(ExitAction::Resume)
        }
        VcpuExit::Hlt => Ok(ExitAction::Stop),
        other => Err(HelloError::UnexpectedExit(format!("{other:?}"))),
    }
}
// lab:end

/// Creates a VM with one page of memory and one real-mode vCPU, runs `code` until it halts, and
/// writes what the guest sends to [`SERIAL_PORT`] into `out`. Returns the number of exits that
/// reached the VMM.
pub fn run_guest(kvm: &Kvm, code: &[u8], out: &mut impl Write) -> Result<u64, HelloError> {
    let vm = kvm.create_vm().map_err(|e| HelloError::Kvm("KVM_CREATE_VM", e))?;
    let memory = GuestPage::new()?;
    memory.load(code);
    // qa:begin stage1-memory-slot
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: CODE_ADDRESS,
        memory_size: MEMORY_SIZE as u64,
        userspace_addr: memory.host_address as u64,
        flags: 0,
    };
    // SAFETY: the region is a live mapping of MEMORY_SIZE bytes that outlives the VM (both are
    // dropped at the end of this function, the VM first).
    unsafe { vm.set_user_memory_region(region) }.map_err(|e| HelloError::Kvm("KVM_SET_USER_MEMORY_REGION", e))?;
    // qa:end stage1-memory-slot
    let mut vcpu = vm.create_vcpu(0).map_err(|e| HelloError::Kvm("KVM_CREATE_VCPU", e))?;
    // Real mode: CS base 0 so that CS:IP = 0:0x1000 is our code.
    let mut sregs = vcpu.get_sregs().map_err(|e| HelloError::Kvm("KVM_GET_SREGS", e))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).map_err(|e| HelloError::Kvm("KVM_SET_SREGS", e))?;
    let regs = kvm_bindings::kvm_regs { rip: CODE_ADDRESS, rflags: 0x2, ..Default::default() };
    vcpu.set_regs(&regs).map_err(|e| HelloError::Kvm("KVM_SET_REGS", e))?;
    // qa:begin stage1-exit-loop
    let mut exits = 0;
    loop {
        let exit = vcpu.run().map_err(|e| HelloError::Kvm("KVM_RUN", e))?;
        exits += 1;
        if handle_exit(exit, out)? == ExitAction::Stop {
            out.flush().map_err(HelloError::Output)?;
            return Ok(exits);
        }
    }
    // qa:end stage1-exit-loop
}

/// One page of anonymous host memory that backs the guest's memory.
struct GuestPage {
    host_address: *mut u8,
}

impl GuestPage {
    fn new() -> Result<Self, HelloError> {
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEMORY_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(HelloError::Mmap(io::Error::last_os_error()));
        }
        Ok(GuestPage { host_address: ptr.cast() })
    }

    fn load(&self, code: &[u8]) {
        assert!(code.len() <= MEMORY_SIZE, "guest_code() keeps the code within one page");
        // SAFETY: the mapping is MEMORY_SIZE bytes long and nothing else references it yet.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), self.host_address, code.len()) };
    }
}

impl Drop for GuestPage {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `new`.
        unsafe { libc::munmap(self.host_address.cast(), MEMORY_SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_code_writes_each_byte_then_halts() {
        let code = guest_code(b"Hi", SERIAL_PORT).unwrap();
        assert_eq!(code, [0xba, 0xf8, 0x03, 0xb0, b'H', 0xee, 0xb0, b'i', 0xee, 0xf4, 0xeb, 0xfd]);
        assert_eq!(guest_code(b"", 0x2f8).unwrap()[..3], [0xba, 0xf8, 0x02], "mov dx, 0x2f8");
    }

    #[test]
    fn serial_output_is_upper_cased_ascii_and_the_guest_resumes() {
        let mut out = Vec::new();
        for byte in "Mixed Case 123, ok? é".bytes() {
            let action = handle_exit(VcpuExit::IoOut(SERIAL_PORT, &[byte]), &mut out).unwrap();
            assert_eq!(action, ExitAction::Resume);
        }
        assert_eq!(String::from_utf8(out).unwrap(), "MIXED CASE 123, OK? é");
    }

    #[test]
    fn hlt_ends_the_run() {
        let mut out = Vec::new();
        assert_eq!(handle_exit(VcpuExit::Hlt, &mut out).unwrap(), ExitAction::Stop);
        assert!(out.is_empty());
    }

    #[test]
    fn other_ports_and_other_exits_are_unexpected_and_print_nothing() {
        let mut out = Vec::new();
        let other_port = handle_exit(VcpuExit::IoOut(0x2f8, b"x"), &mut out);
        assert!(matches!(&other_port, Err(HelloError::UnexpectedExit(what)) if what.contains("IoOut(760")));
        assert!(matches!(
            handle_exit(VcpuExit::IoIn(SERIAL_PORT, &mut [0]), &mut out),
            Err(HelloError::UnexpectedExit(_))
        ));
        assert!(matches!(handle_exit(VcpuExit::MmioWrite(0, b"x"), &mut out), Err(HelloError::UnexpectedExit(_))));
        assert!(matches!(handle_exit(VcpuExit::Shutdown, &mut out), Err(HelloError::UnexpectedExit(_))));
        assert!(out.is_empty(), "nothing the guest sent elsewhere is printed: {out:?}");
    }

    #[test]
    fn a_message_longer_than_the_page_is_refused() {
        let longest = guest_code(&vec![b'a'; max_message_len()], SERIAL_PORT).unwrap();
        assert!(longest.len() <= MEMORY_SIZE);
        assert_eq!(max_message_len(), 1363, "labs/stage01-hello.md states this limit (less the newline)");
        let too_long = guest_code(&vec![b'a'; max_message_len() + 1], SERIAL_PORT);
        assert!(matches!(too_long, Err(HelloError::MessageTooLong(_))));
    }
}
