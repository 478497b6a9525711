//! Stage 5: a 16550A UART with interrupts, and an epoll event loop feeding it stdin.
//!
//! Stage 4's console could only talk. Here the guest gets a full UART ([`devices::serial`]),
//! and the VMM gets an input path: [`event_loop`] waits on epoll for stdin and moves what the
//! user types into the UART's FIFO, which interrupts the guest. Around it: [`terminal`] (raw
//! mode, restored on every exit), [`escape`] (Ctrl-A x), [`signals`] (SIGINT/SIGTERM as
//! events), and [`console`], which wires them to a [`stage04::machine::Machine`]; [`demo`] drives the UART
//! alone through a scripted register sequence (`stage05 --demo uart`).
#![deny(missing_docs)]

pub mod console;
pub mod demo;
pub mod devices;
pub mod escape;
pub mod event_loop;
pub mod signals;
pub mod terminal;
