//! Streaming integrity checks for recording archival.
//!
//! [`HashingBody`] wraps any [`http_body::Body`] with `Data = Bytes`, hashes every data frame
//! as it passes (MD5 always, SHA-256 on request), and at end of stream checks the byte count
//! and the digest against expected values where they are known. The digests are handed out
//! through a cloneable [`DigestHandle`] because the consumer (for example the S3 SDK) takes
//! ownership of the body.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use integrity::{Expectations, HashingBody};
//!
//! # tokio_test_block_on(async {
//! let body = Full::new(Bytes::from_static(b"hello"));
//! let (body, handle) = HashingBody::new(body, Expectations::default().length(5));
//! let bytes = body.collect().await.unwrap().to_bytes();
//! assert_eq!(&bytes[..], b"hello");
//! let digests = handle.get().expect("finished");
//! assert_eq!(digests.md5_hex(), "5d41402abc4b2a76b9719d911017c592");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
#![warn(missing_docs)]

mod body;
mod digest;
mod error;

pub use body::{DigestHandle, Expectations, HashingBody};
pub use digest::{Digests, Md5Digest, etag_matches_md5, multipart_etag};
pub use error::{BoxError, IntegrityError, Result};
