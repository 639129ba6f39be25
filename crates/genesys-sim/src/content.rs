//! Deterministic recording bodies: any size, generated block by block, never held whole.
//!
//! Bodies look like what they claim to be, so a person can open what the demo archived:
//! audio is a WAV file (8 kHz, 8-bit mono PCM: a short tune over a faint hiss), screen
//! recordings a WebM file (one 1x1 VP8 key frame, the rest a Void element), chats a JSON
//! document and emails an RFC 822 message. Each body still depends on its seed (the hiss, the
//! tune and the filler come from it), so two recordings never share bytes. A body too small
//! for its format's header is bytes without structure.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use md5::{Digest as _, Md5};

/// Size of one generated block; each block depends only on the seed and its index, so any
/// offset can be produced without generating what precedes it.
pub(crate) const BLOCK: usize = 64 * 1024;

/// What a generated body is, for a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Bytes without structure.
    Noise,
    /// RIFF/WAVE: 8 kHz, 8-bit unsigned mono PCM.
    Wav,
    /// WebM (Matroska): one VP8 key frame, then a Void element filling the rest.
    WebM,
    /// A JSON object whose `transcript` string fills the body.
    Json,
    /// An RFC 822 message whose text body fills the rest.
    Email,
}

/// Bytes per WAV sample second.
pub(crate) const WAV_RATE: u32 = 8000;
/// Samples per note of the tune.
const NOTE: usize = 2000;
/// Notes per tune, then a rest of the same length as two notes.
const NOTES: usize = 8;
/// Samples per tune cycle: the notes and the rest.
const CYCLE: usize = NOTE * (NOTES + 2);
/// Length of the WAV header.
const WAV_HEADER: usize = 44;

/// One note of each of eight pitches (a pentatonic scale), with short fades against clicks.
fn note_table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        const PITCHES: [f64; NOTES] = [392.0, 440.0, 523.25, 587.33, 659.25, 783.99, 880.0, 1046.5];
        let mut t = Vec::with_capacity(NOTE * NOTES);
        for f in PITCHES {
            for n in 0..NOTE {
                let fade = (n.min(NOTE - 1 - n) as f64 / 160.0).min(1.0);
                let phase = 2.0 * std::f64::consts::PI * f * n as f64 / f64::from(WAV_RATE);
                t.push((128.0 + 56.0 * fade * phase.sin()).round() as u8);
            }
        }
        t
    })
}

fn wav_header(size: u64) -> [u8; WAV_HEADER] {
    let riff = u32::try_from(size - 8).unwrap_or(u32::MAX);
    let data = u32::try_from(size - WAV_HEADER as u64).unwrap_or(u32::MAX);
    let mut h = [0u8; WAV_HEADER];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff.to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&WAV_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&WAV_RATE.to_le_bytes()); // bytes per second
    h[32..34].copy_from_slice(&1u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&8u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// An EBML element: id bytes, size as an 8-byte-or-shorter vint, payload.
fn ebml(id: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    let len = payload.len() as u64;
    assert!(len < 0x3FFF, "small elements only");
    if len < 0x7F {
        v.push(0x80 | len as u8);
    } else {
        v.extend_from_slice(&(0x4000 | len as u16).to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// Length of a Void element's header: its id and an 8-byte size.
const VOID_HEADER: usize = 9;

/// The WebM body up to the Void element that fills the rest.
fn webm_head() -> &'static [u8] {
    static HEAD: OnceLock<Vec<u8>> = OnceLock::new();
    HEAD.get_or_init(|| {
        let header = [
            ebml(&[0x42, 0x86], &[1]),    // EBMLVersion
            ebml(&[0x42, 0xF7], &[1]),    // EBMLReadVersion
            ebml(&[0x42, 0xF2], &[4]),    // EBMLMaxIDLength
            ebml(&[0x42, 0xF3], &[8]),    // EBMLMaxSizeLength
            ebml(&[0x42, 0x82], b"webm"), // DocType
            ebml(&[0x42, 0x87], &[2]),    // DocTypeVersion
            ebml(&[0x42, 0x85], &[2]),    // DocTypeReadVersion
        ]
        .concat();
        let info = [
            ebml(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]), // TimestampScale 1 ms
            ebml(&[0x4D, 0x80], b"genesys-sim"),            // MuxingApp
            ebml(&[0x57, 0x41], b"genesys-sim"),            // WritingApp
        ]
        .concat();
        let video = [
            ebml(&[0xB0], &[1]), // PixelWidth
            ebml(&[0xBA], &[1]), // PixelHeight
        ]
        .concat();
        let track = [
            ebml(&[0xD7], &[1]),       // TrackNumber
            ebml(&[0x73, 0xC5], &[1]), // TrackUID
            ebml(&[0x83], &[1]),       // TrackType: video
            ebml(&[0x86], b"V_VP8"),   // CodecID
            ebml(&[0xE0], &video),     // Video
        ]
        .concat();
        // A 1x1 VP8 key frame (the bitstream of the smallest lossy WebP image).
        const VP8_KEY_FRAME: [u8; 22] = [
            0x30, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x01, 0x00, 0x01, 0x00, 0x0e, 0xc0, 0xfe, 0x25,
            0xa4, 0x00, 0x03, 0x70, 0x00, 0x00, 0x00, 0x00,
        ];
        // Track 1, timestamp 0, key frame.
        let block = [&[0x81, 0x00, 0x00, 0x80][..], &VP8_KEY_FRAME[..]].concat();
        let cluster = [
            ebml(&[0xE7], &[0]),   // Timestamp
            ebml(&[0xA3], &block), // SimpleBlock
        ]
        .concat();
        let mut v = ebml(&[0x1A, 0x45, 0xDF, 0xA3], &header);
        // Segment of unknown size: it ends where the file does.
        v.extend_from_slice(&[
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        v.extend(ebml(&[0x15, 0x49, 0xA9, 0x66], &info));
        v.extend(ebml(&[0x16, 0x54, 0xAE, 0x6B], &ebml(&[0xAE], &track)));
        v.extend(ebml(&[0x1F, 0x43, 0xB6, 0x75], &cluster));
        v
    })
}

fn void_header(void_len: u64) -> [u8; VOID_HEADER] {
    let mut h = [0u8; VOID_HEADER];
    h[0] = 0xEC;
    h[1] = 0x01;
    h[2..].copy_from_slice(&(void_len - VOID_HEADER as u64).to_be_bytes()[1..]);
    h
}

const JSON_HEAD: &[u8] = b"{\"simulated\":\"genesys-sim chat transcript\",\"transcript\":\"";
const JSON_TAIL: &[u8] = b"\"}\n";
const EMAIL_HEAD: &[u8] = b"From: customer@example.com\r\nTo: support@example.com\r\nSubject: Simulated email recording\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";

impl BodyKind {
    /// The bytes every body of this kind and `size` starts with, or `None` when `size` is too
    /// small for the format (the body is then noise).
    fn head(self, size: u64) -> Option<std::borrow::Cow<'static, [u8]>> {
        use std::borrow::Cow;
        let fits = |n: usize| size >= n as u64;
        match self {
            Self::Noise => None,
            Self::Wav => fits(WAV_HEADER).then(|| Cow::Owned(wav_header(size).to_vec())),
            Self::WebM => {
                let head = webm_head();
                fits(head.len() + VOID_HEADER).then(|| {
                    let mut v = head.to_vec();
                    v.extend(void_header(size - head.len() as u64));
                    Cow::Owned(v)
                })
            }
            Self::Json => {
                fits(JSON_HEAD.len() + JSON_TAIL.len()).then_some(Cow::Borrowed(JSON_HEAD))
            }
            Self::Email => fits(EMAIL_HEAD.len()).then_some(Cow::Borrowed(EMAIL_HEAD)),
        }
    }

    /// The bytes every body of this kind and `size` ends with.
    fn tail(self, size: u64) -> &'static [u8] {
        match self {
            Self::Json if self.head(size).is_some() => JSON_TAIL,
            _ => &[],
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Letters, digits and spaces a text filler takes its characters from (no quote, no backslash).
const TEXT: &[u8; 32] = b"etaoinshrdlucmfw ypvbgkqjxz  .,e";

/// Generates the bytes of one recording from its seed.
#[derive(Debug, Clone)]
pub struct ContentGen {
    kind: BodyKind,
    seed: u64,
    size: u64,
    pos: u64,
}

impl ContentGen {
    /// A generator for a `size`-byte body of `kind` derived from `seed`.
    pub fn new(kind: BodyKind, seed: u64, size: u64) -> Self {
        Self {
            kind,
            seed,
            size,
            pos: 0,
        }
    }

    /// Appends the block at `index` (the last block may be shorter) to `out`.
    fn block(&self, index: u64, len: usize, out: &mut BytesMut) {
        let mut state = splitmix(self.seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        let start = out.len();
        out.resize(start + len, 0);
        let buf = &mut out[start..];
        for chunk in buf.chunks_mut(8) {
            state = splitmix(state);
            let b = state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let Some(head) = self.kind.head(self.size) else {
            return;
        };
        let off = index * BLOCK as u64;
        let tail = self.kind.tail(self.size);
        let body_end = self.size - tail.len() as u64;
        // The part between head and tail.
        let from = (head.len() as u64).max(off);
        let to = body_end.min(off + len as u64);
        if from < to {
            let part = &mut buf[(from - off) as usize..(to - off) as usize];
            self.shape(from - head.len() as u64, part);
        }
        for p in off..(off + len as u64).min(head.len() as u64) {
            buf[(p - off) as usize] = head[p as usize];
        }
        for p in body_end.max(off)..off + len as u64 {
            buf[(p - off) as usize] = tail[(p - body_end) as usize];
        }
    }

    /// Turns noise into the body's content; `n` is the offset of `part` after the head.
    fn shape(&self, mut n: u64, part: &mut [u8]) {
        match self.kind {
            BodyKind::Noise | BodyKind::WebM => {}
            BodyKind::Wav => {
                let notes = note_table();
                let mut rest = part;
                while !rest.is_empty() {
                    let c = (n % CYCLE as u64) as usize;
                    let slot = c / NOTE;
                    let within = c % NOTE;
                    let run = (NOTE - within).min(rest.len());
                    let (now, later) = rest.split_at_mut(run);
                    if slot < NOTES {
                        let pitch = ((self.seed >> (3 * slot)) & 7) as usize;
                        let tone = &notes[pitch * NOTE + within..pitch * NOTE + within + run];
                        for (s, t) in now.iter_mut().zip(tone) {
                            *s = t.wrapping_add(*s & 3);
                        }
                    } else {
                        for s in now.iter_mut() {
                            *s = 127 + (*s & 3);
                        }
                    }
                    rest = later;
                    n += run as u64;
                }
            }
            BodyKind::Json => {
                for s in part.iter_mut() {
                    *s = TEXT[(*s & 31) as usize];
                }
            }
            BodyKind::Email => {
                for (i, s) in part.iter_mut().enumerate() {
                    *s = match (n + i as u64) % 78 {
                        76 => b'\r',
                        77 => b'\n',
                        _ => TEXT[(*s & 31) as usize],
                    };
                }
            }
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
pub fn content_md5(kind: BodyKind, seed: u64, size: u64) -> [u8; 16] {
    let mut h = Md5::new();
    for chunk in ContentGen::new(kind, seed, size) {
        h.update(&chunk);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: BodyKind, seed: u64, size: u64) -> Vec<u8> {
        ContentGen::new(kind, seed, size)
            .flat_map(|b| b.to_vec())
            .collect()
    }

    const KINDS: [BodyKind; 5] = [
        BodyKind::Noise,
        BodyKind::Wav,
        BodyKind::WebM,
        BodyKind::Json,
        BodyKind::Email,
    ];

    #[test]
    fn deterministic_and_sized() {
        for kind in KINDS {
            for size in [0, 1, 43, 44, 45, 200, 65_536, 200_000] {
                let a = body(kind, 7, size);
                assert_eq!(a.len() as u64, size, "{kind:?} {size}");
                assert_eq!(a, body(kind, 7, size), "{kind:?} {size}");
                if size > 1_000 {
                    assert_ne!(a, body(kind, 8, size), "{kind:?} {size}: seeds differ");
                }
                assert_eq!(
                    content_md5(kind, 7, size),
                    <[u8; 16]>::from(Md5::digest(&a))
                );
            }
        }
    }

    #[test]
    fn blocks_do_not_depend_on_what_precedes_them() {
        for kind in KINDS {
            let size = 3 * BLOCK as u64 + 100;
            let all = body(kind, 5, size);
            let g = ContentGen::new(kind, 5, size);
            let mut third = BytesMut::new();
            g.block(2, BLOCK, &mut third);
            assert_eq!(&third[..], &all[2 * BLOCK..3 * BLOCK], "{kind:?}");
        }
    }

    #[test]
    fn empty_body() {
        assert_eq!(ContentGen::new(BodyKind::Wav, 1, 0).count(), 0);
        assert_eq!(
            hex::encode(content_md5(BodyKind::Noise, 1, 0)),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn wav_bodies_decode_as_pcm_audio_with_a_tune() {
        let size = 100_000u64;
        let wav = body(BodyKind::Wav, 11, size);
        let reader = hound::WavReader::new(std::io::Cursor::new(&wav)).expect("a WAV file");
        let spec = reader.spec();
        assert_eq!(spec.channels, 1);
        assert_eq!(spec.sample_rate, WAV_RATE);
        assert_eq!(spec.bits_per_sample, 8);
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        let samples: Vec<i8> = reader.into_samples::<i8>().map(Result::unwrap).collect();
        assert_eq!(samples.len() as u64, size - 44);
        // A tone, not noise: loud in the notes, near silence in the rest.
        let rms = |s: &[i8]| {
            (s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        assert!(rms(&samples[..NOTE]) > 30.0, "{}", rms(&samples[..NOTE]));
        let rest = &samples[NOTE * NOTES + 200..NOTE * (NOTES + 2) - 200];
        assert!(rms(rest) < 3.0, "{}", rms(rest));
    }

    /// Reads one EBML element header at `at`: (id, payload start, payload size; `None`
    /// for an unknown size).
    fn element(b: &[u8], at: usize) -> (u32, usize, Option<u64>) {
        let id_len = b[at].leading_zeros() as usize + 1;
        let id = b[at..at + id_len]
            .iter()
            .fold(0u32, |a, &x| (a << 8) | u32::from(x));
        let s = at + id_len;
        let size_len = b[s].leading_zeros() as usize + 1;
        let mut size = u64::from(b[s]) & (0xFF >> size_len);
        for &x in &b[s + 1..s + size_len] {
            size = (size << 8) | u64::from(x);
        }
        let unknown = size == (1u64 << (7 * size_len)) - 1;
        (id, s + size_len, (!unknown).then_some(size))
    }

    #[test]
    fn webm_bodies_are_one_ebml_document_to_the_last_byte() {
        for size in [200u64, 4_096, 1_000_000] {
            let w = body(BodyKind::WebM, 3, size);
            let (id, start, len) = element(&w, 0);
            assert_eq!(id, 0x1A45_DFA3, "EBML header");
            let header = &w[start..start + len.unwrap() as usize];
            assert!(
                header.windows(6).any(|x| x == b"\x82\x84webm"),
                "DocType webm"
            );
            let (id, mut at, len) = element(&w, start + header.len());
            assert_eq!((id, len), (0x1853_8067, None), "Segment of unknown size");
            let mut children = Vec::new();
            while at < w.len() {
                let (id, start, len) = element(&w, at);
                children.push(id);
                at = start + len.unwrap() as usize;
            }
            assert_eq!(at, w.len(), "the last element ends with the file");
            assert_eq!(
                children,
                [0x1549_A966, 0x1654_AE6B, 0x1F43_B675, 0xEC],
                "Info, Tracks, Cluster, Void"
            );
        }
        assert!(
            body(BodyKind::WebM, 3, 50).iter().any(|&b| b != 0x1A),
            "too small: noise"
        );
    }

    #[test]
    fn chat_and_email_bodies_are_text_of_their_kind() {
        let json = body(BodyKind::Json, 9, 70_000);
        let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(
            v["transcript"].as_str().unwrap().len(),
            70_000 - JSON_HEAD.len() - 3
        );
        let mail = String::from_utf8(body(BodyKind::Email, 9, 70_000)).expect("ASCII");
        assert!(mail.starts_with("From: "));
        let (_, text) = mail.split_once("\r\n\r\n").unwrap();
        assert!(text.split("\r\n").all(|l| l.len() <= 76));
    }
}
