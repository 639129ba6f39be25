//! Hashes 1 GiB in 64 KiB updates (the size of the frames the archiver hashes) three times
//! and prints MiB/s for each pass.
use md5::{Digest, Md5};

fn main() {
    let buf = vec![0x5au8; 64 * 1024];
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let mut h = Md5::new();
        for _ in 0..16 * 1024 {
            h.update(&buf);
        }
        let d = h.finalize();
        let s = t.elapsed().as_secs_f64();
        println!("{d:x}  {:.0} MiB/s", 1024.0 / s);
    }
}
