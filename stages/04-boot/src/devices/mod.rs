//! The legacy devices a booting Linux looks for, each as small as it can be.

pub mod cmos;
pub mod console;
pub mod i8042;
