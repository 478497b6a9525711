//! What happens when a filter refuses a system call: the kernel sends the thread SIGSYS
//! (`SECCOMP_RET_TRAP`), and this handler prints one line naming the thread and the call,
//! gives the terminal back and ends the process — never a silent hang, never a half-dead VM.
//!
//! A signal handler may only make async-signal-safe calls, and it runs under the very filter
//! that refused the call: it must not allocate, lock or format with `std`. So the message is
//! assembled by hand in a buffer on the stack, the thread's name comes from a thread-local set
//! when the filter was installed, the call's name from a static table, and the handler uses
//! only `write`, the terminal restore (`ioctl(0, TCSETS)` and `TCGETS`) and `exit_group`,
//! which every filter allows for this reason. A call refused inside the handler, where SIGSYS
//! is blocked, would kill the process with no word: the kernel falls back to the default action.
//!
//! # Resources
//! - seccomp(2), "SECCOMP_RET_TRAP": `si_syscall`, `si_call_addr` and `si_arch` in siginfo.
//! - signal-safety(7); sigaction(2), `SA_SIGINFO`.

use super::syscall_names::syscall_name;
use std::cell::Cell;
use std::io;
use std::sync::OnceLock;

/// The exit code after a refused call: 128 + SIGSYS, as a shell reports a process that
/// SIGSYS killed (stage 3's `exit_code` uses the same convention for signals).
pub const SIGSYS_EXIT_CODE: i32 = 128 + libc::SIGSYS;

/// Longest thread name kept (Linux keeps 15 bytes; ours are a little longer).
const NAME_CAPACITY: usize = 32;

/// The program name the message starts with.
static PROGRAM: OnceLock<&'static str> = OnceLock::new();

thread_local! {
    /// This thread's name and its length, for the handler (set by [`set_thread_name`]).
    static THREAD_NAME: Cell<([u8; NAME_CAPACITY], usize)> = const { Cell::new(([0; NAME_CAPACITY], 0)) };
}

/// The `_sigsys` member of `siginfo_t` for SIGSYS from seccomp (libc has no accessor):
/// after the three `int`s and the padding of every `siginfo_t` come the address of the call
/// instruction, the system call's number and the architecture (`AUDIT_ARCH_*`).
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// Names the calling thread in the message its handler would print.
pub fn set_thread_name(name: &str) {
    let mut buffer = [0u8; NAME_CAPACITY];
    let len = name.len().min(NAME_CAPACITY);
    buffer[..len].copy_from_slice(&name.as_bytes()[..len]);
    THREAD_NAME.with(|cell| cell.set((buffer, len)));
}

/// Installs the SIGSYS handler for the process; `program` starts its message.
///
/// # Errors
/// When `sigaction` fails.
pub fn install_handler(program: &'static str) -> io::Result<()> {
    let _ = PROGRAM.set(program);
    // SAFETY: sigaction is plain data; zeroed is a valid empty mask and no flags.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: a valid signal number, a valid action with a handler of the SA_SIGINFO shape,
    // and no old action asked for.
    if unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The message for a refused call, written into `out`; returns its length. Pure, so that it
/// can be tested, and allocation-free, so that the handler can use it.
pub fn format_message(out: &mut [u8; 256], program: &str, thread: &[u8], syscall: i64) -> usize {
    let mut line = Line { out, len: 0, cut: false };
    line.push(program.as_bytes());
    line.push(b": seccomp: thread '");
    line.push(thread);
    line.push(b"' made a forbidden system call: ");
    line.push(syscall_name(syscall).unwrap_or("unknown").as_bytes());
    line.push(b" (");
    line.push_number(syscall);
    line.push(b"); stopping (--no-seccomp turns the filters off)\n");
    line.len
}

/// A line being written into a fixed buffer; what does not fit is cut.
struct Line<'a> {
    out: &'a mut [u8; 256],
    len: usize,
    /// Whether the line was cut (and ended with its newline): nothing more goes in.
    cut: bool,
}

impl Line<'_> {
    fn push(&mut self, bytes: &[u8]) {
        if self.cut {
            return;
        }
        // Keep the last byte for the newline, so that a cut line still ends one.
        let room = self.out.len() - 1 - self.len;
        let take = bytes.len().min(room);
        self.out[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        if take < bytes.len() {
            self.out[self.len] = b'\n';
            self.len += 1;
            self.cut = true;
        }
    }

    fn push_number(&mut self, number: i64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut rest = number.unsigned_abs();
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if number < 0 {
            self.push(b"-");
        }
        self.push(&digits[start..]);
    }
}

extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; for SIGSYS from seccomp it has the `_sigsys`
    // layout of `SigsysInfo`, which is no larger than `siginfo_t`.
    let syscall = unsafe { (*info.cast::<SigsysInfo>()).syscall };
    let (name, len) = THREAD_NAME.with(Cell::get);
    let mut message = [0u8; 256];
    let length =
        format_message(&mut message, PROGRAM.get().copied().unwrap_or("minivirt"), &name[..len], syscall.into());
    // SAFETY: write is async-signal-safe; the buffer is valid for `length` bytes.
    unsafe { libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), length) };
    // The message first: it must come out even if the restore were refused too.
    stage05::terminal::restore();
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(SIGSYS_EXIT_CODE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(thread: &str, syscall: i64) -> String {
        let mut out = [0u8; 256];
        let len = format_message(&mut out, "stage08", thread.as_bytes(), syscall);
        String::from_utf8(out[..len].to_vec()).unwrap()
    }

    #[test]
    fn the_message_names_the_thread_and_the_call() {
        assert_eq!(
            message("vcpu 0", libc::SYS_openat),
            "stage08: seccomp: thread 'vcpu 0' made a forbidden system call: openat (257); stopping (--no-seccomp turns the filters off)\n"
        );
        assert!(message("virtio i/o", 400).contains(": unknown (400);"));
        assert!(message("x", -1).contains("unknown (-1)"));
    }

    #[test]
    fn a_message_too_long_for_the_buffer_is_cut_and_still_ends_its_line() {
        let long = "t".repeat(300);
        let text = message(&long, 0);
        assert_eq!(text.len(), 256);
        assert!(text.ends_with("tt\n"), "{text}");
    }

    #[test]
    fn the_sigsys_layout_puts_the_number_where_the_kernel_does() {
        // include/uapi/asm-generic/siginfo.h: the union starts at 16 on 64-bit, and _sigsys
        // holds a pointer, then the int syscall number, then the unsigned arch.
        assert_eq!(std::mem::offset_of!(SigsysInfo, call_addr), 16);
        assert_eq!(std::mem::offset_of!(SigsysInfo, syscall), 24);
        assert_eq!(std::mem::offset_of!(SigsysInfo, arch), 28);
        assert!(std::mem::size_of::<SigsysInfo>() <= std::mem::size_of::<libc::siginfo_t>());
    }
}
