// mutant: Checks only that the first and the last byte of the range are guest RAM, so a range that spans the hole between two regions is accepted.
    /// GPA→HVA: the host address of `[addr, addr + len)`, which must lie inside one region.
    ///
    /// # Errors
    /// [`MemoryError::OutOfRange`] when any byte of the range is not guest RAM.
    pub fn translate(&self, addr: GuestAddress, len: usize) -> Result<*mut u8, MemoryError> {
        let out_of_range = MemoryError::OutOfRange { addr, len };
        let last = GuestAddress(addr.0.saturating_add(len.saturating_sub(1) as u64));
        if self.find_region(last).is_none() {
            return Err(out_of_range);
        }
        self.find_region(addr).and_then(|region| region.host_range(addr, 0)).ok_or(out_of_range)
    }
