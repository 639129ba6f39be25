//! A store that does something at given moments ([`HookedSink`]): before each write, before
//! each listing. For tests that need a slow store, or one that changes while it is read.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use sink::{ListStream, ObjectMeta, ObjectSink, PutBody, PutOptions, PutResult, SinkError};

/// Called with the key (a write) or the prefix (a listing) before the call goes on.
pub type Hook = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

/// Hands every call to `inner`, awaiting `before_put` before a write and `before_list`
/// before a listing.
pub struct HookedSink {
    /// The store that does the work.
    pub inner: Arc<dyn ObjectSink>,
    /// Awaited before each write, with its key.
    pub before_put: Option<Hook>,
    /// Awaited before each listing, with its prefix.
    pub before_list: Option<Hook>,
}

impl HookedSink {
    /// `inner` with no hook yet.
    pub fn new(inner: Arc<dyn ObjectSink>) -> Self {
        Self {
            inner,
            before_put: None,
            before_list: None,
        }
    }
}

impl std::fmt::Debug for HookedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookedSink")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for HookedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait::async_trait]
impl ObjectSink for HookedSink {
    async fn put(
        &self,
        key: &str,
        body: PutBody,
        opts: PutOptions,
    ) -> Result<PutResult, SinkError> {
        if let Some(hook) = &self.before_put {
            hook(key.to_string()).await;
        }
        self.inner.put(key, body, opts).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, SinkError> {
        self.inner.head(key).await
    }
    fn try_reserve(&self, content_length: Option<u64>) -> sink::Readiness {
        self.inner.try_reserve(content_length)
    }
    async fn reserve(
        &self,
        content_length: Option<u64>,
    ) -> Result<Option<sink::Reservation>, SinkError> {
        self.inner.reserve(content_length).await
    }
    async fn get(&self, key: &str) -> Result<PutBody, SinkError> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        self.inner.delete(key).await
    }
    async fn tags(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, SinkError> {
        self.inner.tags(key).await
    }
    fn list<'a>(&'a self, prefix: &'a str) -> ListStream<'a> {
        let Some(hook) = self.before_list.clone() else {
            return self.inner.list(prefix);
        };
        let listing = async move {
            hook(prefix.to_string()).await;
            self.inner.list(prefix)
        };
        Box::pin(futures::stream::once(listing).flatten())
    }
}
