//! The zero page: Linux's `struct boot_params`, the one thing a 64-bit kernel is handed.
//!
//! The boot loader (here: the VMM) copies the kernel's *setup header* into the zero page,
//! fills in what only the loader knows — where the command line and the initrd are, what
//! the memory map looks like — and starts the kernel with RSI pointing at it.
//!
//! The zero page is modelled as 4096 bytes with named offsets rather than a `repr(packed)`
//! struct, so each field below can be checked against the table in the documentation.
//!
//! # Resources
//! - Linux `Documentation/arch/x86/boot.rst` ("The Real-Mode Kernel Header") and
//!   `Documentation/arch/x86/zero-page.rst`; `arch/x86/include/uapi/asm/bootparam.h`.

/// Size of the zero page.
pub const ZERO_PAGE_SIZE: usize = 4096;

/// `ext_ramdisk_image`: bits 32..63 of the initrd address.
pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
/// `ext_ramdisk_size`: bits 32..63 of the initrd size.
pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
/// `ext_cmd_line_ptr`: bits 32..63 of the command-line address.
pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
/// `e820_entries`: number of entries in the E820 table.
pub const E820_ENTRIES: usize = 0x1e8;
/// `sentinel`: must be 0, or the kernel assumes a broken loader and clears fields.
pub const SENTINEL: usize = 0x1ef;
/// `setup_sects`: start of the setup header; size of the real-mode setup in 512-byte sectors.
pub const SETUP_SECTS: usize = 0x1f1;
/// `boot_flag`: 0xAA55.
pub const BOOT_FLAG: usize = 0x1fe;
/// The jump instruction whose second byte gives the end of the setup header.
pub const JUMP: usize = 0x200;
/// `header`: the magic "HdrS".
pub const HEADER: usize = 0x202;
/// `version`: boot protocol version (0x20f = 2.15).
pub const VERSION: usize = 0x206;
/// `type_of_loader`.
pub const TYPE_OF_LOADER: usize = 0x210;
/// `loadflags`.
pub const LOADFLAGS: usize = 0x211;
/// `code32_start`: where the protected-mode kernel was loaded.
pub const CODE32_START: usize = 0x214;
/// `ramdisk_image`: initrd address (low 32 bits).
pub const RAMDISK_IMAGE: usize = 0x218;
/// `ramdisk_size`: initrd size (low 32 bits).
pub const RAMDISK_SIZE: usize = 0x21c;
/// `heap_end_ptr`.
pub const HEAP_END_PTR: usize = 0x224;
/// `cmd_line_ptr`: command-line address (low 32 bits).
pub const CMD_LINE_PTR: usize = 0x228;
/// `initrd_addr_max`: highest address the initrd may end at.
pub const INITRD_ADDR_MAX: usize = 0x22c;
/// `kernel_alignment`.
pub const KERNEL_ALIGNMENT: usize = 0x230;
/// `xloadflags`.
pub const XLOADFLAGS: usize = 0x236;
/// `cmdline_size`: maximum command-line length, without the NUL.
pub const CMDLINE_SIZE: usize = 0x238;
/// `init_size`: memory the kernel needs from its load address while it initialises.
pub const INIT_SIZE: usize = 0x260;
/// `e820_table`: up to [`E820_MAX_ENTRIES`] entries of 20 bytes.
pub const E820_TABLE: usize = 0x2d0;
/// Capacity of `e820_table`.
pub const E820_MAX_ENTRIES: usize = 128;

/// The "HdrS" magic.
pub const HDRS_MAGIC: u32 = u32::from_le_bytes(*b"HdrS");
/// The boot-sector signature at `boot_flag`.
pub const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `type_of_loader` for a loader without an assigned ID.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// `loadflags` bit 0: the protected-mode code is loaded at 0x100000.
pub const LOADED_HIGH: u8 = 1 << 0;
/// `loadflags` bit 7: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 1 << 7;
/// `xloadflags` bit 0: the kernel has the 64-bit entry point at load address + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// The oldest boot protocol we load: 2.12, the first with `xloadflags`.
pub const MIN_BOOT_PROTOCOL: u16 = 0x020c;

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved, not to be used by the kernel.
pub const E820_RESERVED: u32 = 2;

/// A zero page being filled in.
pub struct ZeroPage {
    bytes: Box<[u8; ZERO_PAGE_SIZE]>,
}

impl Default for ZeroPage {
    fn default() -> Self {
        ZeroPage { bytes: Box::new([0; ZERO_PAGE_SIZE]) }
    }
}

impl ZeroPage {
    /// A zero page holding `setup_header`, the bytes from offset 0x1f1 of the kernel image.
    pub fn with_setup_header(setup_header: &[u8]) -> Self {
        let mut page = ZeroPage::default();
        let len = setup_header.len().min(ZERO_PAGE_SIZE - SETUP_SECTS);
        page.bytes[SETUP_SECTS..SETUP_SECTS + len].copy_from_slice(&setup_header[..len]);
        page
    }

    /// The raw bytes, for writing into guest memory.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..]
    }

    /// Reads a little-endian `u8`.
    pub fn u8(&self, offset: usize) -> u8 {
        self.bytes[offset]
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.bytes[offset], self.bytes[offset + 1]])
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&self, offset: usize) -> u32 {
        let b = &self.bytes[offset..offset + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Writes a `u8`.
    pub fn set_u8(&mut self, offset: usize, value: u8) {
        self.bytes[offset] = value;
    }

    /// Writes a little-endian `u16`.
    pub fn set_u16(&mut self, offset: usize, value: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }

    /// Writes a little-endian `u32`.
    pub fn set_u32(&mut self, offset: usize, value: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    // lab:begin solution stage4-zero-page "fill in the setup header fields only the loader knows: cmd_line_ptr, ramdisk_image/size (with their ext_ halves), type_of_loader, loadflags, heap_end_ptr"
    /// Records the command line's address (split into low and high halves).
    pub fn set_cmdline(&mut self, address: u64) {
        self.set_u32(CMD_LINE_PTR, address as u32);
        self.set_u32(EXT_CMD_LINE_PTR, (address >> 32) as u32);
    }

    /// Records the initrd's address and size (split into low and high halves).
    pub fn set_initrd(&mut self, address: u64, size: u64) {
        self.set_u32(RAMDISK_IMAGE, address as u32);
        self.set_u32(EXT_RAMDISK_IMAGE, (address >> 32) as u32);
        self.set_u32(RAMDISK_SIZE, size as u32);
        self.set_u32(EXT_RAMDISK_SIZE, (size >> 32) as u32);
    }

    /// Marks the page as filled by a loader without an ID, with the kernel loaded high.
    pub fn set_loader(&mut self) {
        self.set_u8(TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED);
        self.set_u8(LOADFLAGS, self.u8(LOADFLAGS) | LOADED_HIGH | CAN_USE_HEAP);
        self.set_u16(HEAP_END_PTR, 0xfe00);
        self.set_u8(SENTINEL, 0);
    }
    // lab:end

    /// Writes the E820 table; entries beyond [`E820_MAX_ENTRIES`] are dropped (the caller
    /// checks the count first).
    pub fn set_e820(&mut self, entries: &[(u64, u64, u32)]) {
        let count = entries.len().min(E820_MAX_ENTRIES);
        for (i, &(addr, size, kind)) in entries[..count].iter().enumerate() {
            let at = E820_TABLE + i * 20;
            self.bytes[at..at + 8].copy_from_slice(&addr.to_le_bytes());
            self.bytes[at + 8..at + 16].copy_from_slice(&size.to_le_bytes());
            self.set_u32(at + 16, kind);
        }
        self.set_u8(E820_ENTRIES, count as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_the_boot_protocol_tables() {
        // Documentation/arch/x86/zero-page.rst and boot.rst, in order.
        let table = [
            (EXT_RAMDISK_IMAGE, 0x0c0),
            (EXT_RAMDISK_SIZE, 0x0c4),
            (EXT_CMD_LINE_PTR, 0x0c8),
            (E820_ENTRIES, 0x1e8),
            (SENTINEL, 0x1ef),
            (SETUP_SECTS, 0x1f1),
            (BOOT_FLAG, 0x1fe),
            (HEADER, 0x202),
            (VERSION, 0x206),
            (TYPE_OF_LOADER, 0x210),
            (LOADFLAGS, 0x211),
            (CODE32_START, 0x214),
            (RAMDISK_IMAGE, 0x218),
            (RAMDISK_SIZE, 0x21c),
            (HEAP_END_PTR, 0x224),
            (CMD_LINE_PTR, 0x228),
            (INITRD_ADDR_MAX, 0x22c),
            (KERNEL_ALIGNMENT, 0x230),
            (XLOADFLAGS, 0x236),
            (CMDLINE_SIZE, 0x238),
            (INIT_SIZE, 0x260),
            (E820_TABLE, 0x2d0),
        ];
        for (offset, documented) in table {
            assert_eq!(offset, documented);
        }
        assert_eq!(E820_TABLE + E820_MAX_ENTRIES * 20, 0xcd0, "e820_table ends where eddbuf begins");
    }

    #[test]
    fn addresses_above_4_gib_use_the_ext_fields() {
        let mut page = ZeroPage::default();
        page.set_initrd(0x1_2345_6000, 0x1_0000_0001);
        page.set_cmdline(0x20000);
        assert_eq!((page.u32(RAMDISK_IMAGE), page.u32(EXT_RAMDISK_IMAGE)), (0x2345_6000, 1));
        assert_eq!((page.u32(RAMDISK_SIZE), page.u32(EXT_RAMDISK_SIZE)), (1, 1));
        assert_eq!((page.u32(CMD_LINE_PTR), page.u32(EXT_CMD_LINE_PTR)), (0x20000, 0));
    }

    #[test]
    fn e820_entries_are_20_bytes_each() {
        let mut page = ZeroPage::default();
        page.set_e820(&[(0, 0x9fc00, E820_RAM), (0x9fc00, 0x400, E820_RESERVED)]);
        assert_eq!(page.u8(E820_ENTRIES), 2);
        assert_eq!(page.u32(E820_TABLE + 20 + 8), 0x400);
        assert_eq!(page.u32(E820_TABLE + 20 + 16), E820_RESERVED);
    }

    #[test]
    fn the_loader_fields_say_who_loaded_the_kernel() {
        let mut page = ZeroPage::with_setup_header(&[0x1f; 0x70]);
        page.set_loader();
        assert_eq!(page.u8(TYPE_OF_LOADER), 0xff);
        assert_eq!(page.u8(LOADFLAGS) & (LOADED_HIGH | CAN_USE_HEAP), LOADED_HIGH | CAN_USE_HEAP);
        assert_eq!(page.u8(SETUP_SECTS), 0x1f, "the header is copied at 0x1f1");
    }
}
