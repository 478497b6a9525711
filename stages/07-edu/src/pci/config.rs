//! The PCI configuration space of one function: the 256-byte type-0 header the guest probes.
//!
//! Every PCI function has 256 bytes of configuration space. The first 64 bytes are the
//! standard header: who made the device (vendor and device ids, class code), what it decodes
//! (the command register), what happened (the status register), where its registers live (the
//! base address registers, BARs) and which interrupt pin it uses. The other 192 bytes are the
//! device's own; we use them only for the capability list.
//!
//! ```text
//!  offset  +3            +2            +1            +0
//!  0x00    ┌─────── device id ────────┬──────── vendor id ───────┐
//!  0x04    ├──────── status ──────────┼──────── command ─────────┤
//!  0x08    ├─ class ──┬─ subclass ────┼─ prog if ──┬─ revision ──┤
//!  0x0c    ├─ BIST ───┬─ header type ─┼─ latency ──┬─ cache line ┤
//!  0x10    ├──────────── BAR0 … BAR5 (0x10‥0x27) ────────────────┤
//!  0x2c    ├────── subsystem id ──────┼─── subsystem vendor id ──┤
//!  0x30    ├──────────── expansion ROM base (not implemented) ───┤
//!  0x34    ├────────────── reserved ─────────────┬─ cap pointer ─┤
//!  0x3c    ├─ max lat ┬─ min gnt ─────┼─ int pin ──┬─ int line ──┤
//!  0x40    └──── capabilities, device-specific registers ────────┘
//! ```
//!
//! The model keeps, like QEMU's `hw/pci/pci.c`, three arrays of 256 bytes: the values, a mask
//! of bits the guest may write (`wmask`) and a mask of bits a guest write of 1 clears
//! (`w1cmask`, the error bits of the status register). Everything not in a mask is read-only,
//! which makes the ids, the class code and the header type read-only for free, and gives BAR
//! sizing for free too: a BAR's low address bits and type bits are simply not writable.
//!
//! # Access sizes
//! One access is one configuration cycle: 1, 2 or 4 bytes **within one aligned dword**, the
//! bytes picked by byte enables. An access that crosses a dword boundary (a word at offset 3,
//! a dword at offset 2), has another size, or runs past byte 255 is not a configuration cycle:
//! reads return all ones and writes are dropped. [`PciRoot`](super::root::PciRoot) can never
//! produce such an access (its data port is one dword), so this only matters to direct callers.
//!
//! # Resources
//! - PCI Local Bus Specification 3.0, §6.1 "Configuration Space Organization", §6.2.2 "Device
//!   Control" (command), §6.2.3 "Device Status", §6.2.5.1 "Address Maps" (BAR sizing), §6.7
//!   "Capabilities List".
//! - Linux `include/uapi/linux/pci_regs.h`: the names used here.
//! - Linux `drivers/pci/probe.c` `__pci_read_base`: how a kernel sizes a BAR.
//! - QEMU `hw/pci/pci.c` `pci_default_write_config`, `pci_register_bar`: the wmask model.

use std::fmt;

/// Size of a conventional PCI configuration space.
pub const CONFIG_SPACE_SIZE: usize = 256;
/// Size of the standard header; capabilities start after it.
pub const STANDARD_HEADER_SIZE: usize = 0x40;

/// Vendor ID (16 bits, read-only). 0xffff never names a vendor: it is what an empty slot reads.
pub const VENDOR_ID_OFFSET: usize = 0x00;
/// Device ID (16 bits, read-only).
pub const DEVICE_ID_OFFSET: usize = 0x02;
/// Command register (16 bits): what the function may do on the bus.
pub const COMMAND_OFFSET: usize = 0x04;
/// Status register (16 bits): read-only facts and write-1-to-clear error bits.
pub const STATUS_OFFSET: usize = 0x06;
/// Revision ID (8 bits, read-only).
pub const REVISION_ID_OFFSET: usize = 0x08;
/// Class code (24 bits, read-only): programming interface, subclass, base class from low to high.
pub const CLASS_CODE_OFFSET: usize = 0x09;
/// Cache Line Size (8 bits, read-write; Linux writes it, nothing here uses it).
pub const CACHE_LINE_SIZE_OFFSET: usize = 0x0c;
/// Latency Timer (8 bits, read-write; meaningless without a real bus).
pub const LATENCY_TIMER_OFFSET: usize = 0x0d;
/// Header Type (8 bits, read-only): layout of bytes 0x10..0x40, bit 7 = multi-function.
pub const HEADER_TYPE_OFFSET: usize = 0x0e;
/// Base Address Register 0; BAR `n` is at `BAR0_OFFSET + 4 * n`.
pub const BAR0_OFFSET: usize = 0x10;
/// Number of BARs in a type-0 header.
pub const BAR_COUNT: usize = 6;
/// Subsystem Vendor ID (16 bits, read-only).
pub const SUBSYSTEM_VENDOR_ID_OFFSET: usize = 0x2c;
/// Subsystem ID (16 bits, read-only).
pub const SUBSYSTEM_ID_OFFSET: usize = 0x2e;
/// Expansion ROM Base Address (32 bits). Not implemented: reads 0, so sizing finds no ROM.
pub const EXPANSION_ROM_OFFSET: usize = 0x30;
/// Capabilities Pointer (8 bits, read-only): offset of the first capability, valid when
/// [`STATUS_CAPABILITIES_LIST`] is set.
pub const CAPABILITIES_POINTER_OFFSET: usize = 0x34;
/// Interrupt Line (8 bits, read-write): scratch for the OS, "which IRQ is this pin wired to".
pub const INTERRUPT_LINE_OFFSET: usize = 0x3c;
/// Interrupt Pin (8 bits, read-only): 0 = none, 1..=4 = INTA#..INTD#.
pub const INTERRUPT_PIN_OFFSET: usize = 0x3d;

/// Command bit 0, I/O Space: respond to I/O-space accesses (to I/O BARs).
pub const COMMAND_IO_SPACE: u16 = 1 << 0;
/// Command bit 1, Memory Space: respond to memory accesses, i.e. decode the memory BARs.
pub const COMMAND_MEMORY_SPACE: u16 = 1 << 1;
/// Command bit 2, Bus Master: the function may start its own transactions (DMA).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command bit 10, Interrupt Disable: the function must not assert INTx#.
pub const COMMAND_INTERRUPT_DISABLE: u16 = 1 << 10;
/// The command bits a guest can change; the others (special cycles, memory write and
/// invalidate, VGA snooping, parity, SERR#, fast back-to-back) make no sense without a real
/// bus and stay 0, as QEMU's do.
pub const COMMAND_WRITABLE: u16 =
    COMMAND_IO_SPACE | COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER | COMMAND_INTERRUPT_DISABLE;

/// Status bit 3, Interrupt Status (read-only): the function's INTx# is asserted.
pub const STATUS_INTERRUPT: u16 = 1 << 3;
/// Status bit 4, Capabilities List (read-only): the capabilities pointer at 0x34 is valid.
pub const STATUS_CAPABILITIES_LIST: u16 = 1 << 4;
/// Status bit 8, Master Data Parity Error (write 1 to clear).
pub const STATUS_MASTER_DATA_PARITY_ERROR: u16 = 1 << 8;
/// Status bit 11, Signaled Target Abort (write 1 to clear).
pub const STATUS_SIGNALED_TARGET_ABORT: u16 = 1 << 11;
/// Status bit 12, Received Target Abort (write 1 to clear).
pub const STATUS_RECEIVED_TARGET_ABORT: u16 = 1 << 12;
/// Status bit 13, Received Master Abort (write 1 to clear).
pub const STATUS_RECEIVED_MASTER_ABORT: u16 = 1 << 13;
/// Status bit 14, Signaled System Error (write 1 to clear).
pub const STATUS_SIGNALED_SYSTEM_ERROR: u16 = 1 << 14;
/// Status bit 15, Detected Parity Error (write 1 to clear).
pub const STATUS_DETECTED_PARITY_ERROR: u16 = 1 << 15;
/// All write-1-to-clear bits of the status register; every other status bit is read-only.
pub const STATUS_WRITE_1_TO_CLEAR: u16 = STATUS_MASTER_DATA_PARITY_ERROR
    | STATUS_SIGNALED_TARGET_ABORT
    | STATUS_RECEIVED_TARGET_ABORT
    | STATUS_RECEIVED_MASTER_ABORT
    | STATUS_SIGNALED_SYSTEM_ERROR
    | STATUS_DETECTED_PARITY_ERROR;

/// Header type 0: a normal function (the layout above), single-function.
pub const HEADER_TYPE_NORMAL: u8 = 0x00;

/// BAR bit 0, Memory Space Indicator: 0 = memory BAR, 1 = I/O BAR.
pub const BAR_SPACE_IO: u32 = 1 << 0;
/// BAR bits 2:1, memory type: 00 = 32-bit address, 10 = 64-bit (two BAR registers).
pub const BAR_MEMORY_TYPE_MASK: u32 = 0b11 << 1;
/// Memory type 00: locate anywhere in the 32-bit address space.
pub const BAR_MEMORY_TYPE_32: u32 = 0b00 << 1;
/// Memory type 10: locate anywhere in the 64-bit address space; the next BAR holds bits 63:32.
pub const BAR_MEMORY_TYPE_64: u32 = 0b10 << 1;
/// BAR bit 3, Prefetchable: reads have no side effects.
pub const BAR_MEMORY_PREFETCHABLE: u32 = 1 << 3;
/// The address bits of a memory BAR (bits 3:0 are the read-only type bits above).
pub const BAR_MEMORY_ADDRESS_MASK: u32 = !0xf;

/// Capability ID of a Vendor-Specific capability (PCI 3.0 Appendix H): id, next, length, data.
pub const CAPABILITY_ID_VENDOR_SPECIFIC: u8 = 0x09;
/// Offset of the Capability ID byte within a capability.
pub const CAPABILITY_ID: usize = 0;
/// Offset of the Next Capability Pointer byte within a capability (0 ends the list).
pub const CAPABILITY_NEXT: usize = 1;
/// Offset of the length byte within a vendor-specific capability (counts the whole capability).
pub const CAPABILITY_VENDOR_LENGTH: usize = 2;

/// What a BAR decodes. I/O BARs are not modelled: nothing in this lab needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// A 32-bit memory BAR: one register, placed below 4 GiB.
    Memory32 {
        /// Whether reads are free of side effects (bit 3).
        prefetchable: bool,
    },
    /// A 64-bit memory BAR: this register holds bits 31:0, the next one bits 63:32.
    Memory64 {
        /// Whether reads are free of side effects (bit 3).
        prefetchable: bool,
    },
}

impl BarKind {
    /// Number of BAR registers the BAR takes.
    pub fn registers(self) -> usize {
        match self {
            BarKind::Memory32 { .. } => 1,
            BarKind::Memory64 { .. } => 2,
        }
    }
}

/// A BAR as the VMM sees it: its definition, and what the guest has programmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarInfo {
    /// BAR number (0..6); a 64-bit BAR also takes `index + 1`.
    pub index: usize,
    /// What it decodes.
    pub kind: BarKind,
    /// Size in bytes, a power of two.
    pub size: u64,
    /// The address bits now in the register(s): where the guest (or firmware) put it.
    pub address: u64,
    /// Whether the command register's Memory Space bit is set.
    pub decoding: bool,
}

impl BarInfo {
    /// Where the BAR answers, if anywhere: decoding on, a non-zero address (0 means
    /// "unassigned") and a range that does not wrap. Like QEMU's `pci_bar_address`, a 32-bit
    /// BAR that reaches the last byte below 4 GiB counts as wrapping: that is where a BAR
    /// mid-way through sizing points (all ones in its address bits), so it is never mapped.
    pub fn mapping(&self) -> Option<u64> {
        let fits = self.address.checked_add(self.size).is_some_and(|end| match self.kind {
            BarKind::Memory32 { .. } => end < 1 << 32,
            BarKind::Memory64 { .. } => true,
        });
        (self.decoding && self.address != 0 && fits).then_some(self.address)
    }
}

/// Errors from building a configuration space: mistakes of the VMM, not of the guest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A BAR number outside 0..6, or a 64-bit BAR at 5 (it needs two registers).
    #[error("BAR {0} does not exist or has no room for its upper half")]
    BarIndex(usize),
    /// The BAR register is already used by another BAR.
    #[error("BAR {0} is already in use")]
    BarTaken(usize),
    /// Not a power of two, smaller than 16 bytes, or too large for the BAR's kind.
    #[error("BAR size {0:#x} is not a power of two between 16 bytes and the BAR's address space")]
    BarSize(u64),
    /// The capability does not fit in the remaining configuration space.
    #[error("a capability of {0} bytes does not fit in the configuration space")]
    CapabilityTooLarge(usize),
}

// lab:begin solution stage7-bar-sizing "return a memory BAR's type bits and its writable address bits, !(size - 1), so that the guest can size it"
/// The read-only type bits and the guest-writable address bits of a memory BAR of `size`
/// bytes (a power of two), as one 64-bit value: for a 64-bit BAR the high half is the next
/// BAR register.
///
/// This is all BAR sizing is. A BAR decodes `size` bytes at a naturally aligned address, so
/// the low `log2(size)` address bits are hard-wired to 0: only `!(size - 1)` is writable. When
/// the OS writes all ones and reads back, it gets ones exactly there, plus the type bits; it
/// masks off the type bits, inverts and adds one, and has the size.
fn bar_bits(kind: BarKind, size: u64) -> (u32, u64) {
    let (type_bits, prefetchable, address_bits) = match kind {
        BarKind::Memory32 { prefetchable } => (BAR_MEMORY_TYPE_32, prefetchable, 0xffff_fff0),
        BarKind::Memory64 { prefetchable } => (BAR_MEMORY_TYPE_64, prefetchable, 0xffff_ffff_ffff_fff0),
    };
    let type_bits = type_bits | if prefetchable { BAR_MEMORY_PREFETCHABLE } else { 0 };
    (type_bits, address_bits & !(size - 1))
}
// lab:end

/// A type-0 configuration space: the bytes, who may write which bits, and the BAR layout.
///
/// Build it with [`ConfigSpace::new`] and the `with_*`/`add_*` methods; the guest then sees it
/// through [`read`](Self::read) and [`write`](Self::write).
///
/// # Example
/// ```
/// use stage07::pci::config::{BarKind, ConfigSpace, COMMAND_OFFSET, COMMAND_MEMORY_SPACE, BAR0_OFFSET};
/// let mut config = ConfigSpace::new(0x1234, 0x11e8, 0x00ff00, 0x10)
///     .with_bar(0, BarKind::Memory32 { prefetchable: false }, 1 << 20)
///     .unwrap();
/// config.write(BAR0_OFFSET, &u32::MAX.to_le_bytes());
/// assert_eq!(config.read_u32(BAR0_OFFSET), 0xfff0_0000, "sizing: 1 MiB");
/// config.write(BAR0_OFFSET, &0xe000_0000u32.to_le_bytes());
/// config.write(COMMAND_OFFSET, &COMMAND_MEMORY_SPACE.to_le_bytes());
/// assert_eq!(config.bars()[0].mapping(), Some(0xe000_0000));
/// ```
#[derive(Clone)]
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SPACE_SIZE],
    wmask: [u8; CONFIG_SPACE_SIZE],
    w1cmask: [u8; CONFIG_SPACE_SIZE],
    bars: [Option<(BarKind, u64)>; BAR_COUNT],
    /// Offset of the last capability, to link the next one; 0 when there is none.
    last_capability: usize,
    /// First free byte for the next capability.
    capability_end: usize,
}

impl fmt::Debug for ConfigSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSpace")
            .field("vendor_id", &format_args!("{:#06x}", self.read_u16(VENDOR_ID_OFFSET)))
            .field("device_id", &format_args!("{:#06x}", self.read_u16(DEVICE_ID_OFFSET)))
            .field("command", &format_args!("{:#06x}", self.command()))
            .field("bars", &self.bars())
            .finish_non_exhaustive()
    }
}

impl ConfigSpace {
    /// A single-function type-0 header with these ids, a 24-bit class code (base class,
    /// subclass, programming interface from high to low byte: `0x060000` is a host bridge) and
    /// a revision; no BARs, no interrupt pin, no capabilities.
    pub fn new(vendor_id: u16, device_id: u16, class_code: u32, revision: u8) -> Self {
        let mut config = ConfigSpace {
            bytes: [0; CONFIG_SPACE_SIZE],
            wmask: [0; CONFIG_SPACE_SIZE],
            w1cmask: [0; CONFIG_SPACE_SIZE],
            bars: [None; BAR_COUNT],
            last_capability: 0,
            capability_end: STANDARD_HEADER_SIZE,
        };
        config.set_bytes(VENDOR_ID_OFFSET, &vendor_id.to_le_bytes());
        config.set_bytes(DEVICE_ID_OFFSET, &device_id.to_le_bytes());
        config.set_bytes(REVISION_ID_OFFSET, &[revision]);
        config.set_bytes(CLASS_CODE_OFFSET, &class_code.to_le_bytes()[..3]);
        config.set_bytes(HEADER_TYPE_OFFSET, &[HEADER_TYPE_NORMAL]);
        config.wmask[COMMAND_OFFSET..COMMAND_OFFSET + 2].copy_from_slice(&COMMAND_WRITABLE.to_le_bytes());
        config.w1cmask[STATUS_OFFSET..STATUS_OFFSET + 2].copy_from_slice(&STATUS_WRITE_1_TO_CLEAR.to_le_bytes());
        for offset in [CACHE_LINE_SIZE_OFFSET, LATENCY_TIMER_OFFSET, INTERRUPT_LINE_OFFSET] {
            config.wmask[offset] = 0xff;
        }
        config
    }

    /// Sets the subsystem vendor and subsystem ids (read-only to the guest).
    pub fn with_subsystem(mut self, vendor_id: u16, id: u16) -> Self {
        self.set_bytes(SUBSYSTEM_VENDOR_ID_OFFSET, &vendor_id.to_le_bytes());
        self.set_bytes(SUBSYSTEM_ID_OFFSET, &id.to_le_bytes());
        self
    }

    /// Sets the interrupt pin (1 = INTA# … 4 = INTD#; read-only to the guest).
    pub fn with_interrupt_pin(mut self, pin: u8) -> Self {
        self.set_bytes(INTERRUPT_PIN_OFFSET, &[pin]);
        self
    }

    /// Declares BAR `index` as a memory BAR of `size` bytes, at address 0 (unassigned).
    ///
    /// # Errors
    /// [`ConfigError::BarIndex`], [`ConfigError::BarTaken`] or [`ConfigError::BarSize`] when
    /// the BAR cannot exist as asked.
    pub fn with_bar(mut self, index: usize, kind: BarKind, size: u64) -> Result<Self, ConfigError> {
        let registers = kind.registers();
        if index + registers > BAR_COUNT {
            return Err(ConfigError::BarIndex(index));
        }
        if (index..index + registers).any(|i| self.bar_register_used(i)) {
            return Err(ConfigError::BarTaken(index));
        }
        let max = match kind {
            BarKind::Memory32 { .. } => 1 << 31,
            BarKind::Memory64 { .. } => 1 << 63,
        };
        if !size.is_power_of_two() || !(16..=max).contains(&size) {
            return Err(ConfigError::BarSize(size));
        }
        // qa:begin stage7-bar-sizing
        let (type_bits, writable) = bar_bits(kind, size);
        let offset = BAR0_OFFSET + 4 * index;
        let len = 4 * registers;
        // The register starts as address 0 plus the type bits, which no write can change...
        self.set_bytes(offset, &u64::from(type_bits).to_le_bytes()[..len]);
        // ...and only the address bits the size leaves free are writable: writing all ones
        // stores `!(size - 1)`, and that is what the guest reads back.
        self.wmask[offset..offset + len].copy_from_slice(&writable.to_le_bytes()[..len]);
        // qa:end stage7-bar-sizing
        self.bars[index] = Some((kind, size));
        Ok(self)
    }

    /// Appends a capability with this id; `body` is what follows the id and next-pointer bytes.
    /// The capability is read-only. Returns its offset.
    ///
    /// # Errors
    /// [`ConfigError::CapabilityTooLarge`] when it does not fit before byte 256.
    pub fn add_capability(&mut self, id: u8, body: &[u8]) -> Result<usize, ConfigError> {
        let len = 2 + body.len();
        let offset = self.capability_end;
        // Capabilities are dword-aligned (the low two bits of every pointer are reserved).
        let end = (offset + len).next_multiple_of(4);
        if end > CONFIG_SPACE_SIZE {
            return Err(ConfigError::CapabilityTooLarge(len));
        }
        self.set_bytes(offset + CAPABILITY_ID, &[id, 0]);
        self.set_bytes(offset + 2, body);
        let link = match self.last_capability {
            0 => CAPABILITIES_POINTER_OFFSET,
            last => last + CAPABILITY_NEXT,
        };
        self.set_bytes(link, &[offset as u8]);
        let status = self.read_u16(STATUS_OFFSET) | STATUS_CAPABILITIES_LIST;
        self.set_bytes(STATUS_OFFSET, &status.to_le_bytes());
        self.last_capability = offset;
        self.capability_end = end;
        Ok(offset)
    }

    /// Appends a vendor-specific capability (id 0x09) carrying `data`: id, next, length
    /// (of the whole capability), data. Returns its offset.
    ///
    /// # Errors
    /// [`ConfigError::CapabilityTooLarge`] when it does not fit.
    pub fn add_vendor_capability(&mut self, data: &[u8]) -> Result<usize, ConfigError> {
        let len = 3 + data.len();
        let length = u8::try_from(len).map_err(|_| ConfigError::CapabilityTooLarge(len))?;
        let mut body = vec![length];
        body.extend_from_slice(data);
        self.add_capability(CAPABILITY_ID_VENDOR_SPECIFIC, &body)
    }

    // qa:begin stage7-config-write
    /// Whether `[offset, offset + len)` is one configuration cycle: 1, 2 or 4 bytes in one dword.
    /// (Inside one dword that starts below 256, the access cannot run past the end.)
    fn is_cycle(offset: usize, len: usize) -> bool {
        matches!(len, 1 | 2 | 4) && offset % 4 + len <= 4 && offset < CONFIG_SPACE_SIZE
    }

    /// The guest reads `data.len()` bytes at `offset`. Accesses that are not one configuration
    /// cycle (see the module doc) read all ones.
    pub fn read(&self, offset: usize, data: &mut [u8]) {
        if Self::is_cycle(offset, data.len()) {
            data.copy_from_slice(&self.bytes[offset..offset + data.len()]);
        } else {
            data.fill(0xff);
        }
    }

    /// The guest writes `data` at `offset`: writable bits take the new value, write-1-to-clear
    /// bits written as 1 clear, every other bit stays. Accesses that are not one configuration
    /// cycle are dropped.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        if !Self::is_cycle(offset, data.len()) {
            return;
        }
        for (i, &value) in data.iter().enumerate() {
            let at = offset + i;
            let (wmask, w1c) = (self.wmask[at], self.w1cmask[at]);
            self.bytes[at] = (self.bytes[at] & !wmask) | (value & wmask);
            self.bytes[at] &= !(value & w1c);
        }
    }
    // qa:end stage7-config-write

    /// The byte at `offset` (`0xff` past the end), as the guest would read it.
    pub fn read_u8(&self, offset: usize) -> u8 {
        let mut data = [0u8; 1];
        self.read(offset, &mut data);
        data[0]
    }

    /// The little-endian word at `offset`, as the guest would read it.
    pub fn read_u16(&self, offset: usize) -> u16 {
        let mut data = [0u8; 2];
        self.read(offset, &mut data);
        u16::from_le_bytes(data)
    }

    /// The little-endian dword at `offset`, as the guest would read it.
    pub fn read_u32(&self, offset: usize) -> u32 {
        let mut data = [0u8; 4];
        self.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.read_u16(COMMAND_OFFSET)
    }

    /// The interrupt pin (0 = none, 1 = INTA#).
    pub fn interrupt_pin(&self) -> u8 {
        self.read_u8(INTERRUPT_PIN_OFFSET)
    }

    /// Sets the interrupt line, as firmware does to tell the OS which IRQ the pin is wired to.
    pub fn set_interrupt_line(&mut self, line: u8) {
        self.set_bytes(INTERRUPT_LINE_OFFSET, &[line]);
    }

    /// Sets or clears read-only status bits, for the device model (e.g. [`STATUS_INTERRUPT`]).
    pub fn set_status_bits(&mut self, bits: u16, on: bool) {
        let status = self.read_u16(STATUS_OFFSET);
        let status = if on { status | bits } else { status & !bits };
        self.set_bytes(STATUS_OFFSET, &status.to_le_bytes());
    }

    /// The BARs, in index order, with what the guest has programmed into them.
    pub fn bars(&self) -> Vec<BarInfo> {
        let decoding = self.command() & COMMAND_MEMORY_SPACE != 0;
        let mut bars = Vec::new();
        for (index, bar) in self.bars.iter().enumerate() {
            let Some((kind, size)) = *bar else { continue };
            let offset = BAR0_OFFSET + 4 * index;
            let low = u64::from(self.read_u32(offset) & BAR_MEMORY_ADDRESS_MASK);
            let high = match kind {
                BarKind::Memory32 { .. } => 0,
                BarKind::Memory64 { .. } => u64::from(self.read_u32(offset + 4)),
            };
            bars.push(BarInfo { index, kind, size, address: high << 32 | low, decoding });
        }
        bars
    }

    /// Places BAR `index` at `address` (aligned down to its size), as firmware does before
    /// the OS boots. Returns `false` if there is no such BAR.
    pub fn set_bar_address(&mut self, index: usize, address: u64) -> bool {
        let Some(Some((kind, size))) = self.bars.get(index).copied() else { return false };
        let (type_bits, writable) = bar_bits(kind, size);
        let value = (address & writable) | u64::from(type_bits);
        let offset = BAR0_OFFSET + 4 * index;
        self.set_bytes(offset, &value.to_le_bytes()[..4 * kind.registers()]);
        true
    }

    /// Sets command bits directly (firmware enabling decoding), within the writable ones.
    pub fn set_command_bits(&mut self, bits: u16) {
        let command = self.command() | (bits & COMMAND_WRITABLE);
        self.set_bytes(COMMAND_OFFSET, &command.to_le_bytes());
    }

    fn bar_register_used(&self, register: usize) -> bool {
        (0..=register).any(|i| match self.bars[i] {
            Some((kind, _)) => i + kind.registers() > register,
            None => false,
        })
    }

    /// Writes bytes regardless of the masks: the device's own view of its registers.
    fn set_bytes(&mut self, offset: usize, data: &[u8]) {
        self.bytes[offset..offset + data.len()].copy_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn edu_like() -> ConfigSpace {
        ConfigSpace::new(0x1234, 0x11e8, 0x00ff00, 0x10)
            .with_bar(0, BarKind::Memory32 { prefetchable: false }, MIB)
            .unwrap()
            .with_bar(2, BarKind::Memory64 { prefetchable: true }, 16 * MIB)
            .unwrap()
            .with_interrupt_pin(1)
    }

    fn write32(config: &mut ConfigSpace, offset: usize, value: u32) {
        config.write(offset, &value.to_le_bytes());
    }

    #[test]
    fn ids_class_revision_and_header_type_are_read_only() {
        let mut config = edu_like();
        for offset in [VENDOR_ID_OFFSET, REVISION_ID_OFFSET, HEADER_TYPE_OFFSET & !3] {
            let before = config.read_u32(offset);
            write32(&mut config, offset, 0x5a5a_5a5a);
            // The cache line size and latency timer share the dword with the header type.
            let writable = if offset == HEADER_TYPE_OFFSET & !3 { 0x0000_ffff } else { 0 };
            assert_eq!(config.read_u32(offset) & !writable, before & !writable, "{offset:#x}");
        }
        assert_eq!(config.read_u16(VENDOR_ID_OFFSET), 0x1234);
        assert_eq!(config.read_u16(DEVICE_ID_OFFSET), 0x11e8);
        assert_eq!(config.read_u32(REVISION_ID_OFFSET), 0x00ff_0010, "class 00ff00, revision 0x10");
        assert_eq!(config.read_u8(HEADER_TYPE_OFFSET), HEADER_TYPE_NORMAL);
    }

    #[test]
    fn bar_sizing_reads_back_the_size_mask_with_the_type_bits() {
        let mut config = edu_like();
        write32(&mut config, BAR0_OFFSET, u32::MAX);
        assert_eq!(config.read_u32(BAR0_OFFSET), 0xfff0_0000 | BAR_MEMORY_TYPE_32);
        let readback = config.read_u32(BAR0_OFFSET) & BAR_MEMORY_ADDRESS_MASK;
        assert_eq!(u64::from(!readback) + 1, MIB, "what Linux computes");

        // A 64-bit prefetchable BAR: both halves sized, type bits kept in the low one.
        let bar2 = BAR0_OFFSET + 8;
        write32(&mut config, bar2, u32::MAX);
        write32(&mut config, bar2 + 4, u32::MAX);
        assert_eq!(config.read_u32(bar2), 0xff00_0000 | BAR_MEMORY_TYPE_64 | BAR_MEMORY_PREFETCHABLE);
        assert_eq!(config.read_u32(bar2 + 4), u32::MAX);
    }

    #[test]
    fn bar_low_bits_are_read_only_and_addresses_are_aligned_to_the_size() {
        let mut config = edu_like();
        write32(&mut config, BAR0_OFFSET, 0xe008_0fff);
        assert_eq!(config.read_u32(BAR0_OFFSET), 0xe000_0000, "below 1 MiB nothing sticks");
        write32(&mut config, BAR0_OFFSET + 8, 0xd100_0000);
        write32(&mut config, BAR0_OFFSET + 12, 0x1);
        let bars = config.bars();
        assert_eq!((bars[0].index, bars[0].address), (0, 0xe000_0000));
        assert_eq!((bars[1].index, bars[1].address), (2, 0x1_d100_0000));
        // Byte writes reach only their byte of the register.
        config.write(BAR0_OFFSET + 3, &[0xc0]);
        assert_eq!(config.read_u32(BAR0_OFFSET), 0xc000_0000);
    }

    #[test]
    fn unused_bars_and_the_expansion_rom_read_zero_even_after_sizing() {
        let mut config = edu_like();
        for offset in [BAR0_OFFSET + 4, BAR0_OFFSET + 16, BAR0_OFFSET + 20, EXPANSION_ROM_OFFSET] {
            write32(&mut config, offset, u32::MAX);
            assert_eq!(config.read_u32(offset), 0, "{offset:#x}");
        }
    }

    #[test]
    fn bars_map_only_with_memory_decoding_and_a_sane_address() {
        let mut config = edu_like();
        write32(&mut config, BAR0_OFFSET, 0xe000_0000);
        assert_eq!(config.bars()[0].mapping(), None, "decoding is off");
        config.write(COMMAND_OFFSET, &COMMAND_MEMORY_SPACE.to_le_bytes());
        assert_eq!(config.bars()[0].mapping(), Some(0xe000_0000));
        write32(&mut config, BAR0_OFFSET, 0);
        assert_eq!(config.bars()[0].mapping(), None, "address 0 is unassigned");
        write32(&mut config, BAR0_OFFSET, u32::MAX);
        assert_eq!(config.bars()[0].mapping(), None, "mid-sizing: wraps past 4 GiB");
    }

    #[test]
    fn only_the_writable_command_bits_stick() {
        let mut config = edu_like();
        config.write(COMMAND_OFFSET, &u16::MAX.to_le_bytes());
        assert_eq!(config.command(), COMMAND_WRITABLE);
        config.write(COMMAND_OFFSET, &[0]);
        assert_eq!(config.command(), COMMAND_INTERRUPT_DISABLE, "a byte write leaves bits 15:8");
    }

    #[test]
    fn status_is_read_only_except_write_1_to_clear_bits() {
        let mut config = edu_like();
        config.set_status_bits(STATUS_RECEIVED_MASTER_ABORT | STATUS_DETECTED_PARITY_ERROR, true);
        config.write(STATUS_OFFSET, &STATUS_RECEIVED_MASTER_ABORT.to_le_bytes());
        assert_eq!(config.read_u16(STATUS_OFFSET), STATUS_DETECTED_PARITY_ERROR, "one bit cleared");
        config.write(STATUS_OFFSET, &0xffffu16.to_le_bytes());
        assert_eq!(config.read_u16(STATUS_OFFSET), 0, "ones never set anything");
    }

    #[test]
    fn interrupt_line_is_read_write_and_pin_read_only() {
        let mut config = edu_like();
        config.write(INTERRUPT_LINE_OFFSET, &[0x0b, 0x04]);
        assert_eq!(config.read_u8(INTERRUPT_LINE_OFFSET), 0x0b);
        assert_eq!(config.interrupt_pin(), 1, "INTA#");
    }

    #[test]
    fn capability_list_walks_from_the_pointer_to_the_end() {
        let mut config = edu_like();
        assert_eq!(config.read_u16(STATUS_OFFSET) & STATUS_CAPABILITIES_LIST, 0, "no list yet");
        let first = config.add_vendor_capability(b"mini").unwrap();
        let second = config.add_capability(0x05, &[0; 8]).unwrap();
        let third = config.add_vendor_capability(&[]).unwrap();
        assert_ne!(config.read_u16(STATUS_OFFSET) & STATUS_CAPABILITIES_LIST, 0);

        let mut walked = Vec::new();
        let mut pointer = usize::from(config.read_u8(CAPABILITIES_POINTER_OFFSET) & !3);
        while pointer != 0 {
            assert!(pointer >= STANDARD_HEADER_SIZE && walked.len() < 48, "a sane, finite list");
            walked.push((pointer, config.read_u8(pointer + CAPABILITY_ID)));
            pointer = usize::from(config.read_u8(pointer + CAPABILITY_NEXT) & !3);
        }
        assert_eq!(walked, [(first, CAPABILITY_ID_VENDOR_SPECIFIC), (second, 0x05), (third, 0x09)]);
        assert_eq!(config.read_u8(first + CAPABILITY_VENDOR_LENGTH), 7);
        assert_eq!(config.read_u32(first).to_le_bytes(), [0x09, second as u8, 7, b'm']);
        let mut data = [0u8; 4];
        config.read(first + 4, &mut data);
        assert_eq!(&data[..3], b"ini");

        // Read-only: the guest cannot cut the list.
        config.write(CAPABILITIES_POINTER_OFFSET, &[0]);
        config.write(first + CAPABILITY_NEXT, &[0]);
        assert_eq!(usize::from(config.read_u8(CAPABILITIES_POINTER_OFFSET)), first);
        assert_eq!(usize::from(config.read_u8(first + CAPABILITY_NEXT)), second);
    }

    #[test]
    fn capabilities_that_do_not_fit_are_refused() {
        let mut config = edu_like();
        assert_eq!(config.add_capability(0x09, &[0; 200]), Err(ConfigError::CapabilityTooLarge(202)));
        config.add_capability(0x09, &[0; 190]).unwrap();
        assert!(config.add_capability(0x09, &[]).is_err(), "the space is full");
    }

    #[test]
    fn byte_word_and_dword_reads_see_the_same_bytes() {
        let config = edu_like();
        assert_eq!(config.read_u32(VENDOR_ID_OFFSET), 0x11e8_1234);
        assert_eq!(config.read_u16(DEVICE_ID_OFFSET), 0x11e8);
        assert_eq!(config.read_u8(1), 0x12);
        assert_eq!(config.read_u16(1), 0xe812, "a word in the middle of the dword");
        assert_eq!(config.read_u8(0xff), 0, "the last byte exists");
    }

    #[test]
    fn accesses_crossing_a_dword_or_the_end_are_not_cycles() {
        let mut config = edu_like();
        assert_eq!(config.read_u16(3), 0xffff);
        assert_eq!(config.read_u32(2), u32::MAX);
        assert_eq!(config.read_u32(0xfe), u32::MAX);
        assert_eq!(config.read_u8(CONFIG_SPACE_SIZE), 0xff, "past the end");
        assert_eq!(config.read_u8(usize::MAX), 0xff, "no overflow");
        config.write(usize::MAX, &[0]);
        let mut odd = [0u8; 3];
        config.read(0, &mut odd);
        assert_eq!(odd, [0xff; 3]);
        config.write(INTERRUPT_LINE_OFFSET - 1, &[0x11, 0x22]);
        assert_eq!(config.read_u8(INTERRUPT_LINE_OFFSET), 0, "dropped");
        config.write(BAR0_OFFSET, &[0; 8]);
        assert_eq!(config.read_u32(BAR0_OFFSET), 0);
    }

    #[test]
    fn bad_bar_definitions_are_refused() {
        let config = || ConfigSpace::new(1, 2, 0, 0);
        let mem32 = BarKind::Memory32 { prefetchable: false };
        let mem64 = BarKind::Memory64 { prefetchable: false };
        assert_eq!(config().with_bar(6, mem32, 4096).unwrap_err(), ConfigError::BarIndex(6));
        assert_eq!(config().with_bar(5, mem64, 4096).unwrap_err(), ConfigError::BarIndex(5));
        assert_eq!(config().with_bar(0, mem32, 3000).unwrap_err(), ConfigError::BarSize(3000));
        assert_eq!(config().with_bar(0, mem32, 8).unwrap_err(), ConfigError::BarSize(8));
        assert_eq!(config().with_bar(0, mem32, 1 << 32).unwrap_err(), ConfigError::BarSize(1 << 32));
        let taken = config().with_bar(0, mem64, 4096).unwrap();
        assert_eq!(taken.clone().with_bar(1, mem32, 4096).unwrap_err(), ConfigError::BarTaken(1));
        assert_eq!(taken.with_bar(0, mem32, 4096).unwrap_err(), ConfigError::BarTaken(0));
    }

    #[test]
    fn firmware_placement_aligns_and_keeps_the_type_bits() {
        let mut config = edu_like();
        assert!(config.set_bar_address(2, 0x2_0123_4567));
        assert_eq!(config.read_u32(BAR0_OFFSET + 8), 0x0100_0000 | BAR_MEMORY_TYPE_64 | BAR_MEMORY_PREFETCHABLE);
        assert_eq!(config.read_u32(BAR0_OFFSET + 12), 2);
        assert!(!config.set_bar_address(1, 0x1000), "BAR 1 does not exist");
        assert!(!config.set_bar_address(9, 0x1000));
    }
}
