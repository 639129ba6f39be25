//! What a write holds before it sends a byte, taken before the caller opens (or while it
//! can still let go of) the source it streams from.
//!
//! An S3 multipart upload holds part buffers; the sink bounds them across all writers, so an
//! upload past the budget waits. Waiting inside [`ObjectSink::put`](crate::ObjectSink::put)
//! would hold the caller's download open and unread meanwhile (a media connection idle for as
//! long as other uploads take, and a worker counted busy). A caller asks
//! [`ObjectSink::try_reserve`](crate::ObjectSink::try_reserve) instead, and on
//! [`Readiness::Busy`] lets the download go, waits in
//! [`ObjectSink::reserve`](crate::ObjectSink::reserve), and opens it again.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// What one write holds (S3: its share of the multipart part-buffer budget), passed to
/// [`ObjectSink::put`](crate::ObjectSink::put) in
/// [`PutOptions::reservation`](crate::PutOptions::reservation); released when the last clone
/// is dropped. Two reservations are equal when they are clones of one.
#[derive(Clone)]
pub struct Reservation(Arc<dyn Any + Send + Sync>);

impl Reservation {
    /// A reservation holding `held` (for a sink's own use) until it is dropped.
    pub fn new<T: Any + Send + Sync>(held: T) -> Self {
        Self(Arc::new(held))
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reservation")
    }
}

impl PartialEq for Reservation {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Reservation {}

/// Whether a write could start now ([`ObjectSink::try_reserve`](crate::ObjectSink::try_reserve)).
#[derive(Debug)]
pub enum Readiness {
    /// It can: with what it holds, or `None` when it needs nothing held.
    Ready(Option<Reservation>),
    /// It would have to wait for other writes to end first.
    Busy,
}
