//! [`HashingBody`]: hashes frames as they pass and enforces length and digest at the end.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::digest::{Digests, Md5Digest};
use crate::error::{BoxError, IntegrityError};

/// What the body is expected to be; every field is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Exact byte count (e.g. from `Content-Length`). Also narrows `size_hint`.
    pub length: Option<u64>,
    /// Expected MD5, when the source publishes one.
    pub md5: Option<Md5Digest>,
    /// Also compute SHA-256.
    pub sha256: bool,
    /// Expected SHA-256, when known before the bytes (computes it whatever `sha256` says); a
    /// mismatch fails the body at its end, as a wrong MD5 does.
    pub sha256_expected: Option<[u8; 32]>,
    /// Also compute CRC32C (the checksum S3 and GCS use for end-to-end checks).
    pub crc32c: bool,
}

impl Expectations {
    /// Sets the expected length.
    pub fn length(mut self, len: u64) -> Self {
        self.length = Some(len);
        self
    }

    /// Sets the expected MD5.
    pub fn md5(mut self, md5: Md5Digest) -> Self {
        self.md5 = Some(md5);
        self
    }

    /// Requests SHA-256 as well.
    pub fn with_sha256(mut self) -> Self {
        self.sha256 = true;
        self
    }

    /// Requests CRC32C as well.
    pub fn with_crc32c(mut self) -> Self {
        self.crc32c = true;
        self
    }

    /// Whether the SHA-256 is computed: asked for, or expected.
    pub fn computes_sha256(&self) -> bool {
        self.sha256 || self.sha256_expected.is_some()
    }
}

/// Reads `body` to its end through a [`HashingBody`] checking `expect`, keeping none of its
/// bytes: their digests, or the first failure (of the body itself, or of a check).
pub async fn digest_body<B>(body: B, expect: Expectations) -> Result<Digests, IntegrityError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (hashing, handle) = HashingBody::new(body, expect);
    let mut hashing = std::pin::pin!(hashing);
    while let Some(frame) = std::future::poll_fn(|cx| hashing.as_mut().poll_frame(cx)).await {
        frame?;
    }
    handle
        .get()
        .ok_or_else(|| IntegrityError::Inner("the body ended without its digests".into()))
}

/// A cloneable handle to the digests of a [`HashingBody`], filled in once the body has
/// reached its end and passed every check.
#[derive(Debug, Clone, Default)]
pub struct DigestHandle(Arc<Mutex<Option<Digests>>>);

impl DigestHandle {
    /// The digests, when the body finished successfully; `None` before that or on failure.
    pub fn get(&self) -> Option<Digests> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, d: Digests) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

struct Hashers {
    md5: Md5,
    sha256: Option<Sha256>,
    crc32c: Option<u32>,
}

impl std::fmt::Debug for Hashers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashers")
            .field("sha256", &self.sha256.is_some())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// An [`http_body::Body`] wrapper that hashes every data frame (MD5, optionally SHA-256),
    /// counts bytes, and at end of stream fails with an [`IntegrityError`] if the length or
    /// digest differs from the [`Expectations`]. Trailer frames pass through untouched;
    /// `size_hint` and `is_end_stream` are forwarded (narrowed to the expected length), as
    /// streaming S3 uploads need an exact size.
    #[derive(Debug)]
    pub struct HashingBody<B> {
        #[pin]
        inner: B,
        hashers: Option<Hashers>,
        seen: u64,
        complete: bool,
        expect: Expectations,
        handle: DigestHandle,
    }
}

impl<B> HashingBody<B> {
    /// Wraps `inner`; returns the body and the handle through which the digests come out.
    pub fn new(inner: B, expect: Expectations) -> (Self, DigestHandle) {
        let handle = DigestHandle::default();
        let body = Self {
            inner,
            hashers: Some(Hashers {
                md5: Md5::new(),
                sha256: expect.computes_sha256().then(Sha256::new),
                crc32c: expect.crc32c.then_some(0),
            }),
            seen: 0,
            complete: false,
            expect,
            handle: handle.clone(),
        };
        (body, handle)
    }

    /// Bytes that have passed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The wrapped body, mutably.
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Unwraps the inner body, dropping the hash state.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

fn finalize(
    h: Hashers,
    seen: u64,
    expect: &Expectations,
    handle: &DigestHandle,
) -> Result<(), IntegrityError> {
    let md5 = Md5Digest(h.md5.finalize().into());
    if let Some(exp) = expect.md5
        && exp != md5
    {
        return Err(IntegrityError::DigestMismatch {
            algorithm: "md5",
            expected: exp.to_hex(),
            actual: md5.to_hex(),
        });
    }
    let sha256: Option<[u8; 32]> = h.sha256.map(|s| s.finalize().into());
    if let (Some(exp), Some(got)) = (expect.sha256_expected, sha256)
        && exp != got
    {
        return Err(IntegrityError::DigestMismatch {
            algorithm: "sha256",
            expected: hex::encode(exp),
            actual: hex::encode(got),
        });
    }
    handle.set(Digests {
        length: seen,
        md5,
        sha256,
        crc32c: h.crc32c,
    });
    Ok(())
}

impl<B> Body for HashingBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = IntegrityError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.complete {
            // Verified when the expected length was reached; anything but the end (or
            // trailers) now means the body is longer than announced.
            return match ready!(this.inner.poll_frame(cx)) {
                Some(Ok(frame)) if frame.data_ref().is_some_and(|d| !d.is_empty()) => {
                    *this.complete = false;
                    this.handle.clear();
                    let extra = frame.data_ref().map_or(0, |d| d.len() as u64);
                    Poll::Ready(Some(Err(IntegrityError::LengthExceeded {
                        expected: *this.seen,
                        actual: *this.seen + extra,
                    })))
                }
                Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
                Some(Err(e)) => {
                    *this.complete = false;
                    this.handle.clear();
                    Poll::Ready(Some(Err(IntegrityError::Inner(e.into()))))
                }
                None => {
                    *this.complete = false;
                    Poll::Ready(None)
                }
            };
        }
        if this.hashers.is_none() {
            // Finished (successfully or not): stay finished.
            return Poll::Ready(None);
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if let Some(exp) = this.expect.length
                        && *this.seen > exp
                    {
                        this.hashers.take();
                        return Poll::Ready(Some(Err(IntegrityError::LengthExceeded {
                            expected: exp,
                            actual: *this.seen,
                        })));
                    }
                    if let Some(h) = this.hashers.as_mut() {
                        h.md5.update(data);
                        if let Some(s) = h.sha256.as_mut() {
                            s.update(data);
                        }
                        if let Some(c) = h.crc32c.as_mut() {
                            *c = crc32c::crc32c_append(*c, data);
                        }
                    }
                    // A consumer that knows the exact length (hyper sending a request with
                    // Content-Length) stops polling after the last byte, so verification
                    // must happen on the frame that completes the length, and fail that
                    // frame instead of letting it through.
                    if this.expect.length == Some(*this.seen) && !data.is_empty() {
                        let h = this.hashers.take().expect("hashers present");
                        *this.complete = true;
                        if let Err(e) = finalize(h, *this.seen, this.expect, this.handle) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.hashers.take();
                Poll::Ready(Some(Err(IntegrityError::Inner(e.into()))))
            }
            None => {
                let Some(h) = this.hashers.take() else {
                    return Poll::Ready(None);
                };
                if let Some(exp) = this.expect.length
                    && exp != *this.seen
                {
                    return Poll::Ready(Some(Err(IntegrityError::LengthMismatch {
                        expected: exp,
                        actual: *this.seen,
                    })));
                }
                match finalize(h, *this.seen, this.expect, this.handle) {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        (self.hashers.is_none() && !self.complete) || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        match self.expect.length {
            // The body either delivers exactly this many bytes or fails; announcing the
            // exact size lets the S3 SDK sign a streaming PUT.
            Some(len) if self.seen == 0 => SizeHint::with_exact(len),
            Some(len) => SizeHint::with_exact(len.saturating_sub(self.seen)),
            None => inner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use http_body_util::{BodyExt, Full, StreamBody};
    use proptest::prelude::*;

    fn framed(
        chunks: Vec<Vec<u8>>,
    ) -> StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>>> {
        StreamBody::new(stream::iter(
            chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c)))),
        ))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn known_answer_md5_and_sha256() {
        rt().block_on(async {
            let (b, h) = HashingBody::new(
                framed(vec![
                    b"The quick brown fox ".to_vec(),
                    b"jumps over the lazy dog".to_vec(),
                ]),
                Expectations::default().length(43).with_sha256(),
            );
            let out = b.collect().await.unwrap().to_bytes();
            assert_eq!(out.len(), 43);
            let d = h.get().unwrap();
            assert_eq!(d.md5_hex(), "9e107d9d372bb6826bd81d3542a419d6");
            assert_eq!(
                d.sha256_hex().unwrap(),
                "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
            );
            assert_eq!(d.length, 43);
        });
    }

    #[test]
    fn short_body_is_a_length_mismatch() {
        rt().block_on(async {
            let (b, h) = HashingBody::new(
                framed(vec![vec![1; 10]]),
                Expectations::default().length(11),
            );
            let err = b.collect().await.unwrap_err();
            assert!(
                matches!(
                    err,
                    IntegrityError::LengthMismatch {
                        expected: 11,
                        actual: 10
                    }
                ),
                "{err}"
            );
            assert!(err.is_verification_failure());
            assert!(h.get().is_none());
        });
    }

    #[test]
    fn long_body_fails_as_soon_as_it_exceeds() {
        rt().block_on(async {
            let (b, _h) = HashingBody::new(
                framed(vec![vec![1; 5], vec![1; 5], vec![1; 5]]),
                Expectations::default().length(7),
            );
            let err = b.collect().await.unwrap_err();
            assert!(
                matches!(
                    err,
                    IntegrityError::LengthExceeded {
                        expected: 7,
                        actual: 10
                    }
                ),
                "{err}"
            );
        });
    }

    #[test]
    fn digest_mismatch_names_both_values() {
        rt().block_on(async {
            let wrong = Md5Digest::of(b"something else");
            let (b, h) = HashingBody::new(
                framed(vec![b"hello".to_vec()]),
                Expectations::default().md5(wrong),
            );
            let err = b.collect().await.unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&wrong.to_hex()), "{msg}");
            assert!(msg.contains("5d41402abc4b2a76b9719d911017c592"), "{msg}");
            assert!(h.get().is_none());
        });
    }

    #[test]
    fn a_wrong_expected_sha256_fails_the_body_and_a_right_one_passes() {
        rt().block_on(async {
            let right = crate::sha256_of(b"hello");
            let mut wrong = right;
            wrong[0] ^= 1;
            let expect = |sha| Expectations {
                sha256_expected: Some(sha),
                ..Expectations::default()
            };
            let (b, h) =
                HashingBody::new(framed(vec![b"hel".to_vec(), b"lo".to_vec()]), expect(wrong));
            let msg = b.collect().await.unwrap_err().to_string();
            assert!(
                msg.contains("sha256") && msg.contains(&hex::encode(right)),
                "{msg}"
            );
            assert!(h.get().is_none());
            let (b, h) = HashingBody::new(framed(vec![b"hello".to_vec()]), expect(right));
            b.collect().await.unwrap();
            assert_eq!(h.get().unwrap().sha256, Some(right));
        });
    }

    #[test]
    fn digest_body_reads_to_the_end_and_reports_the_first_failure() {
        rt().block_on(async {
            let d = digest_body(
                framed(vec![b"hel".to_vec(), b"lo".to_vec()]),
                Expectations::default().with_sha256(),
            )
            .await
            .unwrap();
            assert_eq!(d.md5, Md5Digest::of(b"hello"));
            assert_eq!(d.sha256, Some(crate::sha256_of(b"hello")));
            let e = digest_body(
                framed(vec![b"hello".to_vec()]),
                Expectations::default().length(6),
            )
            .await
            .unwrap_err();
            assert!(
                matches!(
                    e,
                    IntegrityError::LengthMismatch {
                        expected: 6,
                        actual: 5
                    }
                ),
                "{e}"
            );
        });
    }

    #[test]
    fn known_answer_crc32c_over_split_frames() {
        rt().block_on(async {
            let (b, h) = HashingBody::new(
                framed(vec![b"1234".to_vec(), b"56789".to_vec()]),
                Expectations::default().with_crc32c(),
            );
            b.collect().await.unwrap();
            assert_eq!(h.get().unwrap().crc32c, Some(0xE306_9283));
            let (b, h) = HashingBody::new(framed(vec![b"x".to_vec()]), Expectations::default());
            b.collect().await.unwrap();
            assert_eq!(h.get().unwrap().crc32c, None, "only when asked");
        });
    }

    #[test]
    fn verifies_on_the_frame_that_completes_the_length() {
        rt().block_on(async {
            // A consumer like hyper stops after Content-Length bytes and never polls for the
            // end; the digests must be ready anyway.
            let (mut b, h) = HashingBody::new(
                framed(vec![b"hel".to_vec(), b"lo".to_vec()]),
                Expectations::default().length(5),
            );
            let mut n = 0;
            while n < 5 {
                let f = b.frame().await.unwrap().unwrap();
                n += f.data_ref().unwrap().len();
            }
            assert_eq!(
                h.get().unwrap().md5_hex(),
                "5d41402abc4b2a76b9719d911017c592"
            );
            assert!(b.is_end_stream() || b.frame().await.is_none());

            // A wrong MD5 fails the last frame itself, so the consumer never sees success.
            let wrong = Md5Digest::of(b"x");
            let (mut b, h) = HashingBody::new(
                framed(vec![b"hel".to_vec(), b"lo".to_vec()]),
                Expectations::default().length(5).md5(wrong),
            );
            assert!(b.frame().await.unwrap().is_ok());
            assert!(matches!(
                b.frame().await.unwrap(),
                Err(IntegrityError::DigestMismatch { .. })
            ));
            assert!(h.get().is_none());

            // Bytes after the announced length are an error and withdraw the digests.
            let (b, h) = HashingBody::new(
                framed(vec![b"hello".to_vec(), b"!".to_vec()]),
                Expectations::default().length(5),
            );
            let err = b.collect().await.unwrap_err();
            assert!(
                matches!(
                    err,
                    IntegrityError::LengthExceeded {
                        expected: 5,
                        actual: 6
                    }
                ),
                "{err}"
            );
            assert!(h.get().is_none());
        });
    }

    #[test]
    fn inner_error_is_wrapped_and_findable() {
        rt().block_on(async {
            let s = stream::iter(vec![
                Ok(Frame::data(Bytes::from_static(b"abc"))),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset",
                )),
            ]);
            let (b, _h) = HashingBody::new(StreamBody::new(s), Expectations::default());
            let err = b.collect().await.unwrap_err();
            assert!(matches!(err, IntegrityError::Inner(_)));
            assert!(!err.is_verification_failure());
            let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
            assert!(IntegrityError::find_in(boxed.as_ref()).is_some());
        });
    }

    #[test]
    fn trailers_pass_through_untouched() {
        rt().block_on(async {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-test", http::HeaderValue::from_static("1"));
            let s = stream::iter(vec![
                Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"abc"))),
                Ok(Frame::trailers(trailers.clone())),
            ]);
            let (b, h) = HashingBody::new(StreamBody::new(s), Expectations::default().length(3));
            let collected = b.collect().await.unwrap();
            assert_eq!(collected.trailers(), Some(&trailers));
            assert_eq!(h.get().unwrap().length, 3);
        });
    }

    #[test]
    fn size_hint_and_end_stream_are_forwarded() {
        let (b, _) = HashingBody::new(
            Full::new(Bytes::from_static(b"12345")),
            Expectations::default(),
        );
        assert_eq!(b.size_hint().exact(), Some(5));
        assert!(!b.is_end_stream());
        let (b, _) = HashingBody::new(framed(vec![vec![0; 3]]), Expectations::default().length(3));
        assert_eq!(
            b.size_hint().exact(),
            Some(3),
            "expected length gives an exact hint"
        );
        let (b, _) = HashingBody::new(Full::new(Bytes::new()), Expectations::default());
        assert!(b.is_end_stream());
    }

    #[test]
    fn polling_after_end_is_harmless() {
        rt().block_on(async {
            let (mut b, h) = HashingBody::new(framed(vec![b"x".to_vec()]), Expectations::default());
            while let Some(f) = b.frame().await {
                f.unwrap();
            }
            assert!(b.frame().await.is_none());
            assert!(b.is_end_stream());
            assert_eq!(h.get().unwrap().length, 1);
        });
    }

    proptest! {
        #[test]
        fn digest_is_independent_of_frame_split(data in proptest::collection::vec(any::<u8>(), 0..4096), cuts in proptest::collection::vec(any::<usize>(), 0..16)) {
            let mut points: Vec<usize> = cuts.into_iter().map(|c| if data.is_empty() { 0 } else { c % data.len() }).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(data[last..p].to_vec()); last = p; }
            chunks.push(data[last..].to_vec());
            let expected = Md5Digest::of(&data);
            let len = data.len() as u64;
            let d = rt().block_on(async move {
                let (b, h) = HashingBody::new(framed(chunks), Expectations::default().length(len).md5(expected));
                b.collect().await.unwrap();
                h.get().unwrap()
            });
            prop_assert_eq!(d.md5, expected);
            prop_assert_eq!(d.length, len);
        }
    }
}
