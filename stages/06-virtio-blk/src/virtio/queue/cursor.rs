//! The buffers of a chain as one byte stream, so that a device can read a request header or
//! write data without caring where the descriptor boundaries fall (virtio 1.2, §2.7.4 "Message
//! Framing": "The device MUST NOT make assumptions about the particular arrangement of
//! descriptors").

use stage02::memory::{GuestAddress, GuestMemory, MemoryError};

use super::Descriptor;

/// A cursor over guest buffers seen as one byte stream: the readable part of a chain, or the
/// writable part, possibly cut short with [`BufferCursor::limit`].
///
/// The buffers were checked by [`Queue::pop`](super::Queue::pop), so copies only fail if guest
/// memory changed shape, which it does not; the errors are still passed on rather than assumed
/// away.
pub struct BufferCursor<'a> {
    mem: &'a GuestMemory,
    buffers: &'a [Descriptor],
    /// Buffer the cursor is in.
    index: usize,
    /// Bytes already done in that buffer.
    offset: u32,
    /// Bytes the cursor may still move over.
    remaining: u64,
    /// Bytes it has moved over.
    done: u64,
}

impl<'a> BufferCursor<'a> {
    /// A cursor at the start of `buffers`.
    pub fn new(mem: &'a GuestMemory, buffers: &'a [Descriptor]) -> Self {
        let remaining = buffers.iter().map(|d| u64::from(d.len)).sum();
        BufferCursor { mem, buffers, index: 0, offset: 0, remaining, done: 0 }
    }

    /// The same cursor, stopping after at most `max` more bytes.
    pub fn limit(mut self, max: u64) -> Self {
        self.remaining = self.remaining.min(max);
        self
    }

    /// Bytes left before the end (or the limit).
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Bytes moved over so far.
    pub fn bytes_done(&self) -> u64 {
        self.done
    }

    /// Copies guest bytes into `buf` until it is full or the stream ends; returns the count.
    ///
    /// # Errors
    /// [`MemoryError`] if guest memory refuses a copy; the cursor stays before the failed part.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, MemoryError> {
        let mut copied = 0;
        while let Some((addr, n)) = self.next_piece(buf.len() - copied) {
            self.mem.read(addr, &mut buf[copied..copied + n])?;
            self.advance(n);
            copied += n;
        }
        Ok(copied)
    }

    /// Copies `buf` into guest buffers until it is all written or the stream ends; returns the
    /// count.
    ///
    /// # Errors
    /// [`MemoryError`] if guest memory refuses a copy; the cursor stays before the failed part.
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, MemoryError> {
        let mut copied = 0;
        while let Some((addr, n)) = self.next_piece(buf.len() - copied) {
            self.mem.write(addr, &buf[copied..copied + n])?;
            self.advance(n);
            copied += n;
        }
        Ok(copied)
    }

    /// Where the next contiguous piece of at most `want` bytes is, skipping finished buffers.
    fn next_piece(&mut self, want: usize) -> Option<(GuestAddress, usize)> {
        let want = (want as u64).min(self.remaining);
        if want == 0 {
            return None;
        }
        loop {
            let buffer = self.buffers.get(self.index)?;
            let left = buffer.len - self.offset;
            if left == 0 {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            let n = want.min(u64::from(left));
            let addr = buffer.addr.checked_add(u64::from(self.offset))?;
            return Some((addr, n as usize));
        }
    }

    fn advance(&mut self, n: usize) {
        // `n` fits in the current buffer (`next_piece` said so), hence in u32.
        self.offset += n as u32;
        self.remaining -= n as u64;
        self.done += n as u64;
    }
}
