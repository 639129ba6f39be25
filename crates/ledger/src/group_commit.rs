//! Group commit for the SQLite ledger: writes from every worker share transactions, so one
//! fsync makes many rows durable, with the same promise per write: a write's caller hears of
//! its outcome only after the transaction holding it committed.
//!
//! No extra thread: each write queues its statements and then takes the connection; whoever
//! gets the connection first commits everything queued by then (its own and others') in one
//! `BEGIN IMMEDIATE ... COMMIT`, each write in a savepoint of its own so a failing one rolls
//! back alone. Writes queued while that commit's fsync runs go together into the next one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

/// Hands a write's outcome to its caller once the transaction's fate is known.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A queued write: runs its statements in a savepoint of the open transaction (`None`: the
/// transaction could not begin, nothing runs).
type Job = Box<dyn FnOnce(Option<&Connection>) -> Deliver + Send>;

/// Why a grouped write did not happen.
#[derive(Debug)]
pub(super) enum WriteError {
    /// Its statements failed (and were rolled back alone).
    Sql(rusqlite::Error),
    /// The shared transaction could not begin or commit: nothing of it was written.
    Commit(String),
    /// The task running the commit failed.
    Task(String),
}

/// The queue of writes waiting for a transaction, and how many transactions committed.
#[derive(Default)]
pub(super) struct GroupCommit {
    pending: Mutex<Vec<Job>>,
    commits: AtomicU64,
    writes: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("commits", &self.commits.load(Ordering::Relaxed))
            .field("writes", &self.writes.load(Ordering::Relaxed))
            .finish()
    }
}

/// Runs `f` in a savepoint: released when it succeeds, rolled back when it fails.
fn in_savepoint<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.execute_batch("SAVEPOINT write")?;
    match f(c) {
        Ok(v) => {
            c.execute_batch("RELEASE write")?;
            Ok(v)
        }
        Err(e) => {
            c.execute_batch("ROLLBACK TO write; RELEASE write")?;
            Err(e)
        }
    }
}

impl GroupCommit {
    /// Transactions committed and writes they held, since the ledger was opened.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    /// Queues `f` and commits it (with whatever else is queued) on `conn`; returns its result
    /// once its transaction committed.
    pub(super) async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, WriteError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |c: Option<&Connection>| {
            let r = c.map(|c| in_savepoint(c, f));
            Box::new(move |commit: Result<(), String>| {
                let _ = tx.send(match (commit, r) {
                    (Ok(()), Some(r)) => r.map_err(WriteError::Sql),
                    (Ok(()), None) => Err(WriteError::Commit("the write did not run".into())),
                    (Err(m), _) => Err(WriteError::Commit(m)),
                });
            })
        });
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(job);
        let me = self.clone();
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            let jobs = std::mem::take(&mut *me.pending.lock().unwrap_or_else(|p| p.into_inner()));
            if !jobs.is_empty() {
                me.commit(&c, jobs);
            }
        })
        .await
        .map_err(|e| WriteError::Task(e.to_string()))?;
        // The job was committed by this task or by one that took it before; either delivered
        // its outcome before releasing the connection.
        rx.await
            .map_err(|_| WriteError::Task("the commit ended without an answer".into()))?
    }

    fn commit(&self, c: &Connection, jobs: Vec<Job>) {
        let n = jobs.len() as u64;
        // A write that panicked mid-transaction left it open (its task died holding the
        // connection): undo it, or every later BEGIN would fail.
        if !c.is_autocommit() {
            let _ = c.execute_batch("ROLLBACK");
        }
        if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
            let m = format!("cannot begin a transaction: {e}");
            for job in jobs {
                job(None)(Err(m.clone()));
            }
            return;
        }
        let delivers: Vec<Deliver> = jobs.into_iter().map(|job| job(Some(c))).collect();
        let outcome = c.execute_batch("COMMIT").map_err(|e| {
            let _ = c.execute_batch("ROLLBACK");
            e.to_string()
        });
        if outcome.is_ok() {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.writes.fetch_add(n, Ordering::Relaxed);
        }
        for d in delivers {
            d(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Arc<Mutex<Connection>> {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        Arc::new(Mutex::new(c))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    // The test holds the connection's lock on purpose while the writes queue behind it.
    #[allow(clippy::await_holding_lock)]
    async fn concurrent_writes_share_transactions_and_a_failing_one_rolls_back_alone() {
        let conn = conn();
        let group = Arc::new(GroupCommit::default());
        // Hold the connection so the writes queue up behind it, as they do behind an fsync.
        let held = conn.lock().unwrap();
        let mut tasks = Vec::new();
        for i in 0..50i64 {
            let (g, c) = (group.clone(), conn.clone());
            tasks.push(tokio::spawn(async move {
                g.write(&c, move |c| {
                    // Write 49 inserts its own row twice: it fails on the primary key after its
                    // first insert, whatever order the writes queued in.
                    c.execute("INSERT INTO t (id) VALUES (?1)", [i])?;
                    if i == 49 {
                        c.execute("INSERT INTO t (id) VALUES (?1)", [i])?;
                    }
                    Ok(i)
                })
                .await
            }));
        }
        while group.pending.lock().unwrap().len() < 50 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut failed = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(v) => assert_eq!(v, i as i64),
                Err(WriteError::Sql(_)) => failed.push(i),
                Err(e) => panic!("{i}: {e:?}"),
            }
        }
        assert_eq!(failed, [49], "only the write that broke the key failed");
        let rows: i64 = conn
            .lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            rows, 49,
            "every other write committed, the failed one left nothing"
        );
        let (commits, writes) = group.counts();
        assert_eq!(writes, 50);
        assert!(commits <= 2, "{commits} transactions for 50 writes");
    }

    #[tokio::test]
    async fn a_write_that_panics_leaves_the_connection_usable() {
        let conn = conn();
        let group = Arc::new(GroupCommit::default());
        let broken = group
            .write(&conn, |c| -> rusqlite::Result<()> {
                c.execute("INSERT INTO t (id) VALUES (1)", [])?;
                panic!("a bug in a write")
            })
            .await;
        assert!(matches!(broken, Err(WriteError::Task(_))), "{broken:?}");
        group
            .write(&conn, |c| c.execute("INSERT INTO t (id) VALUES (2)", []))
            .await
            .expect("the next write commits");
        let ids: Vec<i64> = {
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            let mut st = c.prepare("SELECT id FROM t ORDER BY id").unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(ids, [2], "the panicked write's row was rolled back");
    }
}
