//! The SQLite schema, one migration per entry: the files the ledger has always run, in order.

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
pub(crate) const MIGRATIONS: &[&str] = &[
    "
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
    ",
    "
    ALTER TABLE recordings ADD COLUMN lease_owner TEXT;
    ALTER TABLE recordings ADD COLUMN lease_until INTEGER;
    ALTER TABLE recordings ADD COLUMN media_type TEXT;
    ALTER TABLE recordings ADD COLUMN start_time TEXT;
    ALTER TABLE recordings ADD COLUMN end_time TEXT;
    ",
    "
    CREATE TABLE uploads (
        upload_id    TEXT PRIMARY KEY,
        object_key   TEXT NOT NULL,
        recording_id TEXT NOT NULL,
        owner        TEXT NOT NULL,
        started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    ",
    "
    CREATE TABLE conversations (
        conversation_id TEXT PRIMARY KEY,
        end_time        TEXT,
        files           TEXT NOT NULL,
        complete        INTEGER NOT NULL,
        resolved_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    ",
    "
    ALTER TABLE recordings ADD COLUMN sha256 TEXT;
    ALTER TABLE recordings ADD COLUMN facts TEXT;
    ALTER TABLE recordings ADD COLUMN index_seq INTEGER;
    CREATE INDEX recordings_unindexed ON recordings(updated_at, recording_id)
        WHERE status = 'archived' AND index_seq IS NULL;
    CREATE INDEX recordings_index_seq ON recordings(index_seq, recording_id)
        WHERE index_seq IS NOT NULL;
    CREATE INDEX recordings_conversation ON recordings(conversation_id);
    CREATE INDEX recordings_start ON recordings(start_time);
    CREATE TABLE search_terms (
        name         TEXT NOT NULL,
        value        TEXT NOT NULL,
        recording_id TEXT NOT NULL,
        PRIMARY KEY (name, value, recording_id)
    );
    CREATE TABLE index_parts (
        seq        INTEGER PRIMARY KEY,
        object_key TEXT NOT NULL,
        previous   TEXT,
        sha256     TEXT,
        entries    INTEGER NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    ",
    "
    CREATE TABLE listings (
        name        TEXT PRIMARY KEY,
        owner       TEXT,
        lease_until INTEGER NOT NULL DEFAULT 0,
        listed_at   INTEGER
    );
    CREATE TABLE chunks (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        name           TEXT NOT NULL,
        conversations  TEXT NOT NULL,
        members        INTEGER NOT NULL,
        earliest_start TEXT,
        attempts       INTEGER NOT NULL DEFAULT 0,
        last_error     TEXT,
        not_before     INTEGER NOT NULL DEFAULT 0,
        lease_owner    TEXT,
        lease_until    INTEGER NOT NULL DEFAULT 0,
        created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    CREATE INDEX chunks_name ON chunks(name, id);
    CREATE TABLE chunk_members (
        conversation_id TEXT PRIMARY KEY,
        chunk_id        INTEGER NOT NULL
    );
    CREATE INDEX chunk_members_chunk ON chunk_members(chunk_id);
    ",
    "
    ALTER TABLE conversations ADD COLUMN recheck_due INTEGER;
    ALTER TABLE conversations ADD COLUMN conversation TEXT;
    CREATE INDEX conversations_recheck ON conversations(recheck_due)
        WHERE recheck_due IS NOT NULL;
    ",
    // A conversation resolved before the late window existed (schema 5 and older) and
    // still inside the default window (48 h from its end, or from its resolution when its
    // end is unknown or unreadable) gets the recheck it would have been given: without it, a
    // file added after that resolution would never be looked for. Older rows are the
    // inventory audit's. One second is added because `%s` drops the end's milliseconds: a
    // recheck is never early.
    "
    UPDATE conversations
       SET recheck_due = (since + 172800 + 1) * 1000
      FROM (SELECT conversation_id AS id,
                   CAST(COALESCE(strftime('%s', end_time), strftime('%s', resolved_at))
                        AS INTEGER) AS since,
                   CAST(strftime('%s', resolved_at) AS INTEGER) AS resolved
              FROM conversations)
     WHERE id = conversation_id
       AND complete = 1 AND recheck_due IS NULL
       AND since + 172800 > CAST(strftime('%s', 'now') AS INTEGER)
       AND resolved < since + 172800;
    ",
    // Releases at the source (see the ledger's `releases` module).
    "
    CREATE TABLE releases (
        recording_id    TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        object_key      TEXT NOT NULL,
        size            INTEGER NOT NULL,
        md5             TEXT NOT NULL,
        sha256          TEXT NOT NULL,
        index_seq       INTEGER NOT NULL,
        index_sha256    TEXT NOT NULL,
        delete_date     TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('intended','released','undone','refused')),
        proven_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        released_at     TEXT,
        undone_at       TEXT,
        last_error      TEXT,
        listed_in       INTEGER
    );
    ",
];
