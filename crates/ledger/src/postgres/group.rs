//! Group commit for the PostgreSQL ledger, as for SQLite (`ledger::group_commit`): the claims
//! and outcomes of every worker share transactions, so one WAL flush makes many rows durable,
//! with the same promise per write: its caller hears of its outcome only after the
//! transaction holding it committed.
//!
//! Each write queues itself and then waits for the connection; whoever gets it first runs
//! everything queued by then in one `BEGIN ... COMMIT`, each write in a savepoint of its own so
//! a failing one rolls back alone. Writes queued while that commit runs go together into the
//! next one.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_postgres::Client;

/// Hands a write's outcome to its caller once the transaction's fate is known.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A queued write: runs its statements in a savepoint of the open transaction (`None`: the
/// transaction could not begin, nothing runs).
type Job = Box<dyn for<'c> FnOnce(Option<&'c Client>) -> BoxFuture<'c, Deliver> + Send>;

/// Why a grouped write did not happen.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Its statements failed (and were rolled back alone).
    Sql(tokio_postgres::Error),
    /// The shared transaction could not begin or commit: nothing of it was written.
    Commit(String),
}

/// The queue of writes waiting for a transaction, and how many transactions committed.
#[derive(Default)]
pub(crate) struct PgGroup {
    pending: StdMutex<Vec<Job>>,
    commits: AtomicU64,
    writes: AtomicU64,
}

impl std::fmt::Debug for PgGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgGroup")
            .field("commits", &self.commits.load(Ordering::Relaxed))
            .field("writes", &self.writes.load(Ordering::Relaxed))
            .finish()
    }
}

impl PgGroup {
    /// Transactions committed and the writes they held, since the ledger was opened.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    /// Queues `f`. The caller then takes the connection and calls [`Self::commit`], which
    /// commits whatever is queued (this write unless an earlier caller's commit took it); the
    /// receiver answers once the transaction holding `f` ended.
    pub(crate) fn queue<T: Send + 'static>(
        &self,
        f: impl for<'c> FnOnce(&'c Client) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>
        + Send
        + 'static,
    ) -> oneshot::Receiver<Result<T, WriteError>> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |c: Option<&Client>| {
            Box::pin(async move {
                let r = match c {
                    Some(c) => Some(in_savepoint(c, f).await),
                    None => None,
                };
                let deliver: Deliver = Box::new(move |commit: Result<(), String>| {
                    let _ = tx.send(match (commit, r) {
                        (Ok(()), Some(r)) => r.map_err(WriteError::Sql),
                        (Ok(()), None) => Err(WriteError::Commit("the write did not run".into())),
                        (Err(m), _) => Err(WriteError::Commit(m)),
                    });
                });
                deliver
            })
        });
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(job);
        rx
    }

    /// Takes what is queued (nothing when an earlier leader took this caller's write too).
    fn take(&self) -> Vec<Job> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Tells every queued write that no transaction could be had (`m` says why).
    pub(crate) async fn abort(&self, m: &str) {
        for job in self.take() {
            job(None).await(Err(format!("no connection for the transaction: {m}")));
        }
    }

    /// Commits everything queued on `c` (the caller holds the connection). A `BEGIN` that
    /// fails because the connection is gone is reported to every queued write.
    pub(crate) async fn commit(&self, c: &Client) {
        let jobs = self.take();
        if jobs.is_empty() {
            return;
        }
        let n = jobs.len() as u64;
        if let Err(e) = c.batch_execute("BEGIN").await {
            let m = format!("cannot begin a transaction: {}", super::describe(&e));
            for job in jobs {
                job(None).await(Err(m.clone()));
            }
            return;
        }
        let mut delivers = Vec::with_capacity(jobs.len());
        for job in jobs {
            delivers.push(job(Some(c)).await);
        }
        let outcome = match c.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                Err(format!(
                    "the transaction did not commit: {}",
                    super::describe(&e)
                ))
            }
        };
        if outcome.is_ok() {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.writes.fetch_add(n, Ordering::Relaxed);
        }
        for d in delivers {
            d(outcome.clone());
        }
    }
}

/// Runs `f` in a savepoint: released when it succeeds, rolled back when it fails.
async fn in_savepoint<T>(
    c: &Client,
    f: impl for<'c> FnOnce(&'c Client) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    c.batch_execute("SAVEPOINT write").await?;
    match f(c).await {
        Ok(v) => {
            c.batch_execute("RELEASE SAVEPOINT write").await?;
            Ok(v)
        }
        Err(e) => {
            c.batch_execute("ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write")
                .await?;
            Err(e)
        }
    }
}
