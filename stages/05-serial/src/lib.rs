//! Stage 5: a 16550A UART with interrupts (the device model; the event loop and the stage
//! binary are still to come).
#![deny(missing_docs)]

pub mod devices;
