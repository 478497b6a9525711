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
    /// Take queue notifications as MMIO exits on the vCPU thread instead of through an
    /// ioeventfd (to measure what the ioeventfd saves: `bench exits`).
    #[arg(long)]
    pub no_ioeventfd: bool,
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
///
/// With `--no-ioeventfd` no notification goes through KVM: the guest's `QueueNotify` write
/// exits to the vCPU thread, which serves the queue there (`MmioTransport`'s `BusDevice::write`).
pub fn attach_disks(machine: &mut Machine, args: &DiskArgs) -> Result<Disks, DisksError> {
    let disks = &args.disks;
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
        // Queue 0's notification through an ioeventfd, if KVM takes it (and it is wanted).
        let notify = EventFd::new(EFD_NONBLOCK).map_err(DisksError::EventFd)?;
        let address = IoEventAddress::Mmio(base + QUEUE_NOTIFY_OFFSET);
        if !args.no_ioeventfd && machine.vm.fd.register_ioevent(&notify, &address, 0u32).is_ok() {
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
    use crate::virtio::block::{VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN};
    use crate::virtio::mmio::VIRTIO_F_VERSION_1;
    use crate::virtio::test_utils::{driver_ok, negotiate, setup_queue, write32, DriverQueue};
    use clap::Parser;
    use stage02::bus::{Bus, BusDevice};
    use stage02::memory::GuestAddress;
    use stage04::machine::BootArgs;

    /// The flags of a stage 6 command line, as `stage06` parses them.
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        disks: DiskArgs,
        #[command(flatten)]
        boot: BootArgs,
    }

    /// Disk 0's register window on the machine's MMIO bus, as the vCPU thread reaches it on
    /// an MMIO exit.
    struct Window<'a>(&'a Bus);

    impl BusDevice for Window<'_> {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            self.0.read(window_base(0) + offset, data).expect("disk 0 is on the bus");
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.write(window_base(0) + offset, data).expect("disk 0 is on the bus");
        }
    }

    /// A machine (not booted: the kernel is any file) with `image` as disk 0.
    fn machine_with_disk(image: &std::path::Path, extra: &[&str]) -> (Machine, Disks) {
        checkpoints::require_kvm();
        let kernel = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let mut argv = vec!["stage06", "--kernel", kernel, "--initrd", "none", "--mem", "16M", "--disk"];
        argv.push(image.to_str().unwrap());
        argv.extend(extra);
        let args = Args::parse_from(argv);
        let mut machine = Machine::new("stage06", &args.boot).unwrap();
        let disks = attach_disks(&mut machine, &args.disks).unwrap();
        (machine, disks)
    }

    #[test]
    fn without_ioeventfd_a_notify_exit_completes_the_request() {
        let image = std::env::temp_dir().join(format!("minivirt-disks-{}.img", std::process::id()));
        let sectors: Vec<u8> = (0..8u8).flat_map(|n| [n; 512]).collect();
        std::fs::write(&image, &sectors).unwrap();
        let (with, disks) = machine_with_disk(&image, &[]);
        assert_eq!(disks.with_ioeventfd, 1, "KVM takes the ioeventfd by default (KVM_CAP_IOEVENTFD)");
        drop((disks, with));
        let (machine, disks) = machine_with_disk(&image, &["--no-ioeventfd"]);
        assert_eq!(disks.with_ioeventfd, 0, "--no-ioeventfd registers none");

        // The guest driver's side, through the bus as MMIO exits would reach it.
        let (bus, mem) = (&machine.vm.buses.mmio, &machine.vm.memory);
        let mut window = Window(bus);
        negotiate(&mut window, 1 << VIRTIO_F_VERSION_1);
        let mut driver = DriverQueue::at(0x1_0000, 16);
        assert_eq!(setup_queue(&mut window, 0, 16, driver.desc_table, driver.avail_ring, driver.used_ring), 1);
        driver_ok(&mut window);
        // Read sector 3: header, a 512-byte buffer, the status byte.
        let (header, data, status) = (0x2_0000, 0x3_0000, 0x2_0100);
        mem.write_obj(GuestAddress(header), VIRTIO_BLK_T_IN).unwrap();
        mem.write_obj(GuestAddress(header + 8), 3u64).unwrap();
        mem.write_obj(GuestAddress(status), 0xffu8).unwrap();
        let head = driver.add_chain(mem, 0, &[(header, 16, false), (data, 512, true), (status, 1, true)]).unwrap();
        driver.publish(mem, head).unwrap();
        write32(&mut window, QUEUE_NOTIFY_OFFSET, 0);

        // Served on this thread before the write returned: no I/O thread is involved.
        assert_eq!(driver.used_idx(mem).unwrap(), 1);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(status)).unwrap(), VIRTIO_BLK_S_OK);
        let mut read = [0u8; 512];
        mem.read(GuestAddress(data), &mut read).unwrap();
        assert_eq!(read, [3u8; 512]);
        drop((disks, machine));
        std::fs::remove_file(image).unwrap();
    }

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
