//! The exit-reduction experiments of the course's paper, as switches on the guest's command
//! line. Each is booted and compared with the baseline: exits per boot (by reason) and time to
//! boot-complete.
//!
//! Most of a default boot's exits that reach minivirt come from one place: `pcibios_irq_init`
//! looks for a PCI IRQ routing table (`$PIR`, then `$IRT` byte by byte) in 0xf0000–0xfffff,
//! which is not RAM in minivirt, so every read is an MMIO exit. Linux 6.1 has no `pci=` option
//! that skips only that scan (`pirqaddr=` is tried first, but the scan still follows when no
//! table is there); `pci=off` removes it with all of PCI, so it measures what the scan and PCI
//! probing cost, not a fix: the fix is in the VMM (back that range with memory, as a BIOS area).
//!
//! Two more experiments change the VMM instead of the kernel: `disk-ioeventfd` and
//! `disk-no-ioeventfd` boot with a scratch disk and read it in the guest, with queue
//! notifications through KVM's ioeventfd or as user-space MMIO exits (stage 6's
//! `--no-ioeventfd`).
//!
//! # Resources
//! - Linux's command-line options: Documentation/admin-guide/kernel-parameters.txt
//!   (`quiet`, `io_delay=`, `nohz=`, `pci=`), <https://docs.kernel.org/admin-guide/kernel-parameters.html>.
//! - The scan: arch/x86/pci/irq.c `pirq_find_routing_table` (6.1).

/// One switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Experiment {
    /// Its name in the table and on the command line (`--only quiet,nohz-off`).
    pub name: &'static str,
    /// The kernel options it adds (empty for the baseline).
    pub append: &'static str,
    /// What it changes, and what to expect.
    pub what: &'static str,
    /// VMM flags it adds (`--no-ioeventfd`).
    pub flags: &'static [&'static str],
    /// Whether it boots with a scratch disk and runs [`DISK_RUN`] in the guest instead of
    /// the `minivirt_run` of `--append`.
    pub disk: bool,
}

/// What the disk experiments run in the guest: 4096 reads of 4 KiB from the scratch disk,
/// each its own virtio request (O_DIRECT: no page cache, no readahead), so each is one
/// `QueueNotify` write.
pub const DISK_RUN: &str = "dd if=/dev/vda of=/dev/null bs=4096 count=4096 iflag=direct";

/// The baseline and the switches, in table order. The baseline already has minivirt's
/// `io_delay=none`, so the io_delay row puts the kernel's default back to show its cost.
pub const EXPERIMENTS: &[Experiment] = &[
    Experiment { name: "baseline", append: "", what: "minivirt's defaults (console=ttyS0, io_delay=none, the host workarounds)", flags: &[], disk: false },
    Experiment {
        name: "quiet",
        append: "quiet",
        what: "no kernel messages on the console: each byte to the 16550's data register is one port-I/O exit",
        flags: &[],
        disk: false,
    },
    Experiment {
        name: "io-delay-0x80",
        append: "io_delay=0x80",
        what: "the kernel's default I/O delay: an `out` to port 0x80 after slow port accesses (PIT, PIC), one more exit each",
        flags: &[],
        disk: false,
    },
    Experiment {
        name: "nohz-off",
        append: "nohz=off",
        what: "a periodic 100 Hz tick even when idle (the lab kernel has NO_HZ_IDLE): timer exits handled in KVM, not the VMM",
        flags: &[],
        disk: false,
    },
    Experiment {
        name: "pci-off",
        append: "pci=off",
        what: "no PCI: removes the PCI IRQ routing table scan of 0xf0000-0xfffff (MMIO reads) and config-space probing, and the edu device with them",
        flags: &[],
        disk: false,
    },
    Experiment {
        name: "combined",
        append: "quiet pci=off",
        what: "the switches that cut exits, together",
        flags: &[],
        disk: false,
    },
    Experiment {
        name: "disk-ioeventfd",
        append: "",
        what: "a scratch disk as /dev/vda, read with 4096 direct 4 KiB reads (dd): each request's QueueNotify write is matched by KVM's ioeventfd, which wakes the I/O thread without an exit to the VMM (compare with disk-no-ioeventfd, not with the baseline)",
        flags: &[],
        disk: true,
    },
    Experiment {
        name: "disk-no-ioeventfd",
        append: "",
        what: "the same disk reads with --no-ioeventfd: each QueueNotify write is an MMIO exit to the vCPU thread, which serves the request itself (expect about 4096 more mmio_write exits)",
        flags: &["--no-ioeventfd"],
        disk: true,
    },
];

/// The experiments named in `only` (comma-separated), the baseline always first; all if empty.
///
/// # Errors
/// A name that is not an experiment, with the list of names.
pub fn select(only: &str) -> Result<Vec<Experiment>, String> {
    if only.trim().is_empty() {
        return Ok(EXPERIMENTS.to_vec());
    }
    let mut chosen = vec![EXPERIMENTS[0]];
    for name in only.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let experiment = EXPERIMENTS.iter().find(|e| e.name == name).ok_or_else(|| {
            let names: Vec<&str> = EXPERIMENTS.iter().map(|e| e.name).collect();
            format!("no experiment named {name:?}; the experiments are {}", names.join(", "))
        })?;
        if !chosen.contains(experiment) {
            chosen.push(*experiment);
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_comes_first_and_names_are_checked() {
        let chosen = select("quiet, pci-off,quiet").unwrap();
        assert_eq!(chosen.iter().map(|e| e.name).collect::<Vec<_>>(), ["baseline", "quiet", "pci-off"]);
        assert_eq!(select("").unwrap().len(), EXPERIMENTS.len());
        assert!(select("turbo")
            .unwrap_err()
            .starts_with("no experiment named \"turbo\"; the experiments are baseline, quiet"));
    }
}
