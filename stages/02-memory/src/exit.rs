//! Turning a vCPU exit into a device access: the only thing the vCPU loop does with I/O.
//!
//! [`handle_exit`] is a free function of the exit so that tests can feed it made-up exits.

use crate::bus::BusHit;
use crate::vm::Buses;
use kvm_ioctls::VcpuExit;

/// One port or MMIO access the guest made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The port number or guest-physical address.
    pub addr: u64,
    /// Whether the guest wrote (`out`, store) or read (`in`, load).
    pub is_write: bool,
    /// The bytes written, or the bytes the guest got back.
    pub data: Vec<u8>,
    /// The device that answered, or `None` if nothing is there.
    pub hit: Option<BusHit>,
}

impl Access {
    /// The data as a little-endian number, for printing.
    pub fn value(&self) -> u64 {
        self.data.iter().rev().fold(0, |acc, &b| acc << 8 | u64::from(b))
    }
}

/// What an exit turned out to be.
#[derive(Debug)]
pub enum ExitOutcome {
    /// A port access, dispatched on the port-I/O bus.
    Io(Access),
    /// An MMIO access, dispatched on the MMIO bus.
    Mmio(Access),
    /// The guest executed `hlt` (and no in-kernel irqchip handled it).
    Halted,
    /// Anything else: the caller decides (stage 3 handles more exits).
    Other(String),
}

// qa:begin stage2-handle-exit
/// Dispatches I/O exits to the buses. Reads from an address no device covers return all
/// ones, as an empty ISA or PCI bus does; writes there are dropped.
pub fn handle_exit(exit: VcpuExit<'_>, buses: &Buses) -> ExitOutcome {
    match exit {
        VcpuExit::IoIn(port, data) => {
            let hit = buses.pio.read(u64::from(port), data);
            ExitOutcome::Io(read_access(u64::from(port), data, hit))
        }
        VcpuExit::IoOut(port, data) => {
            let hit = buses.pio.write(u64::from(port), data);
            ExitOutcome::Io(Access { addr: u64::from(port), is_write: true, data: data.to_vec(), hit })
        }
        VcpuExit::MmioRead(addr, data) => {
            let hit = buses.mmio.read(addr, data);
            ExitOutcome::Mmio(read_access(addr, data, hit))
        }
        VcpuExit::MmioWrite(addr, data) => {
            let hit = buses.mmio.write(addr, data);
            ExitOutcome::Mmio(Access { addr, is_write: true, data: data.to_vec(), hit })
        }
        VcpuExit::Hlt => ExitOutcome::Halted,
        other => ExitOutcome::Other(format!("{other:?}")),
    }
}
// qa:end stage2-handle-exit

fn read_access(addr: u64, data: &mut [u8], hit: Option<BusHit>) -> Access {
    if hit.is_none() {
        data.fill(0xff);
    }
    Access { addr, is_write: false, data: data.to_vec(), hit }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::demo::{DemoDevice, DEMO_ID};
    use std::sync::{Arc, Mutex};

    #[test]
    fn mmio_reads_reach_the_device_and_empty_space_reads_all_ones() {
        let buses = Buses::default();
        buses.mmio.insert("demo", 0xa0000, 0x10, Arc::new(Mutex::new(DemoDevice::default()))).unwrap();
        let mut data = [0u8; 4];
        match handle_exit(VcpuExit::MmioRead(0xa0000, &mut data), &buses) {
            ExitOutcome::Mmio(access) => {
                assert_eq!(access.value(), u64::from(DEMO_ID));
                assert_eq!(access.hit, Some(BusHit { name: "demo", offset: 0 }));
            }
            other => panic!("{other:?}"),
        }
        let mut data = [0u8; 2];
        assert!(matches!(
            handle_exit(VcpuExit::IoIn(0x60, &mut data), &buses),
            ExitOutcome::Io(Access { hit: None, .. })
        ));
        assert_eq!(data, [0xff, 0xff]);
    }

    #[test]
    fn halt_is_reported() {
        assert!(matches!(handle_exit(VcpuExit::Hlt, &Buses::default()), ExitOutcome::Halted));
    }
}
