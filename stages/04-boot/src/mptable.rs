//! The Intel MultiProcessor (MP) table: how a guest without ACPI finds its CPUs and interrupts.
//!
//! Linux (`CONFIG_X86_MPPARSE`) looks for a 16-byte *floating pointer* with the signature
//! `_MP_` on a 16-byte boundary in the first KiB of RAM, the last KiB of conventional memory
//! (639 KiB–640 KiB), the BIOS area 0xF0000–0xFFFFF and the EBDA. We put it at
//! [`MPTABLE_START`], the start of that last KiB, and the *configuration table* (`PCMP`) right
//! after it. The configuration table is a header followed by entries, in the spec's order:
//! one processor per vCPU, the buses (PCI 0, ISA 1), the IO-APIC, the I/O interrupt
//! assignments (which bus interrupt drives which IO-APIC pin) and the local interrupts.
//!
//! The VMM must keep its side of the table true:
//! - reserve `[MPTABLE_START, MPTABLE_START + mptable_size(n))` in the E820 map (stage 4
//!   reserves the whole last KiB), so the guest does not use the table as RAM;
//! - create the in-kernel irqchip (`KVM_CREATE_IRQCHIP`), which puts the IO-APIC at
//!   [`IOAPIC_ADDRESS`] and the local APICs at [`APIC_DEFAULT_ADDRESS`], and give vCPU `i`
//!   APIC id `i` (KVM's default: the vCPU id);
//! - raise ISA IRQ `n` on GSI `n` and PCI interrupts on GSI [`pci_irq_pin`]: KVM's default
//!   GSI routing wires GSI `n` to IO-APIC pin `n`, so GSIs and pins are the same numbers.
//!
//! Everything fits in the last KiB below 640 KiB, which bounds the vCPU count: see
//! [`MAX_CPUS`].
//!
//! # Resources
//! - Intel MultiProcessor Specification 1.4, chapter 4 "MP Configuration Table":
//!   <https://pdos.csail.mit.edu/6.828/2018/readings/ia32/MPspec.pdf>.
//! - Linux `arch/x86/kernel/mpparse.c` (`smp_scan_config`, `smp_check_mpc`, `MP_bus_info`)
//!   and `arch/x86/kernel/apic/io_apic.c` (`IO_APIC_get_PCI_irq_vector`, `check_timer`):
//!   <https://elixir.bootlin.com/linux/v6.1/source/arch/x86/kernel/mpparse.c>.
//! - KVM's default GSI routing, `default_routing` in Linux `arch/x86/kvm/irq_comm.c`.
//! - Firecracker `src/vmm/src/arch/x86_64/mptable.rs`; SeaBIOS `src/fw/mptable.c`.

use crate::layout::{APIC_START, IOAPIC_START, LOW_RAM_END};
use stage02::memory::{GuestAddress, GuestMemory, MemoryError};

pub use crate::layout::MPTABLE_START;
/// End of conventional memory (640 KiB): the whole table must lie below it.
pub const MPTABLE_END: u64 = LOW_RAM_END;
/// The IO-APIC's address as the table's 32-bit field holds it.
pub const IOAPIC_ADDRESS: u32 = IOAPIC_START as u32;
/// The local APICs' address as the table's 32-bit field holds it.
pub const APIC_DEFAULT_ADDRESS: u32 = APIC_START as u32;

/// Floating pointer: signature.
const MPF_SIGNATURE: [u8; 4] = *b"_MP_";
/// Floating pointer: size in bytes.
const MPF_SIZE: usize = 16;
/// Floating pointer: "LENGTH" field, the size in 16-byte paragraphs.
const MPF_LENGTH_PARAGRAPHS: u8 = 1;
/// "SPEC_REV" of both structures: 4 means MP spec 1.4.
const SPEC_REVISION: u8 = 4;
/// Configuration table: signature.
const MPC_SIGNATURE: [u8; 4] = *b"PCMP";
/// Configuration table: size of the header in bytes.
const MPC_HEADER_SIZE: usize = 44;
/// Configuration table: "OEM ID", 8 characters padded with spaces.
const MPC_OEM_ID: [u8; 8] = *b"MINIVIRT";
/// Configuration table: "PRODUCT ID", 12 characters padded with spaces.
const MPC_PRODUCT_ID: [u8; 12] = *b"LAB         ";
/// Where the configuration table starts: right after the floating pointer.
const MPC_START: u64 = MPTABLE_START + MPF_SIZE as u64;

/// Entry type 0: a processor. Entries of this type are 20 bytes, all others 8.
const ENTRY_PROCESSOR: u8 = 0;
/// Entry type 1: a bus.
const ENTRY_BUS: u8 = 1;
/// Entry type 2: an IO-APIC.
const ENTRY_IOAPIC: u8 = 2;
/// Entry type 3: an I/O interrupt assignment (bus interrupt → IO-APIC pin).
const ENTRY_IO_INTERRUPT: u8 = 3;
/// Entry type 4: a local interrupt assignment (→ a local APIC's LINTIN pin).
const ENTRY_LOCAL_INTERRUPT: u8 = 4;
/// Size of a processor entry.
const PROCESSOR_ENTRY_SIZE: usize = 20;
/// Size of every other entry.
const ENTRY_SIZE: usize = 8;

/// Processor "CPU FLAGS" bit 0, EN: the processor is usable.
const CPU_ENABLED: u8 = 1 << 0;
/// Processor "CPU FLAGS" bit 1, BP: the bootstrap processor.
const CPU_BOOTSTRAP: u8 = 1 << 1;
/// Processor "LOCAL APIC VERSION": an integrated APIC, as KVM's reports.
const LAPIC_VERSION: u8 = 0x14;
/// Processor "CPU SIGNATURE" (CPUID.1:EAX): family 6, as Firecracker writes.
const CPU_SIGNATURE: u32 = 0x600;
/// Processor "FEATURE FLAGS" (CPUID.1:EDX) bit 0: on-chip FPU.
const CPU_FEATURE_FPU: u32 = 1 << 0;
/// Processor "FEATURE FLAGS" (CPUID.1:EDX) bit 9: on-chip APIC.
const CPU_FEATURE_APIC: u32 = 1 << 9;

/// Bus id of the PCI bus; it must equal the PCI bus number, which Linux looks up.
pub const PCI_BUS_ID: u8 = 0;
/// Bus id of the ISA bus.
pub const ISA_BUS_ID: u8 = 1;
/// Bus "BUS TYPE STRING" for PCI (six characters, padded with spaces).
const BUS_TYPE_PCI: [u8; 6] = *b"PCI   ";
/// Bus "BUS TYPE STRING" for ISA.
const BUS_TYPE_ISA: [u8; 6] = *b"ISA   ";

/// IO-APIC "I/O APIC VERSION", as KVM's in-kernel IO-APIC reports.
const IOAPIC_VERSION: u8 = 0x11;
/// IO-APIC "I/O APIC FLAGS" bit 0, EN: usable.
const IOAPIC_ENABLED: u8 = 1;

/// Interrupt "INTERRUPT TYPE" 0, INT: a vectored interrupt, programmed in the IO-APIC.
const INTERRUPT_INT: u8 = 0;
/// Interrupt "INTERRUPT TYPE" 1: NMI.
const INTERRUPT_NMI: u8 = 1;
/// Interrupt "INTERRUPT TYPE" 3, ExtINT: the vector comes from the 8259 PIC.
const INTERRUPT_EXTINT: u8 = 3;
/// Interrupt "FLAGS" 0: polarity and trigger mode conform to the bus (ISA: edge, high).
const FLAGS_CONFORMING: u16 = 0;
/// Interrupt "FLAGS" bits 0-1 = 3: active low. (KVM's IO-APIC ignores polarity.)
const FLAGS_ACTIVE_LOW: u16 = 0b11;
/// Interrupt "FLAGS" bits 2-3 = 3: level-triggered.
const FLAGS_LEVEL: u16 = 0b11 << 2;
/// "DESTINATION LOCAL APIC ID" 0xFF: all local APICs.
const ALL_LOCAL_APICS: u8 = 0xff;
/// Local APIC pin LINTIN0, which the PIC drives (virtual wire mode).
const LINT0: u8 = 0;
/// Local APIC pin LINTIN1, wired to NMI.
const LINT1: u8 = 1;

/// Number of ISA IRQs (two cascaded 8259s).
const ISA_IRQS: u8 = 16;
/// The IO-APIC pin of ISA IRQ 0, the PIT. KVM's default routing (stage 4 installs no other)
/// sends GSI 0 to pin 0, as Firecracker's table says. QEMU and SeaBIOS say pin 2, "as on real
/// PCs", but QEMU also installs that routing with `KVM_SET_GSI_ROUTING`. A table that
/// disagrees with the routing makes Linux print "8254 timer not connected to IO-APIC" and
/// fall back to the PIC. Change both together.
pub const PIT_IOAPIC_PIN: u8 = 0;
/// First PCI device (slot) on bus 0 whose interrupts the table routes (0 is the host bridge).
const PCI_FIRST_DEVICE: u8 = 1;
/// Last PCI device on bus 0 whose interrupts the table routes. Each device costs 32 bytes
/// (four pins), or 1.6 vCPUs: four devices leave room for [`MAX_CPUS`] vCPUs.
const PCI_LAST_DEVICE: u8 = 4;
/// PCI devices (slots) on bus 0 whose INTA#..INTD# the table routes.
pub const PCI_DEVICES: std::ops::RangeInclusive<u8> = PCI_FIRST_DEVICE..=PCI_LAST_DEVICE;
/// Number of PCI devices the table routes.
const PCI_DEVICE_COUNT: usize = (PCI_LAST_DEVICE - PCI_FIRST_DEVICE + 1) as usize;
/// Number of interrupt pins per PCI device, INTA#..INTD#.
const PCI_PINS: u8 = 4;
/// First IO-APIC pin for PCI: pins 16..=19 are free of ISA interrupts.
const PCI_IOAPIC_FIRST_PIN: u8 = 16;

/// The IO-APIC pin of ISA `irq`, or `None` when it has none (IRQ 2 when the PIT is moved there:
/// IRQ 2 is the PIC cascade, which no device uses).
pub const fn isa_irq_pin(irq: u8) -> Option<u8> {
    if irq == 0 {
        Some(PIT_IOAPIC_PIN)
    } else if irq >= ISA_IRQS || irq == PIT_IOAPIC_PIN {
        None
    } else {
        Some(irq)
    }
}

/// The IO-APIC pin (and GSI) of PCI bus 0 device `device`, interrupt pin `pin` (0 = INTA#, as
/// in the MP table; the config-space Interrupt Pin register says 1 for INTA#). The usual
/// swizzle `16 + (device + pin) % 4` spreads devices' INTA# over pins 16..=19. `None` for a
/// device outside [`PCI_DEVICES`] or a pin above INTD#: the table has no entry for those, and
/// Linux would find no interrupt.
pub fn pci_irq_pin(device: u8, pin: u8) -> Option<u8> {
    (PCI_DEVICES.contains(&device) && pin < PCI_PINS).then(|| PCI_IOAPIC_FIRST_PIN + (device + pin) % PCI_PINS)
}

/// Number of ISA I/O interrupt entries.
const fn isa_entry_count() -> usize {
    let mut count = 0;
    let mut irq = 0;
    while irq < ISA_IRQS {
        if isa_irq_pin(irq).is_some() {
            count += 1;
        }
        irq += 1;
    }
    count
}

/// Bytes of everything but the processor entries: floating pointer, header, two buses, the
/// IO-APIC, ISA and PCI interrupts, and two local interrupts.
const FIXED_SIZE: usize =
    MPF_SIZE + MPC_HEADER_SIZE + ENTRY_SIZE * (2 + 1 + isa_entry_count() + PCI_DEVICE_COUNT * PCI_PINS as usize + 2);

/// The most vCPUs whose table fits in `[MPTABLE_START, MPTABLE_END)`: 33. (The spec's own limit
/// is 254, as APIC id 0xFF means "all"; past 33 the table would have to move, e.g. to 0xF0000.)
pub const MAX_CPUS: u8 = (((MPTABLE_END - MPTABLE_START) as usize - FIXED_SIZE) / PROCESSOR_ENTRY_SIZE) as u8;

/// Bytes the table for `num_cpus` vCPUs occupies from [`MPTABLE_START`].
pub fn mptable_size(num_cpus: u8) -> u64 {
    (FIXED_SIZE + PROCESSOR_ENTRY_SIZE * usize::from(num_cpus)) as u64
}

/// Errors from writing the MP table.
#[derive(Debug, thiserror::Error)]
pub enum MptableError {
    /// A machine needs at least one vCPU.
    #[error("an MP table needs at least one vCPU")]
    NoCpus,
    /// The table would not fit below 640 KiB.
    #[error("{0} vCPUs do not fit in the MP table below 640 KiB (at most {MAX_CPUS})")]
    TooManyCpus(u8),
    /// The floating pointer is not in guest RAM.
    #[error("cannot write the MP floating pointer: {0}")]
    WriteFloatingPointer(#[source] MemoryError),
    /// The configuration table is not in guest RAM.
    #[error("cannot write the MP configuration table: {0}")]
    WriteConfigTable(#[source] MemoryError),
}

// qa:begin stage4-mptable-checksum
/// The byte that makes `bytes` (whose checksum byte is still 0) sum to 0 mod 256.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)))
}
// qa:end stage4-mptable-checksum

/// A processor entry for the vCPU with APIC id `apic_id`.
fn processor_entry(apic_id: u8) -> [u8; PROCESSOR_ENTRY_SIZE] {
    let flags = if apic_id == 0 { CPU_ENABLED | CPU_BOOTSTRAP } else { CPU_ENABLED };
    let mut entry = [0; PROCESSOR_ENTRY_SIZE];
    entry[..4].copy_from_slice(&[ENTRY_PROCESSOR, apic_id, LAPIC_VERSION, flags]);
    entry[4..8].copy_from_slice(&CPU_SIGNATURE.to_le_bytes());
    entry[8..12].copy_from_slice(&(CPU_FEATURE_FPU | CPU_FEATURE_APIC).to_le_bytes());
    entry // bytes 12..20 are reserved
}

/// A bus entry.
fn bus_entry(id: u8, bus_type: [u8; 6]) -> [u8; ENTRY_SIZE] {
    let [a, b, c, d, e, f] = bus_type;
    [ENTRY_BUS, id, a, b, c, d, e, f]
}

/// An I/O interrupt entry (type INT): bus interrupt `(bus id, bus IRQ)` drives `(IO-APIC id, pin)`.
fn io_interrupt_entry(flags: u16, (bus, irq): (u8, u8), (ioapic, pin): (u8, u8)) -> [u8; ENTRY_SIZE] {
    let [flags_low, flags_high] = flags.to_le_bytes();
    [ENTRY_IO_INTERRUPT, INTERRUPT_INT, flags_low, flags_high, bus, irq, ioapic, pin]
}

/// A local interrupt entry: interrupts of `irq_type` arrive on pin `lint` of every local APIC.
fn local_interrupt_entry(irq_type: u8, lint: u8) -> [u8; ENTRY_SIZE] {
    let [flags_low, flags_high] = FLAGS_CONFORMING.to_le_bytes();
    [ENTRY_LOCAL_INTERRUPT, irq_type, flags_low, flags_high, ISA_BUS_ID, 0, ALL_LOCAL_APICS, lint]
}

/// The configuration table's entries, and how many there are.
#[derive(Default)]
struct Entries {
    bytes: Vec<u8>,
    count: u16,
}

impl Entries {
    fn push(&mut self, entry: &[u8]) {
        self.bytes.extend_from_slice(entry);
        self.count += 1;
    }
}

/// The configuration table (header and entries) for `num_cpus` vCPUs, checksummed.
fn config_table(num_cpus: u8) -> Vec<u8> {
    let ioapic_id = num_cpus; // IO-APIC ids follow the local APIC ids
    let mut entries = Entries::default();
    for apic_id in 0..num_cpus {
        entries.push(&processor_entry(apic_id));
    }
    entries.push(&bus_entry(PCI_BUS_ID, BUS_TYPE_PCI));
    entries.push(&bus_entry(ISA_BUS_ID, BUS_TYPE_ISA));
    let [a, b, c, d] = IOAPIC_ADDRESS.to_le_bytes();
    entries.push(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, IOAPIC_ENABLED, a, b, c, d]);
    for irq in 0..ISA_IRQS {
        if let Some(pin) = isa_irq_pin(irq) {
            entries.push(&io_interrupt_entry(FLAGS_CONFORMING, (ISA_BUS_ID, irq), (ioapic_id, pin)));
        }
    }
    for device in PCI_DEVICES {
        for pin in 0..PCI_PINS {
            if let Some(ioapic_pin) = pci_irq_pin(device, pin) {
                // PCI "SOURCE BUS IRQ": bits 0-1 the pin (0 = INTA#), bits 2-6 the device number.
                let source = (PCI_BUS_ID, device << 2 | pin);
                entries.push(&io_interrupt_entry(FLAGS_ACTIVE_LOW | FLAGS_LEVEL, source, (ioapic_id, ioapic_pin)));
            }
        }
    }
    // Virtual wire mode: the PIC drives every LINT0 as ExtINT, and LINT1 is NMI.
    entries.push(&local_interrupt_entry(INTERRUPT_EXTINT, LINT0));
    entries.push(&local_interrupt_entry(INTERRUPT_NMI, LINT1));

    let length = (MPC_HEADER_SIZE + entries.bytes.len()) as u16; // < 1 KiB: checked by the caller
    let mut table = Vec::with_capacity(usize::from(length));
    table.extend_from_slice(&MPC_SIGNATURE);
    table.extend_from_slice(&length.to_le_bytes());
    table.extend_from_slice(&[SPEC_REVISION, 0]); // checksum, filled in below
    table.extend_from_slice(&MPC_OEM_ID);
    table.extend_from_slice(&MPC_PRODUCT_ID);
    table.extend_from_slice(&[0; 6]); // no OEM table: pointer and size
    table.extend_from_slice(&entries.count.to_le_bytes());
    table.extend_from_slice(&APIC_DEFAULT_ADDRESS.to_le_bytes());
    table.extend_from_slice(&[0; 4]); // no extended table: length, checksum; reserved
    table.extend_from_slice(&entries.bytes);
    table[7] = checksum(&table);
    table
}

/// The floating pointer to a configuration table at `config_table`, checksummed.
fn floating_pointer(config_table: u32) -> [u8; MPF_SIZE] {
    let mut mpf = [0; MPF_SIZE];
    mpf[..4].copy_from_slice(&MPF_SIGNATURE);
    mpf[4..8].copy_from_slice(&config_table.to_le_bytes());
    mpf[8] = MPF_LENGTH_PARAGRAPHS;
    mpf[9] = SPEC_REVISION;
    // Bytes 11..16 are the feature bytes: 0 = "a configuration table is present" and
    // IMCRP clear = virtual wire mode (no IMCR to switch from PIC mode).
    mpf[10] = checksum(&mpf);
    mpf
}

/// Writes the MP table for `num_cpus` vCPUs at [`MPTABLE_START`].
///
/// # Arguments
/// * `mem` - guest RAM, which must include `[MPTABLE_START, MPTABLE_END)`.
/// * `num_cpus` - the number of vCPUs; vCPU `i` must have APIC id `i`.
///
/// # Errors
/// [`MptableError::NoCpus`] for 0 vCPUs, [`MptableError::TooManyCpus`] above [`MAX_CPUS`], and
/// the write errors when the table's address is not guest RAM.
///
/// # Example
/// ```
/// use stage04::mptable::{setup_mptable, MPTABLE_START};
/// use stage02::memory::{GuestAddress, GuestMemory};
///
/// let mem = GuestMemory::new(&[(0, 0xa0000)]).unwrap();
/// setup_mptable(&mem, 2).unwrap();
/// let mut signature = [0u8; 4];
/// mem.read(GuestAddress(MPTABLE_START), &mut signature).unwrap();
/// assert_eq!(&signature, b"_MP_");
/// ```
pub fn setup_mptable(mem: &GuestMemory, num_cpus: u8) -> Result<(), MptableError> {
    if num_cpus == 0 {
        return Err(MptableError::NoCpus);
    }
    if MPTABLE_START + mptable_size(num_cpus) > MPTABLE_END {
        return Err(MptableError::TooManyCpus(num_cpus));
    }
    mem.write(GuestAddress(MPC_START), &config_table(num_cpus)).map_err(MptableError::WriteConfigTable)?;
    let mpf = floating_pointer(MPC_START as u32); // below 640 KiB, so it fits
    mem.write(GuestAddress(MPTABLE_START), &mpf).map_err(MptableError::WriteFloatingPointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(num_cpus: u8) -> GuestMemory {
        let mem = GuestMemory::new(&[(0, MPTABLE_END)]).unwrap();
        setup_mptable(&mem, num_cpus).unwrap();
        mem
    }

    fn read(mem: &GuestMemory, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        mem.read(GuestAddress(addr), &mut buf).unwrap();
        buf
    }

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0, |s, &b| s.wrapping_add(b))
    }

    /// The configuration table (via the floating pointer) and its entries, split by type.
    fn config_and_entries(mem: &GuestMemory) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mpf = read(mem, MPTABLE_START, MPF_SIZE);
        let address = u64::from(u32::from_le_bytes(mpf[4..8].try_into().unwrap()));
        let length = usize::from(u16::from_le_bytes(read(mem, address + 4, 2).try_into().unwrap()));
        let table = read(mem, address, length);
        let mut entries = Vec::new();
        let mut rest = &table[MPC_HEADER_SIZE..];
        while let Some(&kind) = rest.first() {
            let size = if kind == ENTRY_PROCESSOR { PROCESSOR_ENTRY_SIZE } else { ENTRY_SIZE };
            entries.push(rest[..size].to_vec());
            rest = &rest[size..];
        }
        (table, entries)
    }

    fn io_interrupts(entries: &[Vec<u8>], bus: u8) -> Vec<Vec<u8>> {
        entries.iter().filter(|e| e[0] == ENTRY_IO_INTERRUPT && e[4] == bus).cloned().collect()
    }

    #[test]
    fn test_floating_pointer() {
        let mpf = read(&setup(1), MPTABLE_START, MPF_SIZE);
        assert_eq!(mpf[..4], MPF_SIGNATURE);
        assert_eq!(u32::from_le_bytes(mpf[4..8].try_into().unwrap()), MPC_START as u32);
        assert_eq!((mpf[8], mpf[9]), (MPF_LENGTH_PARAGRAPHS, SPEC_REVISION));
        assert_eq!(sum(&mpf), 0);
        assert_eq!(MPTABLE_START % 16, 0, "Linux scans 16-byte boundaries");
    }

    #[test]
    fn test_config_table_header_and_checksum() {
        for num_cpus in [1, 2, 8, MAX_CPUS] {
            let (table, entries) = config_and_entries(&setup(num_cpus));
            assert_eq!(table[..4], MPC_SIGNATURE);
            assert_eq!(sum(&table), 0, "{num_cpus} vCPUs");
            assert_eq!(table[6], SPEC_REVISION);
            assert_eq!(table[8..28], [&MPC_OEM_ID[..], &MPC_PRODUCT_ID].concat());
            assert_eq!(u16::from_le_bytes([table[34], table[35]]) as usize, entries.len());
            assert_eq!(u32::from_le_bytes(table[36..40].try_into().unwrap()), APIC_DEFAULT_ADDRESS);
        }
    }

    #[test]
    fn test_entry_types_in_order() {
        let (_, entries) = config_and_entries(&setup(2));
        let types: Vec<u8> = entries.iter().map(|e| e[0]).collect();
        let mut expected = vec![ENTRY_PROCESSOR, ENTRY_PROCESSOR, ENTRY_BUS, ENTRY_BUS, ENTRY_IOAPIC];
        expected.extend(vec![ENTRY_IO_INTERRUPT; isa_entry_count() + 16]);
        expected.extend([ENTRY_LOCAL_INTERRUPT; 2]);
        assert_eq!(types, expected);
        assert_eq!(entries[2][1..], [&[PCI_BUS_ID][..], b"PCI   "].concat());
        assert_eq!(entries[3][1..], [&[ISA_BUS_ID][..], b"ISA   "].concat());
        assert_eq!(entries[entries.len() - 2][1..], [INTERRUPT_EXTINT, 0, 0, ISA_BUS_ID, 0, ALL_LOCAL_APICS, LINT0]);
        assert_eq!(entries[entries.len() - 1][1..], [INTERRUPT_NMI, 0, 0, ISA_BUS_ID, 0, ALL_LOCAL_APICS, LINT1]);
    }

    #[test]
    fn test_processor_entries_and_bsp_flag() {
        for num_cpus in [1, 2, 8] {
            let (_, entries) = config_and_entries(&setup(num_cpus));
            let cpus: Vec<_> = entries.iter().filter(|e| e[0] == ENTRY_PROCESSOR).collect();
            assert_eq!(cpus.len(), usize::from(num_cpus));
            for (i, cpu) in cpus.iter().enumerate() {
                assert_eq!((cpu[1], cpu[2]), (i as u8, LAPIC_VERSION));
                let expected = if i == 0 { CPU_ENABLED | CPU_BOOTSTRAP } else { CPU_ENABLED };
                assert_eq!(cpu[3], expected, "CPU {i}");
            }
        }
    }

    #[test]
    fn test_ioapic_entry() {
        let (_, entries) = config_and_entries(&setup(8));
        let ioapic = entries.iter().find(|e| e[0] == ENTRY_IOAPIC).unwrap();
        assert_eq!(ioapic[1..4], [8, IOAPIC_VERSION, IOAPIC_ENABLED]);
        assert_eq!(u32::from_le_bytes(ioapic[4..8].try_into().unwrap()), IOAPIC_ADDRESS);
        assert!(io_interrupts(&entries, ISA_BUS_ID).iter().all(|e| e[6] == 8), "routed to the IO-APIC");
    }

    #[test]
    fn test_isa_interrupts() {
        let (_, entries) = config_and_entries(&setup(1));
        let isa = io_interrupts(&entries, ISA_BUS_ID);
        let pin_of = |irq: u8| isa.iter().find(|e| e[5] == irq).map(|e| e[7]);
        assert_eq!(pin_of(0), Some(PIT_IOAPIC_PIN), "the PIT");
        assert_eq!(pin_of(4), Some(4), "COM1");
        assert_eq!(isa.len(), isa_entry_count());
        assert!(isa.iter().all(|e| e[1] == INTERRUPT_INT && e[2..4] == [0, 0]), "conforming");
    }

    #[test]
    fn test_isa_irq_pin() {
        // What `isa_irq_pin` does if the PIT is moved to pin 2, as QEMU does.
        let with_override = |irq: u8| match irq {
            0 => Some(2),
            2 => None,
            _ => Some(irq),
        };
        if PIT_IOAPIC_PIN == 2 {
            assert!((0..ISA_IRQS).all(|irq| isa_irq_pin(irq) == with_override(irq)));
        } else {
            assert!((0..ISA_IRQS).all(|irq| isa_irq_pin(irq) == Some(irq)));
        }
        assert_eq!(isa_irq_pin(ISA_IRQS), None);
    }

    #[test]
    fn test_pci_interrupts() {
        let (_, entries) = config_and_entries(&setup(1));
        let pci = io_interrupts(&entries, PCI_BUS_ID);
        assert_eq!(pci.len(), PCI_DEVICES.count() * usize::from(PCI_PINS));
        for e in &pci {
            let (device, pin) = (e[5] >> 2, e[5] & 3);
            assert_eq!(Some(e[7]), pci_irq_pin(device, pin));
            assert_eq!(u16::from_le_bytes([e[2], e[3]]), FLAGS_ACTIVE_LOW | FLAGS_LEVEL);
        }
        assert_eq!(pci_irq_pin(1, 0), Some(17));
        assert_eq!(pci_irq_pin(4, 0), Some(16));
        assert_eq!(pci_irq_pin(0, 0), None, "the host bridge");
        assert_eq!(pci_irq_pin(5, 0), None);
        assert_eq!(pci_irq_pin(1, 4), None);
    }

    #[test]
    fn test_cpu_count_limits() {
        let mem = GuestMemory::new(&[(0, MPTABLE_END)]).unwrap();
        assert!(matches!(setup_mptable(&mem, 0), Err(MptableError::NoCpus)));
        assert!(setup_mptable(&mem, MAX_CPUS).is_ok());
        assert!(MPTABLE_START + mptable_size(MAX_CPUS + 1) > MPTABLE_END);
        for too_many in [MAX_CPUS + 1, 254, 255] {
            assert!(matches!(setup_mptable(&mem, too_many), Err(MptableError::TooManyCpus(n)) if n == too_many));
        }
        assert_eq!(MAX_CPUS, 33);
    }

    #[test]
    fn test_size_matches_what_was_written() {
        for num_cpus in [1, 2, 8, MAX_CPUS] {
            let (table, _) = config_and_entries(&setup(num_cpus));
            assert_eq!((MPF_SIZE + table.len()) as u64, mptable_size(num_cpus));
        }
    }

    #[test]
    fn test_memory_without_the_last_kib_is_an_error() {
        let mem = GuestMemory::new(&[(0, 0x9f000)]).unwrap();
        assert!(matches!(setup_mptable(&mem, 1), Err(MptableError::WriteConfigTable(_))));
    }
}
