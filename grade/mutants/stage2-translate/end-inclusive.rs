// mutant: Treats the end of the range as inclusive (checks addr + len - 1 against the region's size), so a range may end one byte past its region.
    /// GPA→HVA: the host address of `[addr, addr + len)`, which must lie inside one region.
    ///
    /// # Errors
    /// [`MemoryError::OutOfRange`] when any byte of the range is not guest RAM.
    pub fn translate(&self, addr: GuestAddress, len: usize) -> Result<*mut u8, MemoryError> {
        self.find_region(addr)
            .and_then(|region| region.host_range(addr, len.saturating_sub(1)))
            .ok_or(MemoryError::OutOfRange { addr, len })
    }
