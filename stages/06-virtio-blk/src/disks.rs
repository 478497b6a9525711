//! Putting virtio-blk disks into a machine: one virtio-mmio window, one interrupt and one
//! ioeventfd per `--disk`, and the kernel command-line option that tells Linux where each is
//! (the windows are in [`crate::layout`]).
//!
//! Linux probes `virtio_mmio.device=` devices in command-line order, so the first `--disk` is
//! `vda`. The GSIs are ISA interrupts nothing else uses here; the MP table declares them all.

use crate::io_thread::{Handler, IoThread};
use crate::layout::{DISK_GSIS, VIRTIO_MMIO_BASE};
use crate::virtio::block::{open_disk, VirtioBlock, VirtioBlockError};
use crate::virtio::mmio::{MmioError, MmioTransport, MMIO_WINDOW_SIZE, QUEUE_NOTIFY_OFFSET};
use kvm_ioctls::IoEventAddress;
use stage02::bus::BusError;
use stage04::irq::{register_irqfd, EventFdTrigger, IrqError};
use stage04::machine::Machine;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
/// The names the guest gives them, which also name them on the MMIO bus.
pub const DISK_NAMES: [&str; 8] = ["vda", "vdb", "vdc", "vdd", "vde", "vdf", "vdg", "vdh"];

/// The `--disk` flags, flattened into the arguments of stage 6 and later.
#[derive(Debug, clap::Args)]
pub struct DiskArgs {
    /// A raw disk image for the guest (vda, vdb, ... in order); ",ro" makes it read-only.
    #[arg(long = "disk", value_name = "PATH[,ro]")]
    pub disks: Vec<DiskArg>,
}

/// One `--disk PATH[,ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskArg {
    /// The raw image.
    pub path: PathBuf,
    /// Whether the guest may only read it.
    pub read_only: bool,
}

impl std::str::FromStr for DiskArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (path, read_only) = match text.rsplit_once(',') {
            Some((path, "ro")) => (path, true),
            Some((path, "rw")) => (path, false),
            Some((_, option)) => return Err(format!("unknown disk option {option:?} (PATH[,ro])")),
            None => (text, false),
        };
        if path.is_empty() {
            return Err("the disk path is empty (PATH[,ro])".into());
        }
        Ok(DiskArg { path: PathBuf::from(path), read_only })
    }
}

/// The register window of disk `index`.
pub fn window_base(index: usize) -> u64 {
    VIRTIO_MMIO_BASE + index as u64 * MMIO_WINDOW_SIZE
}

/// The kernel command-line option that declares disk `index` (virtio-mmio's
/// `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` syntax: size@base:irq).
pub fn disk_cmdline(index: usize) -> String {
    format!("virtio_mmio.device=4K@{:#x}:{}", window_base(index), DISK_GSIS[index])
}

/// Why the disks could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum DisksError {
    /// More `--disk`s than interrupts set aside for them.
    #[error("at most {max} disks, not {count}")]
    TooMany {
        /// How many were given.
        count: usize,
        /// How many fit.
        max: usize,
    },
    /// An image could not be opened.
    #[error(transparent)]
    Image(#[from] VirtioBlockError),
    /// The transport could not be set up.
    #[error(transparent)]
    Transport(#[from] MmioError),
    /// An interrupt could not be wired.
    #[error(transparent)]
    Irq(#[from] IrqError),
    /// A register window is taken.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The notification eventfd could not be made.
    #[error("cannot create an eventfd: {0}")]
    EventFd(#[source] io::Error),
    /// The I/O thread could not start.
    #[error("cannot start the virtio I/O thread: {0}")]
    IoThread(#[source] io::Error),
}

/// The disks of a machine; dropping it stops their I/O thread.
pub struct Disks {
    io_thread: Option<IoThread>,
    /// How many disks take their notifications through an ioeventfd (the others exit to the
    /// vCPU thread).
    pub with_ioeventfd: usize,
}

impl Drop for Disks {
    fn drop(&mut self) {
        if let Some(thread) = self.io_thread.take() {
            thread.stop();
        }
    }
}

/// Opens every disk (so that a bad path fails before the guest starts), puts each on the
/// machine's MMIO bus with its interrupt and queue notification wired to KVM, and declares
/// it on the kernel command line. Keep the [`Disks`] alive while the VM runs.
pub fn attach_disks(machine: &mut Machine, disks: &[DiskArg]) -> Result<Disks, DisksError> {
    if disks.len() > DISK_GSIS.len() {
        return Err(DisksError::TooMany { count: disks.len(), max: DISK_GSIS.len() });
    }
    let images = disks.iter().map(|disk| open_disk(&disk.path, disk.read_only)).collect::<Result<Vec<_>, _>>()?;
    let mut sources: Vec<(EventFd, Handler)> = Vec::new();
    for (index, image) in images.into_iter().enumerate() {
        let base = window_base(index);
        let interrupt: EventFdTrigger = register_irqfd(&machine.vm.fd, DISK_GSIS[index])?;
        let transport = MmioTransport::new(VirtioBlock::new(image), Arc::clone(&machine.vm.memory), interrupt)?;
        let transport = Arc::new(Mutex::new(transport));
        machine.vm.buses.mmio.insert(DISK_NAMES[index], base, MMIO_WINDOW_SIZE, transport.clone())?;
        machine.add_cmdline(disk_cmdline(index));

        // qa:begin stage6-ioeventfd
        // Queue 0's notification through an ioeventfd, if KVM takes it.
        let notify = EventFd::new(EFD_NONBLOCK).map_err(DisksError::EventFd)?;
        let address = IoEventAddress::Mmio(base + QUEUE_NOTIFY_OFFSET);
        if machine.vm.fd.register_ioevent(&notify, &address, 0u32).is_ok() {
            let handler: Handler =
                Box::new(move || transport.lock().unwrap_or_else(|e| e.into_inner()).handle_notify(0));
            sources.push((notify, handler));
        }
        // qa:end stage6-ioeventfd
    }
    let with_ioeventfd = sources.len();
    let io_thread =
        if sources.is_empty() { None } else { Some(IoThread::start(sources).map_err(DisksError::IoThread)?) };
    Ok(Disks { io_thread, with_ioeventfd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_arguments() {
        let parse = |text: &str| text.parse::<DiskArg>();
        assert_eq!(parse("a.img"), Ok(DiskArg { path: "a.img".into(), read_only: false }));
        assert_eq!(parse("/x/a.img,ro"), Ok(DiskArg { path: "/x/a.img".into(), read_only: true }));
        assert_eq!(parse("a,b.img,rw"), Ok(DiskArg { path: "a,b.img".into(), read_only: false }));
        assert!(parse("a.img,readonly").unwrap_err().contains("readonly"));
        assert!(parse(",ro").is_err());
    }

    #[test]
    fn command_line_declares_each_window_and_interrupt() {
        assert_eq!(disk_cmdline(0), "virtio_mmio.device=4K@0xd0000000:5");
        assert_eq!(disk_cmdline(1), "virtio_mmio.device=4K@0xd0001000:6");
    }
}
