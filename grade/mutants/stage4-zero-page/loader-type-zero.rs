// mutant: Leaves type_of_loader at 0 (LILO's ID) instead of 0xff, the value for a loader without an assigned ID.
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
        self.set_u8(TYPE_OF_LOADER, 0);
        self.set_u8(LOADFLAGS, self.u8(LOADFLAGS) | LOADED_HIGH | CAN_USE_HEAP);
        self.set_u16(HEAP_END_PTR, 0xfe00);
        self.set_u8(SENTINEL, 0);
    }
