#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod body;
mod digest;
mod error;

pub use body::{DigestHandle, Expectations, HashingBody, digest_body};
pub use digest::{Digests, Md5Digest, etag_matches_md5, multipart_etag, sha256_of};
pub use error::{BoxError, IntegrityError, Result};
