//! The ledger: one row per recording with its key, size, MD5, status and attempts, in an
//! embedded SQLite database (rusqlite), written before and after every upload so a restart
//! knows what is stored without asking the store.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// Status of a recording in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    /// An upload started and has not finished.
    Pending,
    /// Stored and verified.
    Archived,
    /// The last run gave up on it.
    Failed,
    /// It failed persistently (integrity) and waits for an operator.
    Quarantined,
}

impl RecordStatus {
    fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Pending => "pending",
            RecordStatus::Archived => "archived",
            RecordStatus::Failed => "failed",
            RecordStatus::Quarantined => "quarantined",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RecordStatus::Pending,
            "archived" => RecordStatus::Archived,
            "failed" => RecordStatus::Failed,
            "quarantined" => RecordStatus::Quarantined,
            _ => return None,
        })
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Recording id.
    pub recording_id: String,
    /// Conversation id.
    pub conversation_id: String,
    /// Object key.
    pub key: String,
    /// Status.
    pub status: RecordStatus,
    /// Bytes stored (archived only).
    pub size: Option<u64>,
    /// MD5 hex (archived only).
    pub md5: Option<String>,
    /// Attempts over all runs.
    pub attempts: u32,
    /// Last error, for failed and quarantined rows.
    pub last_error: Option<String>,
}

/// A ledger error, naming the database.
#[derive(Debug, thiserror::Error)]
#[error("ledger {path}: {message}")]
pub struct LedgerError {
    path: String,
    message: String,
    #[source]
    source: Option<rusqlite::Error>,
}

impl LedgerError {
    fn sql(path: &str, e: rusqlite::Error) -> Self {
        Self {
            path: path.to_string(),
            message: e.to_string(),
            source: Some(e),
        }
    }
}

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE recordings (
        recording_id    TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        object_key      TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('pending','archived','failed','quarantined')),
        size            INTEGER,
        md5             TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    CREATE INDEX recordings_status ON recordings(status);
    CREATE TABLE checkpoints (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
"];

/// The SQLite ledger. Cheap to clone; calls run on the blocking pool.
#[derive(Debug, Clone)]
pub struct Ledger {
    conn: Arc<Mutex<Connection>>,
    path: String,
}

impl Ledger {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let p = path.as_ref().display().to_string();
        let conn = Connection::open(path.as_ref()).map_err(|e| LedgerError::sql(&p, e))?;
        Self::init(conn, p.clone())
    }

    /// An in-memory ledger (tests).
    pub fn in_memory() -> Result<Self, LedgerError> {
        let conn = Connection::open_in_memory().map_err(|e| LedgerError::sql(":memory:", e))?;
        Self::init(conn, ":memory:".into())
    }

    fn init(mut conn: Connection, path: String) -> Result<Self, LedgerError> {
        let p = path.clone();
        let err = |e| LedgerError::sql(&p, e);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(&err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&err)?;
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&err)?;
        if version as usize > MIGRATIONS.len() {
            return Err(LedgerError {
                path,
                message: format!(
                    "schema version {version} is newer than this program knows ({}); upgrade genesys-archiver",
                    MIGRATIONS.len()
                ),
                source: None,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(&err)?;
            tx.execute_batch(m).map_err(&err)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> u32 {
        self.lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.lock();
            f(&conn).map_err(|e| LedgerError::sql(&this.path, e))
        })
        .await
        .unwrap_or_else(|e| {
            Err(LedgerError {
                path: self.path.clone(),
                message: format!("ledger task failed: {e}"),
                source: None,
            })
        })
    }

    /// The key under which `recording_id` is archived, if the ledger says it is.
    pub async fn archived_key(&self, recording_id: &str) -> Result<Option<String>, LedgerError> {
        let id = recording_id.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT object_key FROM recordings WHERE recording_id = ?1 AND status = 'archived'",
                params![id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Records that an attempt is starting (before any byte is written).
    pub async fn begin(
        &self,
        recording_id: &str,
        conversation_id: &str,
        key: &str,
    ) -> Result<(), LedgerError> {
        let (r, c, k) = (
            recording_id.to_string(),
            conversation_id.to_string(),
            key.to_string(),
        );
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO recordings (recording_id, conversation_id, object_key, status, attempts)
                 VALUES (?1, ?2, ?3, 'pending', 1)
                 ON CONFLICT(recording_id) DO UPDATE SET status = 'pending', object_key = ?3,
                   attempts = attempts + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
                params![r, c, k],
            )
        })
        .await
        .map(|_| ())
    }

    /// Records a verified upload.
    pub async fn archived(
        &self,
        recording_id: &str,
        key: &str,
        size: u64,
        md5: &str,
    ) -> Result<(), LedgerError> {
        let (r, k, m) = (recording_id.to_string(), key.to_string(), md5.to_string());
        self.run(move |conn| {
            conn.execute(
                "UPDATE recordings SET status = 'archived', object_key = ?2, size = ?3, md5 = ?4, last_error = NULL,
                   updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE recording_id = ?1",
                params![r, k, size as i64, m],
            )
        })
        .await
        .map(|_| ())
    }

    /// Records that the run gave up (quarantined when `quarantine`).
    pub async fn failed(
        &self,
        recording_id: &str,
        reason: &str,
        quarantine: bool,
    ) -> Result<(), LedgerError> {
        let (r, e) = (recording_id.to_string(), reason.to_string());
        let status = if quarantine {
            RecordStatus::Quarantined
        } else {
            RecordStatus::Failed
        }
        .as_str();
        self.run(move |conn| {
            conn.execute(
                "UPDATE recordings SET status = ?2, last_error = ?3, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                 WHERE recording_id = ?1",
                params![r, status, e],
            )
        })
        .await
        .map(|_| ())
    }

    /// Every row, or those with `status`.
    pub async fn entries(
        &self,
        status: Option<RecordStatus>,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.run(move |conn| {
            let mut st = conn.prepare(
                "SELECT recording_id, conversation_id, object_key, status, size, md5, attempts, last_error
                 FROM recordings WHERE ?1 IS NULL OR status = ?1 ORDER BY recording_id",
            )?;
            let rows = st.query_map(params![status.map(RecordStatus::as_str)], |r| {
                let status: String = r.get(3)?;
                Ok(LedgerEntry {
                    recording_id: r.get(0)?,
                    conversation_id: r.get(1)?,
                    key: r.get(2)?,
                    status: RecordStatus::parse(&status).unwrap_or(RecordStatus::Failed),
                    size: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
                    md5: r.get(5)?,
                    attempts: r.get(6)?,
                    last_error: r.get(7)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_move_through_their_states_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.schema_version(), MIGRATIONS.len() as u32);
        l.begin("r1", "c1", "k1").await.unwrap();
        assert_eq!(
            l.archived_key("r1").await.unwrap(),
            None,
            "pending is not archived"
        );
        l.archived("r1", "k1", 42, "abc").await.unwrap();
        l.begin("r2", "c1", "k2").await.unwrap();
        l.failed("r2", "md5 mismatch", true).await.unwrap();
        l.begin("r2", "c1", "k2").await.unwrap();
        drop(l);
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.archived_key("r1").await.unwrap().as_deref(), Some("k1"));
        let all = l.entries(None).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].size, Some(42));
        assert_eq!(all[1].status, RecordStatus::Pending);
        assert_eq!(all[1].attempts, 2);
        assert_eq!(
            l.entries(Some(RecordStatus::Archived)).await.unwrap().len(),
            1
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = Ledger::open(&path).unwrap_err().to_string();
        assert!(e.contains("newer") && e.contains("state.db"), "{e}");
    }
}
