//! Deterministic recording bodies: any size, generated block by block, never held whole.

use bytes::{Bytes, BytesMut};
use md5::{Digest as _, Md5};

/// Size of one generated block; each block depends only on the seed and its index, so any
/// offset can be produced without generating what precedes it.
pub(crate) const BLOCK: usize = 64 * 1024;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Generates the bytes of one recording from its seed.
#[derive(Debug, Clone)]
pub struct ContentGen {
    seed: u64,
    size: u64,
    pos: u64,
}

impl ContentGen {
    /// A generator for `size` bytes derived from `seed`.
    pub fn new(seed: u64, size: u64) -> Self {
        Self { seed, size, pos: 0 }
    }

    /// Fills `out` with the block at `index` (the last block may be shorter).
    fn block(&self, index: u64, len: usize, out: &mut BytesMut) {
        let mut state = splitmix(self.seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        let start = out.len();
        out.resize(start + len, 0);
        for chunk in out[start..].chunks_mut(8) {
            state = splitmix(state);
            let b = state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }

    /// The next chunk of at most one block, or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.pos >= self.size {
            return None;
        }
        let index = self.pos / BLOCK as u64;
        let len = ((self.size - self.pos) as usize).min(BLOCK);
        let mut buf = BytesMut::with_capacity(len);
        self.block(index, len, &mut buf);
        self.pos += len as u64;
        Some(buf.freeze())
    }
}

impl Iterator for ContentGen {
    type Item = Bytes;
    fn next(&mut self) -> Option<Bytes> {
        self.next_chunk()
    }
}

/// MD5 of the generated body, computed by streaming through it.
pub fn content_md5(seed: u64, size: u64) -> [u8; 16] {
    let mut h = Md5::new();
    for chunk in ContentGen::new(seed, size) {
        h.update(&chunk);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let a: Vec<u8> = ContentGen::new(7, 200_000)
            .flat_map(|b| b.to_vec())
            .collect();
        let b: Vec<u8> = ContentGen::new(7, 200_000)
            .flat_map(|b| b.to_vec())
            .collect();
        let c: Vec<u8> = ContentGen::new(8, 200_000)
            .flat_map(|b| b.to_vec())
            .collect();
        assert_eq!(a.len(), 200_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(content_md5(7, 200_000), <[u8; 16]>::from(Md5::digest(&a)));
    }

    #[test]
    fn empty_body() {
        assert_eq!(ContentGen::new(1, 0).count(), 0);
        assert_eq!(
            hex::encode(content_md5(1, 0)),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
