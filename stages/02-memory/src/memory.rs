//! Guest memory: host mmap regions, one KVM memory slot each, and GPA→HVA translation.
//!
//! The guest sees guest-physical addresses (GPAs). Each [`MemoryRegion`] is an anonymous
//! mmap in our own (host) address space; KVM maps it into the guest through a memory slot.
//! Translating a GPA to a host virtual address (HVA) is therefore a table lookup: find the
//! region containing the GPA, add the offset to the region's host address.
//!
//! Every access is bounds-checked: a range that is not entirely inside one region is refused
//! with [`MemoryError`], never a panic, because the addresses usually come from the guest.
//!
//! # Resources
//! - `KVM_SET_USER_MEMORY_REGION`: <https://docs.kernel.org/virt/kvm/api.html>.
//! - rust-vmm's vm-memory (`GuestAddress`, `Bytes`), which this imitates in miniature.

use std::fmt;
use std::io;

/// A guest-physical address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestAddress(pub u64);

impl GuestAddress {
    /// `self + offset`, or `None` on overflow (guest-supplied numbers can be anything).
    pub fn checked_add(self, offset: u64) -> Option<GuestAddress> {
        self.0.checked_add(offset).map(GuestAddress)
    }
}

impl fmt::Display for GuestAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Errors from guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// mmap refused to give us the memory.
    #[error("cannot map {size} bytes of guest memory: {source}")]
    Mmap {
        /// The size asked for.
        size: u64,
        /// What mmap said.
        source: io::Error,
    },
    /// Two regions overlap, are out of order, or one is empty or unaligned.
    #[error("bad memory layout: region at {0} is empty, unaligned, or overlaps the previous one")]
    BadLayout(GuestAddress),
    /// A range is not entirely inside one region.
    #[error("guest address range {addr}+{len:#x} is not inside guest RAM")]
    OutOfRange {
        /// Start of the range.
        addr: GuestAddress,
        /// Its length.
        len: usize,
    },
}

/// Types that can be copied to and from guest memory as raw bytes.
///
/// # Safety
/// Implementors must be plain data: no padding bytes, and every bit pattern a valid value.
pub unsafe trait ByteValued: Copy + Default {}

// SAFETY: primitive integers have no padding and every bit pattern is a valid value.
unsafe impl ByteValued for u8 {}
// SAFETY: as above.
unsafe impl ByteValued for u16 {}
// SAFETY: as above.
unsafe impl ByteValued for u32 {}
// SAFETY: as above.
unsafe impl ByteValued for u64 {}
// SAFETY: an array of plain data is plain data.
unsafe impl<T: ByteValued, const N: usize> ByteValued for [T; N] where [T; N]: Default {}

/// One contiguous piece of guest RAM, backed by an anonymous host mapping.
pub struct MemoryRegion {
    start: GuestAddress,
    size: u64,
    host_address: *mut u8,
}

// SAFETY: the mapping is plain memory owned by this region; all access goes through bounds-checked
// copies, and the guest itself writes it concurrently anyway, so no Rust reference ever points into it.
unsafe impl Send for MemoryRegion {}
// SAFETY: as above; `&MemoryRegion` only allows copies in and out of the mapping.
unsafe impl Sync for MemoryRegion {}

impl MemoryRegion {
    fn new(start: GuestAddress, size: u64) -> Result<Self, MemoryError> {
        let mmap_error = |source| MemoryError::Mmap { size, source };
        let len = usize::try_from(size).map_err(|_| mmap_error(io::ErrorKind::OutOfMemory.into()))?;
        // SAFETY: an anonymous shared mapping with no address hint; the result is checked below.
        // NORESERVE: pages cost host memory only when the guest touches them.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(mmap_error(io::Error::last_os_error()));
        }
        Ok(MemoryRegion { start, size, host_address: ptr.cast() })
    }

    /// First guest-physical address of the region.
    pub fn start(&self) -> GuestAddress {
        self.start
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// One past the last guest-physical address.
    pub fn end(&self) -> GuestAddress {
        GuestAddress(self.start.0 + self.size)
    }

    /// The host virtual address backing the region's first byte.
    pub fn host_address(&self) -> u64 {
        self.host_address as u64
    }

    // qa:begin stage2-host-range
    /// Host pointer for `[addr, addr + len)` if that range lies inside this region.
    fn host_range(&self, addr: GuestAddress, len: usize) -> Option<*mut u8> {
        let offset = addr.0.checked_sub(self.start.0)?;
        let end = offset.checked_add(len as u64)?;
        // SAFETY: offset + len <= size, so the pointer stays inside the mapping.
        (end <= self.size).then(|| unsafe { self.host_address.add(offset as usize) })
    }
    // qa:end stage2-host-range
}

impl Drop for MemoryRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`; nothing refers to it any more.
        unsafe { libc::munmap(self.host_address.cast(), self.size as usize) };
    }
}

/// All of guest RAM: a sorted list of non-overlapping regions.
pub struct GuestMemory {
    regions: Vec<MemoryRegion>,
}

impl GuestMemory {
    /// Maps one region per `(start, size)` pair; pairs must be page-aligned, sorted and disjoint.
    ///
    /// # Errors
    /// [`MemoryError::BadLayout`] for a bad list, [`MemoryError::Mmap`] when the host refuses.
    pub fn new(layout: &[(u64, u64)]) -> Result<Self, MemoryError> {
        const PAGE: u64 = 4096;
        let mut regions: Vec<MemoryRegion> = Vec::with_capacity(layout.len());
        for &(start, size) in layout {
            let previous_end = regions.last().map_or(0, |r| r.end().0);
            let aligned = start % PAGE == 0 && size % PAGE == 0;
            if size == 0 || !aligned || start < previous_end || start.checked_add(size).is_none() {
                return Err(MemoryError::BadLayout(GuestAddress(start)));
            }
            regions.push(MemoryRegion::new(GuestAddress(start), size)?);
        }
        Ok(GuestMemory { regions })
    }

    /// The regions, in address order (region `i` is KVM memory slot `i`).
    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions
    }

    /// Total RAM in bytes.
    pub fn total_size(&self) -> u64 {
        self.regions.iter().map(MemoryRegion::size).sum()
    }

    /// The region containing `addr`, if any.
    pub fn find_region(&self, addr: GuestAddress) -> Option<&MemoryRegion> {
        // Regions are sorted: the candidate is the last one starting at or before `addr`.
        let index = self.regions.partition_point(|r| r.start <= addr).checked_sub(1)?;
        let region = &self.regions[index];
        (addr < region.end()).then_some(region)
    }

    // lab:begin solution stage2-translate "find the region that holds the whole range and add the offset to its host address; refuse anything else with MemoryError::OutOfRange"
    /// GPA→HVA: the host address of `[addr, addr + len)`, which must lie inside one region.
    ///
    /// # Errors
    /// [`MemoryError::OutOfRange`] when any byte of the range is not guest RAM.
    pub fn translate(&self, addr: GuestAddress, len: usize) -> Result<*mut u8, MemoryError> {
        self.find_region(addr)
            .and_then(|region| region.host_range(addr, len))
            .ok_or(MemoryError::OutOfRange { addr, len })
    }
    // lab:end

    /// Whether every byte of `[addr, addr + len)` is guest RAM in a single region.
    pub fn contains_range(&self, addr: GuestAddress, len: usize) -> bool {
        self.translate(addr, len).is_ok()
    }

    /// Copies guest memory at `addr` into `buf`.
    ///
    /// # Errors
    /// [`MemoryError::OutOfRange`] if the range is not inside one region; `buf` is untouched then.
    pub fn read(&self, addr: GuestAddress, buf: &mut [u8]) -> Result<(), MemoryError> {
        let src = self.translate(addr, buf.len())?;
        // SAFETY: `translate` checked that `buf.len()` bytes at `src` are inside a live mapping;
        // `buf` is our own memory, so the two cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `buf` into guest memory at `addr`.
    ///
    /// # Errors
    /// [`MemoryError::OutOfRange`] if the range is not inside one region; nothing is written then.
    pub fn write(&self, addr: GuestAddress, buf: &[u8]) -> Result<(), MemoryError> {
        let dst = self.translate(addr, buf.len())?;
        // SAFETY: as in `read`, with the copy going the other way.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, buf.len()) };
        Ok(())
    }

    /// Reads a plain-data value (little-endian, as x86 stores it) from `addr`.
    pub fn read_obj<T: ByteValued>(&self, addr: GuestAddress) -> Result<T, MemoryError> {
        let mut value = T::default();
        // SAFETY: `T: ByteValued` has no padding and accepts any bit pattern.
        let bytes = unsafe { std::slice::from_raw_parts_mut((&mut value as *mut T).cast::<u8>(), size_of::<T>()) };
        self.read(addr, bytes)?;
        Ok(value)
    }

    /// Writes a plain-data value to `addr`.
    pub fn write_obj<T: ByteValued>(&self, addr: GuestAddress, value: T) -> Result<(), MemoryError> {
        // SAFETY: `T: ByteValued` has no padding, so all its bytes are initialised.
        let bytes = unsafe { std::slice::from_raw_parts((&value as *const T).cast::<u8>(), size_of::<T>()) };
        self.write(addr, bytes)
    }

    /// Fills `[addr, addr + len)` with zeroes.
    pub fn zero(&self, addr: GuestAddress, len: usize) -> Result<(), MemoryError> {
        let dst = self.translate(addr, len)?;
        // SAFETY: `translate` checked the range.
        unsafe { std::ptr::write_bytes(dst, 0, len) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout;

    fn two_regions() -> GuestMemory {
        GuestMemory::new(&[(0, 0x1000), (0x10_0000, 0x2000)]).unwrap()
    }

    #[test]
    fn translation_adds_the_offset_to_the_region_base() {
        let mem = two_regions();
        let hva = mem.translate(GuestAddress(0x10_0123), 1).unwrap() as u64;
        assert_eq!(hva, mem.regions()[1].host_address() + 0x123);
    }

    #[test]
    fn ranges_outside_or_across_regions_are_refused() {
        let mem = two_regions();
        for (addr, len) in [(0x1000, 1), (0xfff, 2), (0x10_1fff, 2), (0x5000, 1), (u64::MAX, 1)] {
            assert!(
                matches!(mem.translate(GuestAddress(addr), len), Err(MemoryError::OutOfRange { .. })),
                "{addr:#x}+{len}"
            );
        }
        let mut buf = [0u8; 4];
        assert!(mem.read(GuestAddress(0xffe), &mut buf).is_err());
        assert!(mem.write(GuestAddress(0x10_1ffe), &buf).is_err());
    }

    #[test]
    fn values_written_are_read_back_in_every_region() {
        let mem = two_regions();
        mem.write_obj(GuestAddress(0xff8), 0x1122_3344_5566_7788u64).unwrap();
        mem.write_obj(GuestAddress(0x10_0000), 0xabcdu16).unwrap();
        assert_eq!(mem.read_obj::<u64>(GuestAddress(0xff8)).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0xff8)).unwrap(), 0x88, "little-endian");
        assert_eq!(mem.read_obj::<u16>(GuestAddress(0x10_0000)).unwrap(), 0xabcd);
    }

    #[test]
    fn bad_layouts_are_refused() {
        for layout in [&[(0, 0)][..], &[(0, 0x1000), (0x800, 0x1000)], &[(0x10, 0x1000)]] {
            assert!(matches!(GuestMemory::new(layout), Err(MemoryError::BadLayout(_))));
        }
    }

    #[test]
    fn memory_above_4_gib_is_reachable() {
        let mem = GuestMemory::new(&layout::ram_regions(layout::MMIO_HOLE_START + 0x10_0000)).unwrap();
        assert_eq!(mem.regions().len(), 3);
        let high = GuestAddress(layout::HIGH_RAM_START + 0xff000);
        mem.write_obj(high, 7u32).unwrap();
        assert_eq!(mem.read_obj::<u32>(high).unwrap(), 7);
        assert!(mem.read_obj::<u32>(GuestAddress(layout::MMIO_HOLE_START)).is_err());
    }
}
