//! Guest RAM for the targets, filled with a known pattern, so that after an operation every byte a
//! device changed can be found and checked against the ranges it was allowed to write.
//!
//! "The device did not write outside what the guest gave it" is only testable if one can see every
//! write. [`TestRam`] makes that cheap: each byte starts as a function of its address, a
//! [`Snapshot`] keeps the bytes before an operation, and [`TestRam::changed_since`] lists the runs
//! of bytes that differ after it. [`RangeSet`] holds what the device was allowed to touch, and
//! [`assert_writes_within`] compares the two.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use stage02::memory::{GuestAddress, GuestMemory};

/// The byte a fresh [`TestRam`] holds at `address`: a hash of the address, so that a device that
/// copies guest bytes from one place to another is seen too, not only one that writes constants.
pub fn pattern_byte(address: u64) -> u8 {
    (address.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

/// Reads guest memory as it is now ([`GuestMemory`]) or as it was ([`Snapshot`]).
pub trait MemoryView {
    /// Copies `buf.len()` bytes at `address` into `buf`; false if any of them is not RAM.
    fn read_bytes(&self, address: u64, buf: &mut [u8]) -> bool;

    /// A little-endian `u16` at `address`.
    fn u16_at(&self, address: u64) -> Option<u16> {
        let mut bytes = [0; 2];
        self.read_bytes(address, &mut bytes).then(|| u16::from_le_bytes(bytes))
    }

    /// A little-endian `u32` at `address`.
    fn u32_at(&self, address: u64) -> Option<u32> {
        let mut bytes = [0; 4];
        self.read_bytes(address, &mut bytes).then(|| u32::from_le_bytes(bytes))
    }

    /// A little-endian `u64` at `address`.
    fn u64_at(&self, address: u64) -> Option<u64> {
        let mut bytes = [0; 8];
        self.read_bytes(address, &mut bytes).then(|| u64::from_le_bytes(bytes))
    }
}

impl MemoryView for GuestMemory {
    fn read_bytes(&self, address: u64, buf: &mut [u8]) -> bool {
        self.read(GuestAddress(address), buf).is_ok()
    }
}

/// Guest memory in the layout a target chose, every byte at its [`pattern_byte`].
pub struct TestRam {
    memory: Arc<GuestMemory>,
    /// The pattern of each region, to restore it between inputs.
    pristine: Vec<Vec<u8>>,
}

impl TestRam {
    /// Maps `layout` (page-aligned `(start, size)` pairs, as [`GuestMemory::new`] takes) and fills
    /// it with the pattern.
    ///
    /// # Panics
    /// If the layout is refused: the targets' layouts are constants.
    pub fn new(layout: &[(u64, u64)]) -> TestRam {
        let memory = Arc::new(GuestMemory::new(layout).expect("the target's RAM layout is valid"));
        let pristine = memory
            .regions()
            .iter()
            .map(|region| (region.start().0..region.end().0).map(pattern_byte).collect())
            .collect();
        let ram = TestRam { memory, pristine };
        ram.reset();
        ram
    }

    /// The memory, to hand to a device.
    pub fn memory(&self) -> &Arc<GuestMemory> {
        &self.memory
    }

    /// Puts the pattern back everywhere: the state before the next input. Only the blocks that
    /// differ are written, so an input that changed little costs little.
    pub fn reset(&self) {
        for (index, pristine) in self.pristine.iter().enumerate() {
            let start = self.memory.regions()[index].start().0;
            let dirty: Vec<usize> = {
                let now = self.region_bytes(index);
                now.chunks(BLOCK)
                    .zip(pristine.chunks(BLOCK))
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, _)| i)
                    .collect()
            };
            for block in dirty {
                let range = block * BLOCK..((block + 1) * BLOCK).min(pristine.len());
                let at = GuestAddress(start + range.start as u64);
                self.memory.write(at, &pristine[range]).expect("a region is inside guest memory");
            }
        }
    }

    /// The bytes of region `index` as they are now, read in place.
    ///
    /// The slice must be dropped before anything writes guest memory again: callers only compare.
    fn region_bytes(&self, index: usize) -> &[u8] {
        let region = &self.memory.regions()[index];
        let len = region.size() as usize;
        let host = self.memory.translate(region.start(), len).expect("a region is inside guest memory");
        // SAFETY: `translate` checked that the whole region is one live mapping, owned by
        // `self.memory`, which outlives the slice. Nothing writes it while the slice exists: the
        // targets run devices on this thread only, and the callers drop the slice before the next
        // write (the edu card's worker thread never touches guest RAM).
        unsafe { std::slice::from_raw_parts(host, len) }
    }

    /// Whether `[address, address + len)` lies inside one region (as a device must check).
    pub fn contains(&self, address: u64, len: u64) -> bool {
        usize::try_from(len).is_ok_and(|len| self.memory.contains_range(GuestAddress(address), len))
    }

    /// The bytes of every region now.
    pub fn snapshot(&self) -> Snapshot {
        let regions = (0..self.pristine.len())
            .map(|index| (self.memory.regions()[index].start().0, self.region_bytes(index).to_vec()))
            .collect();
        Snapshot { regions }
    }

    /// The runs of bytes that differ from `before`, in address order.
    pub fn changed_since(&self, before: &Snapshot) -> Vec<Range<u64>> {
        let olds = before.regions.iter().map(|(_, bytes)| bytes.as_slice());
        self.changed_from(olds)
    }

    /// The runs of bytes that differ from the pattern: everything changed since [`TestRam::reset`].
    pub fn changed_since_reset(&self) -> Vec<Range<u64>> {
        self.changed_from(self.pristine.iter().map(Vec::as_slice))
    }

    fn changed_from<'a>(&self, olds: impl Iterator<Item = &'a [u8]>) -> Vec<Range<u64>> {
        let mut changed = Vec::new();
        for (index, old) in olds.enumerate() {
            let start = self.memory.regions()[index].start().0;
            let runs = differences(old, self.region_bytes(index));
            changed.extend(runs.into_iter().map(|r| start + r.start as u64..start + r.end as u64));
        }
        changed
    }
}

/// Bytes compared at a time before looking at single bytes: most blocks match.
const BLOCK: usize = 4096;

/// The runs of indices where `a` and `b` differ.
fn differences(a: &[u8], b: &[u8]) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (block, (x, y)) in a.chunks(BLOCK).zip(b.chunks(BLOCK)).enumerate() {
        if x == y {
            continue;
        }
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            if p == q {
                continue;
            }
            let at = block * BLOCK + i;
            match runs.last_mut() {
                Some(run) if run.end == at => run.end += 1,
                _ => runs.push(at..at + 1),
            }
        }
    }
    runs
}

/// Guest memory as it was at one moment.
pub struct Snapshot {
    regions: Vec<(u64, Vec<u8>)>,
}

impl MemoryView for Snapshot {
    fn read_bytes(&self, address: u64, buf: &mut [u8]) -> bool {
        for (start, bytes) in &self.regions {
            let Some(offset) = address.checked_sub(*start) else { continue };
            let Some(end) = offset.checked_add(buf.len() as u64) else { continue };
            if end <= bytes.len() as u64 {
                buf.copy_from_slice(&bytes[offset as usize..end as usize]);
                return true;
            }
        }
        false
    }
}

/// A set of guest address ranges: what a device may write.
#[derive(Debug, Default, Clone)]
pub struct RangeSet(Vec<Range<u64>>);

impl RangeSet {
    /// Adds `[start, start + len)`, cut at the top of the address space.
    pub fn add(&mut self, start: u64, len: u64) {
        if len > 0 {
            self.0.push(start..start.saturating_add(len));
        }
    }

    /// Adds every range of `other`.
    pub fn extend(&mut self, other: &RangeSet) {
        self.0.extend(other.0.iter().cloned());
    }

    /// Whether every address of `range` is in the set.
    pub fn covers(&self, range: &Range<u64>) -> bool {
        let mut sorted = self.0.clone();
        sorted.sort_by_key(|r| r.start);
        let mut reached = range.start;
        for r in sorted {
            if r.start > reached {
                break;
            }
            reached = reached.max(r.end);
            if reached >= range.end {
                return true;
            }
        }
        range.is_empty()
    }

    /// Whether any address of `range` is in the set.
    pub fn overlaps(&self, range: &Range<u64>) -> bool {
        self.0.iter().any(|r| r.start < range.end && range.start < r.end)
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sorted = self.0.clone();
        sorted.sort_by_key(|r| r.start);
        let shown: Vec<String> = sorted.iter().take(16).map(|r| format!("{:#x}..{:#x}", r.start, r.end)).collect();
        let more = if sorted.len() > 16 { ", ..." } else { "" };
        write!(f, "[{}{more}]", shown.join(", "))
    }
}

/// Panics, naming `what` did it, if a run in `changed` is not entirely inside `allowed`.
pub fn assert_writes_within(changed: &[Range<u64>], allowed: &RangeSet, what: &dyn Fn() -> String) {
    if let Some(stray) = changed.iter().find(|run| !allowed.covers(run)) {
        panic!(
            "{} wrote guest memory at {:#x}..{:#x}, outside everything it may write: {allowed}",
            what(),
            stray.start,
            stray.end
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_found_and_judged_against_the_allowed_ranges() {
        let ram = TestRam::new(&[(0, 0x2000), (0x10_0000, 0x1000)]);
        let before = ram.snapshot();
        ram.memory().write(GuestAddress(0x10_0010), &[!pattern_byte(0x10_0010), !pattern_byte(0x10_0011)]).unwrap();
        let changed = ram.changed_since(&before);
        assert_eq!(changed, vec![0x10_0010..0x10_0012]);
        let mut allowed = RangeSet::default();
        allowed.add(0x10_0000, 0x11);
        assert!(std::panic::catch_unwind(|| assert_writes_within(&changed, &allowed, &|| "test".into())).is_err());
        allowed.add(0x10_0011, 1);
        assert_writes_within(&changed, &allowed, &|| "test".into());
        assert_eq!(
            before.u16_at(0x10_0010),
            Some(u16::from_le_bytes([pattern_byte(0x10_0010), pattern_byte(0x10_0011)]))
        );
        ram.reset();
        assert!(ram.changed_since_reset().is_empty());
    }
}
