// mutant: Forgets the prefetchable bit (bit 3) of the type bits.
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
    let _ = prefetchable;
    (type_bits, address_bits & !(size - 1))
}
