// mutant: Ignores the length: finds the region that holds the first byte and accepts a range that runs past the end of that region.
    /// GPA→HVA: the host address of `[addr, addr + len)`, which must lie inside one region.
    ///
    /// # Errors
    /// [`MemoryError::OutOfRange`] when any byte of the range is not guest RAM.
    pub fn translate(&self, addr: GuestAddress, len: usize) -> Result<*mut u8, MemoryError> {
        self.find_region(addr)
            .and_then(|region| region.host_range(addr, 0))
            .ok_or(MemoryError::OutOfRange { addr, len })
    }
