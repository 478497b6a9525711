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
}

/// The baseline and the switches, in table order. The baseline already has minivirt's
/// `io_delay=none`, so the io_delay row puts the kernel's default back to show its cost.
pub const EXPERIMENTS: &[Experiment] = &[
    Experiment { name: "baseline", append: "", what: "minivirt's defaults (console=ttyS0, io_delay=none, the host workarounds)" },
    Experiment {
        name: "quiet",
        append: "quiet",
        what: "no kernel messages on the console: each byte to the 16550's data register is one port-I/O exit",
    },
    Experiment {
        name: "io-delay-0x80",
        append: "io_delay=0x80",
        what: "the kernel's default I/O delay: an `out` to port 0x80 after slow port accesses (PIT, PIC), one more exit each",
    },
    Experiment {
        name: "nohz-off",
        append: "nohz=off",
        what: "a periodic 100 Hz tick even when idle (the lab kernel has NO_HZ_IDLE): timer exits handled in KVM, not the VMM",
    },
    Experiment {
        name: "pci-off",
        append: "pci=off",
        what: "no PCI: removes the PCI IRQ routing table scan of 0xf0000-0xfffff (MMIO reads) and config-space probing, and the edu device with them",
    },
    Experiment { name: "combined", append: "quiet pci=off", what: "the switches that cut exits, together" },
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
