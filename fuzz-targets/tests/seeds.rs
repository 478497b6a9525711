//! The seed corpus of the structured targets, written out as the `arbitrary` crate reads it.
//!
//! A seed is a short scenario that a driver would really play (a Linux-like probe of the UART,
//! a virtio-blk handshake and a few requests, a DMA round trip on edu, BAR sizing), so that both
//! libFuzzer and the bounded test start from deep states rather than from random bytes. The
//! kernel and TOML seeds are real files and need no encoding.
//!
//! `arbitrary`'s format (1.x): integers little-endian from the front; `bool` the low bit of a
//! byte; an enum variant a `u32` scaled onto the variants; `Option` a `bool` then the value; a
//! `Vec` each element after a "more" byte, then a 0 (the last, whole-input `Vec` needs no 0).
//!
//! `FUZZ_WRITE_SEEDS=1 cargo test -p fuzz-targets --test seeds` rewrites the files; otherwise the
//! test checks that the committed ones are these, and that each decodes to the steps it names.

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use fuzz_targets::edu::EduInput;
use fuzz_targets::pci::PciOp;
use fuzz_targets::serial::SerialOp;
use fuzz_targets::virtio_mmio::MmioInput;
use fuzz_targets::virtqueue::VirtqueueInput;

/// Writes values in `arbitrary`'s format.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    /// Variant `i` of an enum of `n`: the smallest `u32` that `(x * n) >> 32` maps to `i`.
    fn variant(&mut self, i: u32, n: u32) -> &mut Self {
        let x = (u64::from(i) << 32).div_ceil(u64::from(n));
        self.u32(x as u32)
    }
    fn more(&mut self) -> &mut Self {
        self.u8(1)
    }
    fn end(&mut self) -> &mut Self {
        self.u8(0)
    }
    fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.more().u8(b);
        }
        self.end()
    }
    /// `virtio_checks::Addr`: Low(offset) or High(offset).
    fn low(&mut self, offset: u16) -> &mut Self {
        self.variant(0, 5).u16(offset)
    }
    fn high(&mut self, offset: u16) -> &mut Self {
        self.variant(1, 5).u16(offset)
    }
}

// Serial: Read, Write, WideRead, WideWrite, Input, PolitInput, Drain.
fn serial_write(e: &mut Enc, offset: u8, value: u8) {
    e.more().variant(1, 7).u8(offset).u8(value);
}
fn serial_read(e: &mut Enc, offset: u8) {
    e.more().variant(0, 7).u8(offset);
}
fn serial_input(e: &mut Enc, bytes: &[u8], polite: bool) {
    e.more().variant(if polite { 5 } else { 4 }, 7).bytes(bytes);
}
fn serial_drain(e: &mut Enc) {
    e.more().variant(6, 7);
}

fn serial_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // Linux's 8250 probe and startup, input, output, loopback.
    let mut linux = Enc::default();
    for (offset, value) in [(3, 0x80), (0, 1), (1, 0), (3, 0x03), (2, 0xc7), (4, 0x0b), (1, 0x0f)] {
        serial_write(&mut linux, offset, value);
    }
    serial_read(&mut linux, 2);
    serial_read(&mut linux, 5);
    serial_input(&mut linux, b"ls -l\n", true);
    serial_read(&mut linux, 2);
    serial_read(&mut linux, 0);
    serial_drain(&mut linux);
    serial_write(&mut linux, 0, b'A');
    serial_read(&mut linux, 2);
    serial_write(&mut linux, 4, 0x1f);
    serial_write(&mut linux, 0, b'x');
    serial_read(&mut linux, 6);
    serial_drain(&mut linux);
    // Overruns: character mode, then a full FIFO.
    let mut overrun = Enc::default();
    serial_input(&mut overrun, b"abc", false);
    serial_read(&mut overrun, 5);
    serial_read(&mut overrun, 0);
    serial_write(&mut overrun, 2, 0x01);
    serial_input(&mut overrun, &[b'z'; 70], false);
    serial_write(&mut overrun, 1, 0x05);
    serial_read(&mut overrun, 2);
    serial_read(&mut overrun, 5);
    serial_drain(&mut overrun);
    vec![("linux-startup", linux.0), ("overrun", overrun.0)]
}

const NEXT: u8 = 1;
const WRITE: u8 = 2;
const INDIRECT: u8 = 4;

/// `DescSpec`: addr, len (Small, Sectors, Header, Status, Table, Raw), flags, next.
fn desc(e: &mut Enc, addr: u16, len: (u32, u8), flags: u8, next: u8) {
    e.more().low(addr).variant(len.0, 6);
    if len.0 <= 1 || len.0 == 4 {
        e.u8(len.1);
    }
    e.u8(flags).u8(next);
}
const HEADER: (u32, u8) = (2, 0);
const STATUS: (u32, u8) = (3, 0);
fn sectors(n: u8) -> (u32, u8) {
    (1, n)
}

/// `HeaderSpec`: at, type (In, Out, Flush, GetId, Raw), sector (Small, FromEnd, Raw).
fn header(e: &mut Enc, at: u16, request_type: u32, sector: (u32, u8)) {
    e.more().low(at).variant(request_type, 5).variant(sector.0, 3).u8(sector.1);
}

fn virtqueue_seed(read_only: bool, past_end: bool) -> Vec<u8> {
    let mut e = Enc::default();
    e.variant(0, 2).u8(3); // size 8
    e.bool(true).bool(false).bool(read_only);
    e.low(0x1000).low(0x2000).low(0x3000).u16(0);
    // Descriptors: IN (0-2), OUT (3-5), an indirect IN (6), GET_ID (7, then 5's status... own).
    desc(&mut e, 0x4000, HEADER, NEXT, 1);
    desc(&mut e, 0x5000, sectors(2), NEXT | WRITE, 2);
    desc(&mut e, 0x6000, STATUS, WRITE, 0);
    desc(&mut e, 0x4010, HEADER, NEXT, 4);
    desc(&mut e, 0x7000, sectors(1), NEXT, 5);
    desc(&mut e, 0x6001, STATUS, WRITE, 0);
    e.more().high(0).variant(4, 6).u8(3).u8(INDIRECT).u8(0);
    desc(&mut e, 0x4020, HEADER, NEXT, 2);
    e.end();
    // The indirect table, in the high region: header, data, status.
    e.more().high(0);
    desc(&mut e, 0x4030, HEADER, NEXT, 1);
    desc(&mut e, 0x9000, sectors(1), NEXT | WRITE, 2);
    desc(&mut e, 0x6002, STATUS, WRITE, 0);
    e.end().end();
    header(&mut e, 0x4000, 0, (0, 3));
    header(&mut e, 0x4010, 1, if past_end { (1, 0) } else { (1, 1) });
    header(&mut e, 0x4030, 0, (1, 1));
    header(&mut e, 0x4020, 3, (0, 0));
    e.end();
    // Two notifications: three chains, then the first again.
    e.more().bytes(&[0, 3, 6]).bool(false).end();
    e.more().bytes(&[0]).bool(false).end();
    e.end();
    e.0
}

// MmioOp: Read, Write, Negotiate, SetupQueue, DriverOk, Request, Poke; Register: Known, Config, Raw.
fn mmio_seed(read_only: bool, honest: bool) -> Vec<u8> {
    let mut e = Enc::default();
    e.bool(read_only);
    e.more().variant(2, 7).u64(u64::MAX).bool(honest);
    e.more().variant(3, 7).u8(0).variant(0, 2).u8(4).low(0x1000).low(0x2000).low(0x3000);
    e.more().variant(4, 7);
    for (request_type, sector, sectors, at) in
        [(0, (0u32, 0u8), 2u8, 0x8000u16), (1, (0, 4), 1, 0x9000), (1, (1, 0), 1, 0xa000), (3, (0, 0), 0, 0xb000)]
    {
        e.more().variant(5, 7).variant(request_type, 5).variant(sector.0, 3).u8(sector.1).u8(sectors).low(at);
    }
    e.more().variant(0, 7).variant(0, 3).u8(13).variant(2, 4); // read InterruptStatus
    e.more().variant(1, 7).variant(0, 3).u8(14).variant(2, 4).u64(1); // acknowledge
    e.more().variant(0, 7).variant(1, 3).u8(0).variant(3, 4); // capacity, 8 bytes
    e.more().variant(1, 7).variant(0, 3).u8(15).variant(2, 4).u64(0); // reset
    e.end();
    e.0
}

// EduOp: Read, Write, Dma, Config, Poke; Register: Known, Raw; CardAddr: Buffer, Raw; Count: Small, Raw.
fn edu_write(e: &mut Enc, register: u8, value: u64) {
    e.more().variant(1, 5).variant(0, 2).u8(register).u8(2).u8(0).u64(value);
}
fn edu_dma(e: &mut Enc, to_ram: bool, ram_low: u16, card: u16, count: u16) {
    e.more().variant(2, 5).bool(to_ram).low(ram_low).variant(0, 2).u16(card).variant(0, 2).u16(count).bool(true);
}

fn edu_seed(bus_master: bool, mask_bits: Option<u8>) -> Vec<u8> {
    let mut e = Enc::default();
    match mask_bits {
        Some(bits) => e.bool(true).u8(bits),
        None => e.bool(false),
    };
    e.more().variant(3, 5).bool(false).u32(if bus_master { 0x6 } else { 0x2 });
    e.more().variant(4, 5).low(0x100).bytes(b"hello, edu");
    edu_dma(&mut e, false, 0x100, 16, 10);
    edu_write(&mut e, 5, 10); // CRC-32 of the 10 bytes
    edu_dma(&mut e, true, 0x2000, 16, 10);
    edu_dma(&mut e, true, 0xfff8, 16, 64); // across the end of the low region
    edu_dma(&mut e, false, 0x100, 4096 + 10, 32); // past the buffer's end
    edu_write(&mut e, 7, 0x1); // raise
    edu_write(&mut e, 8, 0x101); // acknowledge
    edu_write(&mut e, 1, 0x1234_5678); // liveness
    edu_write(&mut e, 2, 10); // factorial
    e.more().variant(0, 5).variant(0, 2).u8(2).u8(2).u8(0);
    e.end();
    e.0
}

// PciOp: Select, SelectRaw, ReadData, WriteData, Port, SizeBar, MoveBar, Command, Mmio.
fn pci_select(e: &mut Enc, device: u8, register: u8) {
    e.more().variant(0, 9).u8(0).bool(false).u8(device).u8(0).u8(register).bool(true);
}
fn pci_read(e: &mut Enc) {
    e.more().variant(2, 9).u8(0).variant(2, 3);
}

fn pci_seed() -> Vec<u8> {
    let mut e = Enc::default();
    e.more().variant(1, 9).u32(0x8000_0000); // pci_check_type1
    e.more().variant(4, 9).u8(0).u8(3).bool(false).u32(0);
    for device in [0, 1, 2, 3] {
        pci_select(&mut e, device, 0);
        pci_read(&mut e);
    }
    for (device, bar) in [(1, 0), (1, 1), (2, 0), (2, 2), (2, 3)] {
        e.more().variant(5, 9).u8(device).u8(bar);
    }
    e.more().variant(6, 9).u8(1).u8(0).u32(0xe800_0000);
    e.more().variant(8, 9).u8(1).u8(0).u32(0).u8(2).bool(false).u64(0);
    e.more().variant(7, 9).u8(1).u16(0);
    e.more().variant(7, 9).u8(1).u16(0x6);
    e.more().variant(6, 9).u8(2).u8(2).u32(0xe810_000c);
    e.more().variant(6, 9).u8(2).u8(3).u32(1);
    e.more().variant(8, 9).u8(2).u8(2).u32(0x10).u8(2).bool(true).u64(7);
    e.more().variant(6, 9).u8(1).u8(0).u32(0xfec0_0000); // onto the IO-APIC
    e.0
}

/// The structured seeds: (target, file name, bytes, a step each must decode to).
fn structured_seeds() -> Vec<(&'static str, String, Vec<u8>, &'static str)> {
    let mut seeds = Vec::new();
    for (name, bytes) in serial_seeds() {
        seeds.push(("serial", name.to_string(), bytes, "Drain"));
    }
    for (name, read_only, past_end) in
        [("requests", false, false), ("read-only", true, false), ("past-end", false, true)]
    {
        seeds.push(("virtqueue", name.to_string(), virtqueue_seed(read_only, past_end), "Notification"));
    }
    for (name, read_only, honest) in
        [("handshake-and-requests", false, true), ("read-only", true, true), ("greedy-driver", false, false)]
    {
        seeds.push(("virtio_mmio", name.to_string(), mmio_seed(read_only, honest), "Request"));
    }
    for (name, bus_master, mask) in
        [("dma-round-trip", true, None), ("no-bus-master", false, None), ("narrow-mask", true, Some(12))]
    {
        seeds.push(("edu", name.to_string(), edu_seed(bus_master, mask), "Dma"));
    }
    seeds.push(("pci", "probe-and-size".to_string(), pci_seed(), "SizeBar"));
    seeds.push(("kernel_loader", "bzimage".to_string(), bzimage(), "kernel"));
    seeds.push(("kernel_loader", "elf".to_string(), elf(), "kernel"));
    seeds
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// The input as the target decodes it (a whole-input `Vec`, or one value).
fn decoded(target: &str, bytes: &[u8]) -> String {
    let mut u = Unstructured::new(bytes);
    match target {
        "serial" => format!("{:?}", Vec::<SerialOp>::arbitrary_take_rest(u)),
        "virtqueue" => format!("{:?}", u.arbitrary::<VirtqueueInput>()),
        "virtio_mmio" => format!("{:?}", u.arbitrary::<MmioInput>()),
        "edu" => format!("{:?}", u.arbitrary::<EduInput>()),
        "pci" => format!("{:?}", Vec::<PciOp>::arbitrary_take_rest(u)),
        "kernel_loader" => "Ok(a kernel file)".into(),
        _ => unreachable!("{target}"),
    }
}

fn put(image: &mut [u8], at: usize, bytes: &[u8]) {
    image[at..at + bytes.len()].copy_from_slice(bytes);
}

/// The smallest bzImage the loader takes (as in `stages/04-boot/tests/loader_fuzz.rs`):
/// protocol 2.15, four setup sectors, a 1 KiB kernel, 64-bit entry, init_size 1 MiB.
fn bzimage() -> Vec<u8> {
    let mut image: Vec<u8> = (0..5 * 512 + 0x400).map(|i| (i * 7) as u8).collect();
    image[0x1f1] = 4;
    put(&mut image, 0x1f4, &(0x400u32 / 16).to_le_bytes());
    put(&mut image, 0x1fe, &0xaa55u16.to_le_bytes());
    put(&mut image, 0x200, &[0xeb, 0x6a]);
    put(&mut image, 0x202, b"HdrS");
    put(&mut image, 0x206, &0x020fu16.to_le_bytes());
    put(&mut image, 0x236, &1u16.to_le_bytes());
    put(&mut image, 0x260, &0x10_0000u32.to_le_bytes());
    image
}

/// The smallest ELF vmlinux the loader takes: two PT_LOAD segments, at 1 MiB (0x80 bytes from
/// the file, 0x1000 in memory) and 1.5 MiB, the entry in the first.
fn elf() -> Vec<u8> {
    let mut elf: Vec<u8> = (0..0x200).map(|i| (i * 13) as u8).collect();
    put(&mut elf, 0, b"\x7fELF");
    put(&mut elf, 4, &[2, 1, 1]);
    put(&mut elf, 18, &62u16.to_le_bytes());
    put(&mut elf, 24, &0x10_0000u64.to_le_bytes());
    put(&mut elf, 32, &64u64.to_le_bytes());
    put(&mut elf, 54, &56u16.to_le_bytes());
    put(&mut elf, 56, &2u16.to_le_bytes());
    for (ph, (offset, paddr, memsz)) in
        [64, 120].into_iter().zip([(0x100u64, 0x10_0000u64, 0x1000u64), (0x180, 0x18_0000, 0x80)])
    {
        put(&mut elf, ph, &1u32.to_le_bytes());
        put(&mut elf, ph + 8, &offset.to_le_bytes());
        put(&mut elf, ph + 24, &paddr.to_le_bytes());
        put(&mut elf, ph + 32, &0x80u64.to_le_bytes());
        put(&mut elf, ph + 40, &memsz.to_le_bytes());
    }
    elf
}

#[test]
fn the_structured_seeds_are_committed_and_decode_to_their_scenarios() {
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    for (target, name, bytes, step) in structured_seeds() {
        let text = decoded(target, &bytes);
        assert!(text.starts_with("Ok(") && text.contains(step), "{target}/{name} decodes to {text}");
        let path = corpus().join(target).join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(committed == bytes, "{} is stale: rerun with FUZZ_WRITE_SEEDS=1", path.display());
        }
    }
}
