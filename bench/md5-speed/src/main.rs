//! Hashes 1 GiB in 64 KiB updates (the size of the frames the archiver hashes) three times
//! with MD5 and three times with SHA-256 (the chain-of-custody digest, computed in the same
//! pass) and prints MiB/s for each pass.
use md5::{Digest, Md5};
use sha2::Sha256;

fn pass<D: Digest>(name: &str, buf: &[u8]) {
    let t = std::time::Instant::now();
    let mut h = D::new();
    for _ in 0..16 * 1024 {
        h.update(buf);
    }
    let d = h.finalize();
    let s = t.elapsed().as_secs_f64();
    println!("{name} {:02x}{:02x}..  {:.0} MiB/s", d[0], d[1], 1024.0 / s);
}

fn main() {
    let buf = vec![0x5au8; 64 * 1024];
    for _ in 0..3 {
        pass::<Md5>("md5   ", &buf);
    }
    for _ in 0..3 {
        pass::<Sha256>("sha256", &buf);
    }
}
