//! The PostgreSQL backend (tokio-postgres): shared by several instances. Claims lock the row
//! with `FOR UPDATE SKIP LOCKED` inside a transaction and write a lease with an expiry measured
//! on the database server's clock, so instances on different machines agree on it.
//!
//! Longer than ~800 lines on purpose: it is one `impl Backend` (one statement or transaction
//! per method), which Rust keeps in one block; its migrations, chunks and tests are beside it.

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pg_tls;

use super::custody::find_sql;

mod chunks;
mod claims;
mod group;
mod migrations;
mod releases;

use super::{
    AdoptedObject, Backend, Claim, FindQuery, Finish, IndexPart, LedgerEntry, LedgerError,
    RecordInfo, RecordStatus,
};
use claims::{GroupedError, claim_in};
use group::PgGroup;
use migrations::MIGRATIONS;

const CONVERSATION_COLUMNS: &str =
    "conversation_id, end_time, files, complete, recheck_due, conversation";

/// A conversation row from [`CONVERSATION_COLUMNS`].
fn conversation_row(r: &tokio_postgres::Row) -> super::conversations::ConversationRow {
    let files: String = r.get(2);
    super::conversations::ConversationRow {
        conversation_id: r.get(0),
        end_time: r.get(1),
        // An unreadable list keeps the conversation unsettled.
        files: serde_json::from_str(&files).unwrap_or_else(|_| vec![String::new()]),
        complete: r.get(3),
        recheck_due: r.get(4),
        conversation: r.get(5),
    }
}

/// Server clock in epoch milliseconds.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
const COLUMNS: &str = "recording_id, conversation_id, object_key, status, size, md5, attempts, last_error, media_type, start_time, end_time, lease_owner, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), sha256, facts, lease_until";
/// An arbitrary constant naming the migration advisory lock.
const MIGRATION_LOCK: i64 = 0x0067_656e_6573_7973;

/// `url` without its password (userinfo and `password=` query parameter), for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "postgres://(unparsable URL)".to_string(),
    }
}

pub(super) struct PgLedger {
    config: tokio_postgres::Config,
    /// TLS per `sslmode`; `None` for `disable`.
    tls: Option<MakeRustlsConnect>,
    location: String,
    client: Mutex<Option<Client>>,
    /// Claims and outcomes waiting for a shared transaction.
    group: PgGroup,
    /// A leader's transaction is open on the connection (a leader cancelled between `BEGIN`
    /// and `COMMIT` leaves it so; the next one rolls it back first).
    in_group: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger")
            .field("location", &self.location)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PgLedger {
    pub(super) async fn connect(url: &str) -> Result<Self, LedgerError> {
        let location = redact_url(url);
        let (rest, tls) = pg_tls::split_url(url).map_err(|m| LedgerError::new(&location, m))?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| LedgerError::new(&location, format!("not a PostgreSQL URL: {e}")))?;
        config.ssl_mode(tls.driver_mode());
        let tls = match tls.mode {
            pg_tls::SslMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(
                tls.client_config()
                    .map_err(|m| LedgerError::new(&location, m))?,
            )),
        };
        let this = Self {
            config,
            tls,
            location,
            client: Mutex::new(None),
            group: PgGroup::default(),
            in_group: std::sync::atomic::AtomicBool::new(false),
        };
        let mut guard = this.client.lock().await;
        let client = this.connected(&mut guard).await?;
        this.migrate(client).await?;
        drop(guard);
        Ok(this)
    }

    fn err(&self, e: tokio_postgres::Error) -> LedgerError {
        LedgerError {
            location: self.location.clone(),
            message: describe(&e),
            source: Some(Box::new(e)),
            lease_lost: false,
        }
    }

    /// The live client, reconnecting when the connection was lost (server restart).
    async fn connected<'a>(
        &self,
        slot: &'a mut Option<Client>,
    ) -> Result<&'a mut Client, LedgerError> {
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            let location = self.location.clone();
            let ended = move |r: Result<(), tokio_postgres::Error>| {
                if let Err(e) = r {
                    tracing::warn!(ledger = %location, error = %e, "PostgreSQL connection ended");
                }
            };
            let client = match &self.tls {
                Some(tls) => {
                    let (client, conn) = self
                        .config
                        .connect(tls.clone())
                        .await
                        .map_err(|e| self.err(e))?;
                    tokio::spawn(async move { ended(conn.await) });
                    client
                }
                None => {
                    let (client, conn) =
                        self.config.connect(NoTls).await.map_err(|e| self.err(e))?;
                    tokio::spawn(async move { ended(conn.await) });
                    client
                }
            };
            *slot = Some(client);
        }
        Ok(slot.as_mut().expect("set above"))
    }

    async fn migrate(&self, c: &mut Client) -> Result<(), LedgerError> {
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| self.err(e))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS archiver_schema (version INTEGER NOT NULL)")
            .await
            .map_err(|e| self.err(e))?;
        let version: i32 = tx
            .query_opt("SELECT version FROM archiver_schema", &[])
            .await
            .map_err(|e| self.err(e))?
            .map(|r| r.get(0))
            .unwrap_or(0);
        if version as usize > MIGRATIONS.len() {
            return Err(LedgerError::new(
                &self.location,
                format!(
                    "schema version {version} is newer than this program knows ({}); upgrade genesys-archiver",
                    MIGRATIONS.len()
                ),
            ));
        }
        for m in MIGRATIONS.iter().skip(version as usize) {
            tx.batch_execute(m).await.map_err(|e| self.err(e))?;
        }
        tx.execute("DELETE FROM archiver_schema", &[])
            .await
            .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO archiver_schema (version) VALUES ($1)",
            &[&(MIGRATIONS.len() as i32).max(version)],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Runs one statement with retry-once on a dropped connection.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, LedgerError> {
        let mut guard = self.client.lock().await;
        let c = self.connected(&mut guard).await?;
        match c.execute(sql, params).await {
            Err(e) if e.is_closed() => {
                let c = self.connected(&mut guard).await?;
                c.execute(sql, params).await.map_err(|e| self.err(e))
            }
            r => r.map_err(|e| self.err(e)),
        }
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, LedgerError> {
        let mut guard = self.client.lock().await;
        let c = self.connected(&mut guard).await?;
        match c.query(sql, params).await {
            Err(e) if e.is_closed() => {
                let c = self.connected(&mut guard).await?;
                c.query(sql, params).await.map_err(|e| self.err(e))
            }
            r => r.map_err(|e| self.err(e)),
        }
    }
}

/// What went wrong, from a driver error. The driver's messages never include the password.
/// Its Display of a server error is only "db error"; the server's own message says what went
/// wrong.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        // A TLS or connection failure says why only in its sources (never the password).
        None => {
            let mut m = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                m.push_str(&format!(": {s}"));
                src = s.source();
            }
            m
        }
    }
}

fn entry_from_row(r: &Row) -> LedgerEntry {
    let status: String = r.get(3);
    LedgerEntry {
        recording_id: r.get(0),
        conversation_id: r.get(1),
        key: r.get(2),
        status: RecordStatus::parse(&status).unwrap_or(RecordStatus::Failed),
        size: r.get::<_, Option<i64>>(4).map(|s| s as u64),
        md5: r.get(5),
        attempts: r.get::<_, i32>(6) as u32,
        last_error: r.get(7),
        media_type: r.get(8),
        start_time: r.get(9),
        end_time: r.get(10),
        lease_owner: r.get(11),
        updated_at: r.get(12),
        sha256: r.get(13),
        facts: super::parse_facts(r.get(14)),
        lease_until_ms: r.get(15),
    }
}

#[async_trait::async_trait]
impl Backend for PgLedger {
    fn location(&self) -> &str {
        &self.location
    }

    fn commit_counts(&self) -> Option<(u64, u64)> {
        Some(self.group.counts())
    }

    async fn schema_version(&self) -> Result<u32, LedgerError> {
        let rows = self
            .query("SELECT version FROM archiver_schema", &[])
            .await?;
        Ok(rows.first().map(|r| r.get::<_, i32>(0) as u32).unwrap_or(0))
    }

    async fn claim(
        &self,
        info: RecordInfo,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Claim, LedgerError> {
        let info = std::sync::Arc::new(info);
        let (i, o) = (info.clone(), owner.to_string());
        let grouped = self
            .grouped(move |c| Box::pin(async move { claim_in(c, &i, &o, lease_ms).await }))
            .await;
        match grouped {
            // Two instances' shared transactions claiming the same recordings in different
            // orders can deadlock; the server aborts one statement. Claim again alone.
            Err(GroupedError::Sql(e))
                if e.code() == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
            {
                tracing::debug!(recording = %info.recording_id, "a grouped claim met a deadlock; claiming alone");
                self.claim_alone(&info, owner, lease_ms).await
            }
            other => self.ledger_result(other),
        }
    }

    async fn renew(
        &self,
        recording_id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, LedgerError> {
        self.execute(
            &format!(
                "UPDATE recordings SET lease_until = {NOW_MS} + $3::bigint
                 WHERE recording_id = $1 AND lease_owner = $2 AND status = 'pending'"
            ),
            &[&recording_id, &owner, &lease_ms],
        )
        .await
        .map(|n| n == 1)
    }

    async fn finish(
        &self,
        recording_id: &str,
        status: RecordStatus,
        f: Finish,
    ) -> Result<bool, LedgerError> {
        let id = recording_id.to_string();
        let written = self
            .grouped(move |c| {
                Box::pin(async move {
                    c.execute(
                        "UPDATE recordings SET status = $2, object_key = COALESCE($3, object_key),
                       size = COALESCE($4, size), md5 = COALESCE($5, md5), last_error = $6,
                       attempts = attempts + $7, lease_owner = NULL, lease_until = NULL,
                       updated_at = now(),
                       sha256 = CASE WHEN $2 = 'archived' THEN $9 ELSE sha256 END,
                       index_seq = CASE WHEN $2 = 'archived' THEN NULL ELSE index_seq END
                     WHERE recording_id = $1 AND status = 'pending' AND lease_owner = $8",
                        &[
                            &id,
                            &status.as_str(),
                            &f.key,
                            &f.size.map(|s| s as i64),
                            &f.md5,
                            &f.error,
                            &(f.attempts as i32),
                            &f.owner,
                            &f.sha256,
                        ],
                    )
                    .await
                    .map(|n| n == 1)
                })
            })
            .await;
        self.ledger_result(written)
    }

    async fn give_up(&self, recording_id: &str, reason: &str) -> Result<bool, LedgerError> {
        self.execute(
            "UPDATE recordings SET status = 'quarantined', last_error = $2, updated_at = now()
             WHERE recording_id = $1 AND status = 'failed'",
            &[&recording_id, &reason],
        )
        .await
        .map(|n| n == 1)
    }

    async fn release(&self, recording_id: &str, owner: &str) -> Result<(), LedgerError> {
        self.execute(
            "UPDATE recordings SET lease_owner = NULL, lease_until = NULL, updated_at = now()
             WHERE recording_id = $1 AND lease_owner = $2 AND status = 'pending'",
            &[&recording_id, &owner],
        )
        .await
        .map(|_| ())
    }

    async fn adopt(&self, o: AdoptedObject) -> Result<bool, LedgerError> {
        self.execute(
            "INSERT INTO recordings (recording_id, conversation_id, object_key, status, size,
               md5, media_type, start_time, end_time, sha256)
             VALUES ($1, $2, $3, 'archived', $4, $5, $6, $7, $8, $9)
             ON CONFLICT (recording_id) DO UPDATE SET status = 'archived',
               object_key = excluded.object_key, size = COALESCE(excluded.size, recordings.size),
               md5 = COALESCE(excluded.md5, recordings.md5), last_error = NULL,
               lease_owner = NULL, lease_until = NULL, sha256 = excluded.sha256,
               index_seq = NULL,
               media_type = COALESCE(recordings.media_type, excluded.media_type),
               start_time = COALESCE(recordings.start_time, excluded.start_time),
               end_time = COALESCE(recordings.end_time, excluded.end_time), updated_at = now()
             WHERE recordings.status <> 'archived'",
            &[
                &o.recording_id,
                &o.conversation_id,
                &o.key,
                &o.size.map(|s| s as i64),
                &o.md5,
                &o.media_type,
                &o.start_time,
                &o.end_time,
                &o.sha256,
            ],
        )
        .await
        .map(|n| n == 1)
    }

    async fn entries(&self, status: Option<RecordStatus>) -> Result<Vec<LedgerEntry>, LedgerError> {
        let s = status.map(RecordStatus::as_str);
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM recordings WHERE $1::text IS NULL OR status = $1
                     ORDER BY recording_id"
                ),
                &[&s],
            )
            .await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    async fn entry(&self, recording_id: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM recordings WHERE recording_id = $1"),
                &[&recording_id],
            )
            .await?;
        Ok(rows.first().map(entry_from_row))
    }

    async fn set_status(
        &self,
        recording_id: &str,
        from: RecordStatus,
        to: RecordStatus,
    ) -> Result<bool, LedgerError> {
        self.execute(
            "UPDATE recordings SET status = $3, updated_at = now()
             WHERE recording_id = $1 AND status = $2",
            &[&recording_id, &from.as_str(), &to.as_str()],
        )
        .await
        .map(|n| n == 1)
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<String>, LedgerError> {
        let rows = self
            .query("SELECT value FROM checkpoints WHERE name = $1", &[&name])
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn set_checkpoint(&self, name: &str, value: &str) -> Result<(), LedgerError> {
        self.execute(
            "INSERT INTO checkpoints (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )
        .await
        .map(|_| ())
    }

    async fn upload_started(
        &self,
        recording_id: &str,
        owner: &str,
        upload: &sink::StartedUpload,
    ) -> Result<(), LedgerError> {
        self.execute(
            "INSERT INTO uploads (upload_id, object_key, recording_id, owner)
             VALUES ($1, $2, $3, $4) ON CONFLICT (upload_id) DO NOTHING",
            &[&upload.upload_id, &upload.key, &recording_id, &owner],
        )
        .await
        .map(|_| ())
    }

    async fn uploads_ended(&self, upload_ids: &[String]) -> Result<(), LedgerError> {
        if upload_ids.is_empty() {
            return Ok(());
        }
        self.execute(
            "DELETE FROM uploads WHERE upload_id = ANY($1)",
            &[&upload_ids],
        )
        .await
        .map(|_| ())
    }

    async fn put_conversations(
        &self,
        rows: Vec<super::conversations::ConversationRow>,
    ) -> Result<(), LedgerError> {
        // One write (in a shared transaction) for the whole batch result.
        let written = self
            .grouped(move |c| {
                Box::pin(async move {
                    for r in &rows {
                        let files = serde_json::to_string(&r.files).unwrap_or_else(|_| "[]".into());
                        c.execute(
                            "INSERT INTO conversations (conversation_id, end_time, files, complete,
                           recheck_due, conversation)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (conversation_id) DO UPDATE SET end_time = excluded.end_time,
                           files = excluded.files, complete = excluded.complete,
                           recheck_due = excluded.recheck_due,
                           conversation = excluded.conversation, resolved_at = now()",
                            &[
                                &r.conversation_id,
                                &r.end_time,
                                &files,
                                &r.complete,
                                &r.recheck_due,
                                &r.conversation,
                            ],
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await;
        self.ledger_result(written)
    }

    async fn conversations(
        &self,
        ids: &[String],
    ) -> Result<Vec<super::conversations::ConversationRow>, LedgerError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations
                     WHERE conversation_id = ANY($1)"
                ),
                &[&ids],
            )
            .await?;
        Ok(rows.iter().map(conversation_row).collect())
    }

    async fn due_rechecks(
        &self,
        present_ms: i64,
        limit: usize,
    ) -> Result<Vec<super::conversations::ConversationRow>, LedgerError> {
        let limit = limit as i64;
        let rows = self
            .query(
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations
                     WHERE recheck_due IS NOT NULL AND recheck_due <= $1
                     ORDER BY recheck_due, conversation_id LIMIT $2"
                ),
                &[&present_ms, &limit],
            )
            .await?;
        Ok(rows.iter().map(conversation_row).collect())
    }

    async fn rechecks_ahead(&self, present_ms: i64) -> Result<(u64, Option<i64>), LedgerError> {
        let rows = self
            .query(
                "SELECT count(*), max(recheck_due) FROM conversations WHERE recheck_due > $1",
                &[&present_ms],
            )
            .await?;
        let n: i64 = rows.first().map_or(0, |r| r.get(0));
        let last: Option<i64> = rows.first().and_then(|r| r.get(1));
        Ok((n as u64, last))
    }

    async fn statuses(
        &self,
        recording_ids: &[String],
    ) -> Result<std::collections::HashMap<String, RecordStatus>, LedgerError> {
        let rows = self
            .query(
                "SELECT recording_id, status FROM recordings WHERE recording_id = ANY($1)",
                &[&recording_ids],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let s: String = r.get(1);
                RecordStatus::parse(&s).map(|s| (r.get(0), s))
            })
            .collect())
    }

    async fn find(&self, q: FindQuery) -> Result<Vec<LedgerEntry>, LedgerError> {
        let (sql, args) = find_sql(&q, COLUMNS, |n| format!("${n}"));
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
            .iter()
            .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = self.query(&sql, &params).await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    async fn index_parts(&self) -> Result<Vec<IndexPart>, LedgerError> {
        let rows = self
            .query(
                "SELECT seq, object_key, previous, sha256, entries FROM index_parts ORDER BY seq",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| IndexPart {
                seq: r.get::<_, i64>(0) as u64,
                key: r.get(1),
                previous: r.get(2),
                sha256: r.get(3),
                entries: r.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    async fn open_index_part(
        &self,
        part: IndexPart,
        limit: u32,
    ) -> Result<Option<u64>, LedgerError> {
        let mut guard = self.client.lock().await;
        let c = self.connected(&mut guard).await?;
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        let seq = part.seq as i64;
        // Another instance opening the same part waits for this transaction and then inserts
        // nothing.
        let inserted = tx
            .execute(
                "INSERT INTO index_parts (seq, object_key, previous, entries) VALUES ($1, $2, $3, 0)
                 ON CONFLICT (seq) DO NOTHING",
                &[&seq, &part.key, &part.previous],
            )
            .await
            .map_err(|e| self.err(e))?;
        if inserted == 0 {
            tx.rollback().await.map_err(|e| self.err(e))?;
            return Ok(None);
        }
        let objects = tx
            .execute(
                "UPDATE recordings SET index_seq = $1 WHERE recording_id IN (
                   SELECT recording_id FROM recordings
                   WHERE status = 'archived' AND index_seq IS NULL
                   ORDER BY updated_at, recording_id LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&seq, &i64::from(limit)],
            )
            .await
            .map_err(|e| self.err(e))?;
        // Releases confirmed or taken back since the last part (see `releases`).
        let releases = tx
            .execute(
                "UPDATE releases SET listed_in = $1 WHERE recording_id IN (
                   SELECT recording_id FROM releases
                   WHERE state IN ('released', 'undone') AND listed_in IS NULL
                   ORDER BY recording_id LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&seq, &i64::from(limit)],
            )
            .await
            .map_err(|e| self.err(e))?;
        let n = objects + releases;
        if n == 0 {
            tx.rollback().await.map_err(|e| self.err(e))?;
            return Ok(Some(0));
        }
        tx.execute(
            "UPDATE index_parts SET entries = $2 WHERE seq = $1",
            &[&seq, &(n as i64)],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Some(n))
    }

    async fn index_part_page(
        &self,
        seq: u64,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM recordings
                     WHERE index_seq = $1 AND ($3::text IS NULL OR recording_id > $3)
                     ORDER BY recording_id LIMIT $2"
                ),
                &[&(seq as i64), &i64::from(limit), &after],
            )
            .await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    async fn insert_index_part(&self, part: IndexPart) -> Result<bool, LedgerError> {
        self.execute(
            "INSERT INTO index_parts (seq, object_key, previous, sha256, entries)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
            &[
                &(part.seq as i64),
                &part.key,
                &part.previous,
                &part.sha256,
                &(part.entries as i64),
            ],
        )
        .await
        .map(|n| n == 1)
    }

    async fn move_index_part(&self, from: u64, to: u64, key: &str) -> Result<bool, LedgerError> {
        // One statement: the part and its rows move together or not at all.
        let rows = self
            .query(
                "WITH moved AS (
                   UPDATE index_parts SET seq = $2, object_key = $3
                   WHERE seq = $1 AND sha256 IS NULL
                     AND NOT EXISTS (SELECT 1 FROM index_parts WHERE seq = $2)
                   RETURNING seq),
                 rows AS (
                   UPDATE recordings SET index_seq = $2
                   WHERE index_seq = $1 AND EXISTS (SELECT 1 FROM moved)),
                 released AS (
                   UPDATE releases SET listed_in = $2
                   WHERE listed_in = $1 AND EXISTS (SELECT 1 FROM moved))
                 SELECT count(*) FROM moved",
                &[&(from as i64), &(to as i64), &key],
            )
            .await?;
        let n: i64 = rows.first().map_or(0, |r| r.get(0));
        Ok(n == 1)
    }

    async fn restore_indexed(
        &self,
        seq: u64,
        entries: Vec<super::custody::IndexedObject>,
    ) -> Result<u64, LedgerError> {
        let mut n = 0u64;
        for e in &entries {
            let marked = self
                .execute(
                    "UPDATE recordings SET index_seq = $1,
                       md5 = COALESCE(md5, $4), sha256 = COALESCE(sha256, $5)
                     WHERE recording_id = $2 AND object_key = $3 AND status = 'archived'
                       AND index_seq IS NULL
                       AND ($6::BIGINT IS NULL OR size IS NULL OR size = $6)
                       AND ($4::TEXT IS NULL OR md5 IS NULL OR lower(md5) = lower($4))
                       AND ($5::TEXT IS NULL OR sha256 IS NULL OR lower(sha256) = lower($5))",
                    &[
                        &(seq as i64),
                        &e.recording_id,
                        &e.key,
                        &e.md5,
                        &e.sha256,
                        &e.size.map(|s| s as i64),
                    ],
                )
                .await?;
            if marked > 0 && !e.facts.is_empty() {
                let json = serde_json::to_string(&e.facts).ok();
                let set = self
                    .execute(
                        "UPDATE recordings SET facts = $2 WHERE recording_id = $1 AND facts IS NULL",
                        &[&e.recording_id, &json],
                    )
                    .await?;
                let terms = e.facts.terms();
                if set > 0 && !terms.is_empty() {
                    let names: Vec<&str> = terms.iter().map(|(n, _)| *n).collect();
                    let values: Vec<&str> = terms.iter().map(|(_, v)| v.as_ref()).collect();
                    self.execute(
                        "INSERT INTO search_terms (name, value, recording_id)
                         SELECT n, v, $3 FROM unnest($1::text[], $2::text[]) AS t(n, v)
                         ON CONFLICT DO NOTHING",
                        &[&names, &values, &e.recording_id],
                    )
                    .await?;
                }
            }
            n += marked;
        }
        Ok(n)
    }

    async fn close_index_part(&self, seq: u64, sha256: &str) -> Result<(), LedgerError> {
        self.execute(
            "UPDATE index_parts SET sha256 = $2 WHERE seq = $1",
            &[&(seq as i64), &sha256],
        )
        .await
        .map(|_| ())
    }

    async fn abandoned_uploads(&self) -> Result<Vec<sink::StartedUpload>, LedgerError> {
        let rows = self
            .query(
                &format!(
                    "SELECT u.object_key, u.upload_id FROM uploads u
                     WHERE NOT EXISTS (SELECT 1 FROM recordings r
                       WHERE r.recording_id = u.recording_id AND r.status = 'pending'
                         AND r.lease_owner = u.owner AND r.lease_until > {NOW_MS})
                     ORDER BY u.started_at, u.upload_id"
                ),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| sink::StartedUpload {
                key: r.get(0),
                upload_id: r.get(1),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_appear_in_the_location() {
        let r = redact_url("postgres://arch:s3cr3t@db.example:5432/ledger?sslmode=disable");
        assert!(
            !r.contains("s3cr3t") && r.contains("arch") && r.contains("db.example"),
            "{r}"
        );
        let r = redact_url("postgresql://db/ledger?user=arch&password=s3cr3t");
        assert!(!r.contains("s3cr3t") && r.contains("user=arch"), "{r}");
        assert!(!redact_url("postgres://a:pw@[bad").contains("pw"));
    }
}
