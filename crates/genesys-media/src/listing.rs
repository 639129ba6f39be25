//! Discovery in two halves, for instances that share the work through a common store:
//! one instance *lists* an interval ([`GenesysClient::list_known`]) into chunks of at most
//! 100 finished conversations (one batch download job each); any instance *resolves* a chunk
//! ([`GenesysClient::resolve_listed`]) right before it archives the recordings. Together they
//! do what [`GenesysClient::discover_known`] does in one process, with the same API calls.

use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, Stream, StreamExt};

use crate::client::{GenesysClient, SourceMode};
use crate::discovery::{BATCH_MAX, Collector, Discovered, DiscoveryQuery, Work};
use crate::error::{Error, Result};
use crate::known::KnownConversations;
use crate::models::AnalyticsConversation;

/// One unit of what [`GenesysClient::list_known`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// Finished conversations to resolve (at most 100: one batch download job), none of them
    /// settled in the caller's [`KnownConversations`].
    Conversations(Vec<AnalyticsConversation>),
    /// An item that needs no resolution: a conversation in progress, a settled conversation,
    /// a part of the interval that cannot be listed.
    Item(Box<Discovered>),
}

impl GenesysClient {
    /// Lists the interval's conversations without resolving their media: finished ones come
    /// in chunks of at most 100 ([`Listed::Conversations`]), everything else as an item. Costs
    /// only the analytics calls. The stream ends with an error when the listing did not
    /// complete (it ends without one only when every part of the interval was listed).
    ///
    /// The compat listing source has no conversations to list: an
    /// [`Error::InvalidArgument`].
    pub fn list_known(
        &self,
        query: DiscoveryQuery,
        known: Option<Arc<dyn KnownConversations>>,
    ) -> impl Stream<Item = Result<Listed>> + Send + 'static {
        let (work_tx, work_rx) = mpsc::channel::<Work>(1);
        let (done_tx, done_rx) = oneshot::channel::<Result<()>>();
        let client = self.clone();
        tokio::spawn(async move {
            let run = std::panic::AssertUnwindSafe(async {
                if client.config().source == SourceMode::CompatListing {
                    return Err(Error::InvalidArgument(
                        "the compat listing source cannot be listed in chunks; use the batch or per-recording source".into(),
                    ));
                }
                if query.start >= query.end {
                    return Err(Error::InvalidArgument(format!(
                        "interval start {} is not before its end {}",
                        query.start.to_rfc3339(),
                        query.end.to_rfc3339()
                    )));
                }
                let mut collector = Collector::new(&query, known, work_tx);
                if collector.carry_in().await
                    && client.list_conversations(&query, &mut collector).await?
                {
                    collector.finish().await;
                }
                Ok(())
            });
            // A panic drops `done_tx`: the stream reports an incomplete listing.
            if let Ok(r) = run.catch_unwind().await {
                let _ = done_tx.send(r);
            }
        });
        let items = work_rx.map(|w| {
            Ok(match w {
                Work::Conversations(c) => Listed::Conversations(c),
                Work::Item(i) => Listed::Item(i),
            })
        });
        let end = done_rx
            .map(|r| match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(Err(e)),
                Err(_) => Some(Err(Error::Decode {
                    endpoint: "discovery".into(),
                    message: "listing stopped unexpectedly; the interval was not fully listed"
                        .into(),
                })),
            })
            .into_stream()
            .filter_map(std::future::ready);
        items.chain(end)
    }

    /// Resolves one chunk of finished conversations (at most 100; as [`Self::list_known`]
    /// gave them) into discovery items with fresh media URLs, tells `known` what each
    /// conversation held, and keeps the recordings `query`'s media-type filter keeps.
    pub async fn resolve_listed(
        &self,
        query: &DiscoveryQuery,
        conversations: Vec<AnalyticsConversation>,
        known: Option<&dyn KnownConversations>,
    ) -> Result<Vec<Discovered>> {
        if conversations.len() > BATCH_MAX {
            return Err(Error::InvalidArgument(format!(
                "{} conversations in one chunk; at most {BATCH_MAX}",
                conversations.len()
            )));
        }
        let convs = conversations.clone();
        let items = self.resolve_conversations(conversations, known).await?;
        Ok(crate::discovery::after_resolution(query, convs, items, known).await)
    }
}
