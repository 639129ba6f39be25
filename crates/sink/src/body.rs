//! The body type sinks accept, and constructors.

use bytes::Bytes;
use futures::Stream;
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use integrity::BoxError;

/// A streaming body: `Send + Sync`, bytes frames, boxed errors.
pub type PutBody = BoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full_body(bytes: impl Into<Bytes>) -> PutBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty_body() -> PutBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body from a stream of byte chunks.
pub fn stream_body<S, E>(s: S) -> PutBody
where
    S: Stream<Item = Result<Bytes, E>> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    BodyExt::boxed(StreamBody::new(futures::StreamExt::map(s, |r| {
        r.map(Frame::data).map_err(Into::into)
    })))
}
