//! The input side of the console: one thread waits on epoll and moves what the user types
//! into the UART's receive FIFO, which raises the guest's interrupt.
//!
//! The thread sleeps in `epoll_wait` on four sources and never holds the UART's lock while it
//! waits:
//! - stdin readable: read at most what the UART can take ([`SerialInput::room`]) and send it;
//! - the wake-up eventfd: the UART can take input again (the guest emptied its FIFO or raised
//!   RTS), so start watching stdin again;
//! - the signalfd: SIGINT, SIGTERM or SIGHUP stop the VM;
//! - the stop eventfd: the VM is over, the thread ends.
//!
//! While the UART has no room, stdin is taken off the epoll set rather than ignored: with a
//! level-triggered epoll, a readable stdin nobody reads would wake the thread in a loop.
//! stdin that epoll cannot watch (a regular file, /dev/null) is read whenever there is room.
//! End of input stops the reading, not the guest.
//!
//! # Resources
//! - epoll(7); vmm-sys-util's `Epoll`; Firecracker's and Cloud Hypervisor's serial input loops.

use crate::devices::serial::{Serial, SerialEvents, Trigger};
use crate::escape::{Command, EscapeFilter, HELP};
use crate::signals::TerminationSignals;
use stage03::control::{StopReason, VmControl};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The receiving side of a UART, as the input loop sees it.
pub trait SerialInput: Send {
    /// How many bytes the guest can take now.
    fn room(&self) -> usize;
    /// Sends as many of `bytes` as the guest can take now; returns how many, from the start.
    fn send(&mut self, bytes: &[u8]) -> usize;
}

impl<T: Trigger, W: Write + Send, EV: SerialEvents> SerialInput for Serial<T, W, EV> {
    fn room(&self) -> usize {
        self.receive_room()
    }

    fn send(&mut self, bytes: &[u8]) -> usize {
        let room = self.receive_room();
        self.enqueue_raw_bytes(&bytes[..room.min(bytes.len())])
    }
}

/// A command interpreter the console switches to with Ctrl-A c, as QEMU's `mon:stdio` does
/// (stage 8's monitor). Stages without one say so.
pub trait ConsoleMonitor: Send {
    /// Runs one command line and returns its answer, each line ending in `\n`.
    fn execute(&mut self, line: &str) -> String;
}

/// The monitor's prompt.
pub const MONITOR_PROMPT: &str = "(minivirt) ";

/// What the input loop works with.
pub struct InputConfig {
    /// The UART that receives the input.
    pub serial: Arc<Mutex<dyn SerialInput>>,
    /// Written (by the UART's events) when the UART can take input again.
    pub wakeup: EventFd,
    /// Where the input comes from: stdin in the VMM.
    pub input: RawFd,
    /// Whether Ctrl-A commands are recognised (when the input is the user's terminal).
    pub escapes: bool,
    /// Termination signals to turn into a stop, if the caller blocked them.
    pub signals: Option<TerminationSignals>,
    /// Where Ctrl-A x and signals stop the VM.
    pub control: Arc<VmControl>,
    /// What Ctrl-A c switches to, if this stage has a monitor.
    pub monitor: Option<Box<dyn ConsoleMonitor>>,
}

/// How much one read takes while the monitor has the keyboard.
const MONITOR_READ_SIZE: usize = 64;

// Event tokens.
const INPUT: u64 = 0;
const WAKEUP: u64 = 1;
const SIGNALS: u64 = 2;
const STOP: u64 = 3;

/// The running input thread.
pub struct InputLoop {
    stop: EventFd,
    thread: JoinHandle<()>,
}

impl InputLoop {
    /// Starts the thread.
    pub fn start(config: InputConfig) -> io::Result<InputLoop> {
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let mut state = LoopState::new(config, stop.try_clone()?)?;
        let thread = stage03::threads::spawn("console input", move || state.run())?;
        Ok(InputLoop { stop, thread })
    }

    /// Ends the thread and waits for it.
    pub fn stop(self) {
        // If the write failed the thread could not be woken; it would be a bug, not a hang risk
        // worth a panic: the process is about to exit.
        if self.stop.write(1).is_ok() {
            let _ = self.thread.join();
        }
    }
}

/// Where the input stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// epoll can watch it (a terminal, a pipe, a socket).
    Pollable { watched: bool },
    /// epoll cannot (a regular file, /dev/null): reads never block, so read when there is room.
    AlwaysReady,
    /// End of input, or an error reading it.
    Closed,
}

struct LoopState {
    config: InputConfig,
    epoll: Epoll,
    input: Input,
    escapes: EscapeFilter,
    /// Typed bytes the UART had no room for yet, in order.
    pending: Vec<u8>,
    /// Whether typed lines go to the monitor instead of the guest, and the line so far.
    in_monitor: bool,
    monitor_line: Vec<u8>,
    _stop: EventFd,
}

impl LoopState {
    fn new(config: InputConfig, stop: EventFd) -> io::Result<LoopState> {
        let epoll = Epoll::new()?;
        let watch = |fd: RawFd, token| epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, token));
        watch(stop.as_raw_fd(), STOP)?;
        watch(config.wakeup.as_raw_fd(), WAKEUP)?;
        if let Some(signals) = &config.signals {
            watch(signals.as_raw_fd(), SIGNALS)?;
        }
        let input = match watch(config.input, INPUT) {
            Ok(()) => Input::Pollable { watched: true },
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Input::AlwaysReady,
            Err(_) => Input::Closed, // no stdin at all (closed descriptor): run without input
        };
        Ok(LoopState {
            config,
            epoll,
            input,
            escapes: EscapeFilter::default(),
            pending: Vec::new(),
            in_monitor: false,
            monitor_line: Vec::new(),
            _stop: stop,
        })
    }

    fn run(&mut self) {
        let mut events = [EpollEvent::default(); 4];
        self.pump(false);
        loop {
            let count = match self.epoll.wait(-1, &mut events) {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("[minivirt] console input stopped: epoll_wait failed: {e}");
                    return;
                }
            };
            for event in &events[..count] {
                match event.data() {
                    STOP => return,
                    INPUT => self.pump(true),
                    WAKEUP => {
                        let _ = self.config.wakeup.read();
                        self.pump(false);
                    }
                    SIGNALS => {
                        let signal = self.config.signals.as_ref().and_then(TerminationSignals::read);
                        if let Some(signal) = signal {
                            self.config.control.request_stop(StopReason::Signal(signal));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Moves input towards the guest as far as the UART's room allows. `input_ready` says
    /// epoll reported the input readable, so one read will not block.
    fn pump(&mut self, input_ready: bool) {
        loop {
            if !self.deliver_pending() {
                return self.watch_input(false);
            }
            // The monitor takes input whether or not the guest's UART has room.
            let room = match self.in_monitor {
                true => MONITOR_READ_SIZE,
                false => self.config.serial.lock().unwrap_or_else(|e| e.into_inner()).room(),
            };
            match self.input {
                Input::Closed => return,
                _ if room == 0 => return self.watch_input(false),
                Input::Pollable { .. } if !input_ready => return self.watch_input(true),
                Input::Pollable { .. } => {
                    self.read_input(room);
                    // One read per readiness report: epoll says again if there is more.
                    if !self.deliver_pending() {
                        return self.watch_input(false);
                    }
                    return self.watch_input(true);
                }
                Input::AlwaysReady => self.read_input(room),
            }
        }
    }

    /// Sends the pending bytes; true when none are left.
    fn deliver_pending(&mut self) -> bool {
        if !self.pending.is_empty() {
            let sent = self.config.serial.lock().unwrap_or_else(|e| e.into_inner()).send(&self.pending);
            self.pending.drain(..sent);
        }
        self.pending.is_empty()
    }

    /// One read of at most `room` bytes; the typed bytes become pending, commands are run.
    fn read_input(&mut self, room: usize) {
        let mut buffer = [0u8; 64];
        let len = room.min(buffer.len());
        // SAFETY: reads at most `len` bytes into a buffer of at least that size.
        let read = unsafe { libc::read(self.config.input, buffer.as_mut_ptr().cast(), len) };
        if read < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            return;
        }
        if read <= 0 {
            // End of input (or an error such as a hung-up terminal): the guest runs on.
            self.watch_input(false);
            self.input = Input::Closed;
            return;
        }
        let typed = &buffer[..read as usize];
        if !self.config.escapes {
            self.pending.extend_from_slice(typed);
            return;
        }
        // One byte at a time: a Ctrl-A c in the middle of a read sends the bytes after it
        // to the other side.
        for &byte in typed {
            let mut typed_byte = Vec::new();
            for command in self.escapes.filter(&[byte], &mut typed_byte) {
                match command {
                    Command::Quit => self.config.control.request_stop(StopReason::Quit),
                    Command::Help => {
                        let _ = io::stderr().write_all(HELP.as_bytes());
                    }
                    Command::Monitor => self.switch_monitor(),
                }
            }
            if self.in_monitor {
                self.edit_monitor_line(&typed_byte);
            } else {
                self.pending.extend_from_slice(&typed_byte);
            }
        }
    }

    /// Ctrl-A c: to the monitor (with a prompt) or back to the guest's console.
    fn switch_monitor(&mut self) {
        let mut out = io::stdout().lock();
        if self.config.monitor.is_none() {
            let _ = out.write_all(b"\r\n[this stage has no monitor; stage 8 has one]\r\n");
        } else if self.in_monitor {
            self.in_monitor = false;
            let _ = out.write_all(b"\r\n[back to the guest console]\r\n");
        } else {
            self.in_monitor = true;
            self.monitor_line.clear();
            let _ = write!(out, "\r\n[monitor: Ctrl-A c returns to the console]\r\n{MONITOR_PROMPT}");
        }
        let _ = out.flush();
    }

    /// A minimal line editor for the monitor: echo, backspace, Enter runs the line.
    fn edit_monitor_line(&mut self, typed: &[u8]) {
        let mut out = io::stdout().lock();
        for &byte in typed {
            match byte {
                b'\r' | b'\n' => {
                    let line = String::from_utf8_lossy(&self.monitor_line).into_owned();
                    self.monitor_line.clear();
                    let answer = self.config.monitor.as_mut().map(|m| m.execute(&line)).unwrap_or_default();
                    let _ = write!(out, "\r\n{}{MONITOR_PROMPT}", answer.replace('\n', "\r\n"));
                }
                0x7f | 0x08 if self.monitor_line.pop().is_some() => {
                    let _ = out.write_all(b"\x08 \x08");
                }
                byte if byte.is_ascii_graphic() || byte == b' ' => {
                    self.monitor_line.push(byte);
                    let _ = out.write_all(&[byte]);
                }
                _ => {} // other control bytes mean nothing to a command line
            }
        }
        let _ = out.flush();
    }

    /// Adds stdin to the epoll set or takes it off, if it is pollable and not already so.
    fn watch_input(&mut self, watch: bool) {
        let Input::Pollable { watched } = self.input else {
            return;
        };
        if watched == watch {
            return;
        }
        // Off the set entirely: epoll reports a hung-up pipe even with no events asked for.
        let operation = if watch { ControlOperation::Add } else { ControlOperation::Delete };
        let result = self.epoll.ctl(operation, self.config.input, EpollEvent::new(EventSet::IN, INPUT));
        self.input = match result {
            Ok(()) => Input::Pollable { watched: watch },
            Err(e) => {
                eprintln!("[minivirt] console input stopped: epoll_ctl failed: {e}");
                Input::Closed
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    /// A UART with a settable amount of room that records what it received.
    #[derive(Default)]
    struct FakeUart {
        room: usize,
        received: Vec<u8>,
    }

    impl SerialInput for FakeUart {
        fn room(&self) -> usize {
            self.room
        }

        fn send(&mut self, bytes: &[u8]) -> usize {
            let sent = self.room.min(bytes.len());
            self.received.extend_from_slice(&bytes[..sent]);
            self.room -= sent;
            sent
        }
    }

    struct Harness {
        uart: Arc<Mutex<FakeUart>>,
        wakeup: EventFd,
        writer: Option<std::fs::File>,
        control: Arc<VmControl>,
        input_loop: InputLoop,
        _reader: OwnedFd,
    }

    /// A monitor that keeps the lines it is given.
    struct LineRecorder(Arc<Mutex<Vec<String>>>);

    impl ConsoleMonitor for LineRecorder {
        fn execute(&mut self, line: &str) -> String {
            self.0.lock().unwrap().push(line.to_string());
            String::new()
        }
    }

    fn start(room: usize, escapes: bool) -> Harness {
        start_with(room, escapes, None)
    }

    fn start_with(room: usize, escapes: bool, monitor: Option<Box<dyn ConsoleMonitor>>) -> Harness {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are new and owned only here.
        let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) };
        let uart = Arc::new(Mutex::new(FakeUart { room, received: Vec::new() }));
        let wakeup = EventFd::new(EFD_NONBLOCK).unwrap();
        let control = Arc::new(VmControl::new());
        let config = InputConfig {
            serial: uart.clone(),
            wakeup: wakeup.try_clone().unwrap(),
            input: reader.as_raw_fd(),
            escapes,
            signals: None,
            control: control.clone(),
            monitor,
        };
        let input_loop = InputLoop::start(config).unwrap();
        Harness { uart, wakeup, writer: Some(writer), control, input_loop, _reader: reader }
    }

    impl Harness {
        fn type_bytes(&mut self, bytes: &[u8]) {
            self.writer.as_mut().unwrap().write_all(bytes).unwrap();
        }

        fn received_eventually(&self, expected: &[u8]) -> Vec<u8> {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let received = self.uart.lock().unwrap().received.clone();
                if received == expected || Instant::now() > deadline {
                    return received;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    #[test]
    fn typed_bytes_reach_the_uart_in_order() {
        let mut harness = start(64, false);
        harness.type_bytes(b"hello\r");
        assert_eq!(harness.received_eventually(b"hello\r"), b"hello\r");
        harness.input_loop.stop();
    }

    #[test]
    fn input_waits_for_room_and_resumes_on_wakeup() {
        let mut harness = start(0, false);
        harness.type_bytes(b"0123456789");
        std::thread::sleep(Duration::from_millis(100));
        assert!(harness.uart.lock().unwrap().received.is_empty(), "no room: nothing may be sent");
        // The guest makes room for four bytes, then for the rest: each time the UART says so.
        harness.uart.lock().unwrap().room = 4;
        harness.wakeup.write(1).unwrap();
        assert_eq!(harness.received_eventually(b"0123"), b"0123");
        harness.uart.lock().unwrap().room = 64;
        harness.wakeup.write(1).unwrap();
        assert_eq!(harness.received_eventually(b"0123456789"), b"0123456789", "nothing lost, nothing twice");
        harness.input_loop.stop();
    }

    #[test]
    fn ctrl_a_c_sends_lines_to_the_monitor_until_ctrl_a_c_again() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut harness = start_with(64, true, Some(Box::new(LineRecorder(lines.clone()))));
        harness.type_bytes(b"ls\x01cinfo mtreX\x7fe\rxp /1gx 0\r\x01cpwd\r");
        assert_eq!(harness.received_eventually(b"lspwd\r"), b"lspwd\r", "only the console's bytes reach the guest");
        assert_eq!(*lines.lock().unwrap(), ["info mtree", "xp /1gx 0"], "the monitor gets edited lines");
        harness.input_loop.stop();
    }

    #[test]
    fn end_of_input_does_not_stop_the_vm() {
        let mut harness = start(64, false);
        harness.type_bytes(b"last line\n");
        harness.writer.take();
        assert_eq!(harness.received_eventually(b"last line\n"), b"last line\n");
        std::thread::sleep(Duration::from_millis(50));
        assert!(!harness.control.is_stopping());
        harness.input_loop.stop();
    }

    #[test]
    fn ctrl_a_x_stops_the_vm_only_on_a_terminal() {
        let mut terminal = start(64, true);
        terminal.type_bytes(b"ab\x01x");
        assert_eq!(terminal.received_eventually(b"ab"), b"ab");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !terminal.control.is_stopping() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(terminal.control.reason(), Some(StopReason::Quit));
        terminal.input_loop.stop();

        let mut pipe = start(64, false);
        pipe.type_bytes(b"ab\x01x");
        assert_eq!(pipe.received_eventually(b"ab\x01x"), b"ab\x01x", "a script's bytes pass as they are");
        assert!(!pipe.control.is_stopping());
        pipe.input_loop.stop();
    }
}
