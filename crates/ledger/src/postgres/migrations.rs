//! The PostgreSQL schema, one migration per entry: the files the ledger has always run, in order.

/// Migrations, applied in order under an advisory lock; `archiver_schema` records how many ran.
pub(crate) const MIGRATIONS: &[&str] = &["
    CREATE TABLE recordings (
        recording_id    TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        object_key      TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('pending','archived','failed','quarantined')),
        size            BIGINT,
        md5             TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        lease_owner     TEXT,
        lease_until     BIGINT,
        media_type      TEXT,
        start_time      TEXT,
        end_time        TEXT,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX recordings_status ON recordings(status);
    CREATE TABLE checkpoints (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
", "
    CREATE TABLE uploads (
        upload_id    TEXT PRIMARY KEY,
        object_key   TEXT NOT NULL,
        recording_id TEXT NOT NULL,
        owner        TEXT NOT NULL,
        started_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    );
", "
    CREATE TABLE conversations (
        conversation_id TEXT PRIMARY KEY,
        end_time        TEXT,
        files           TEXT NOT NULL,
        complete        BOOLEAN NOT NULL,
        resolved_at     TIMESTAMPTZ NOT NULL DEFAULT now()
    );
", "
    ALTER TABLE recordings ADD COLUMN sha256 TEXT;
    ALTER TABLE recordings ADD COLUMN facts TEXT;
    ALTER TABLE recordings ADD COLUMN index_seq BIGINT;
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
        seq        BIGINT PRIMARY KEY,
        object_key TEXT NOT NULL,
        previous   TEXT,
        sha256     TEXT,
        entries    BIGINT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
", "
    CREATE TABLE listings (
        name        TEXT PRIMARY KEY,
        owner       TEXT,
        lease_until BIGINT NOT NULL DEFAULT 0,
        listed_at   BIGINT
    );
    CREATE TABLE chunks (
        id             BIGSERIAL PRIMARY KEY,
        name           TEXT NOT NULL,
        conversations  TEXT NOT NULL,
        members        INTEGER NOT NULL,
        earliest_start TEXT,
        attempts       INTEGER NOT NULL DEFAULT 0,
        last_error     TEXT,
        not_before     BIGINT NOT NULL DEFAULT 0,
        lease_owner    TEXT,
        lease_until    BIGINT NOT NULL DEFAULT 0,
        created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX chunks_name ON chunks(name, id);
    CREATE TABLE chunk_members (
        conversation_id TEXT PRIMARY KEY,
        chunk_id        BIGINT NOT NULL
    );
    CREATE INDEX chunk_members_chunk ON chunk_members(chunk_id);
", "
    ALTER TABLE conversations ADD COLUMN recheck_due BIGINT;
    ALTER TABLE conversations ADD COLUMN conversation TEXT;
    CREATE INDEX conversations_recheck ON conversations(recheck_due)
        WHERE recheck_due IS NOT NULL;
", "
    -- A conversation resolved before the late window existed (schema 5 and older) and still
    -- inside the default window (48 h from its end, or from its resolution when its end is
    -- unknown or unreadable) gets the recheck it would have been given; older rows are the
    -- inventory audit's. CASE keeps a malformed end from failing the migration.
    UPDATE conversations c
       SET recheck_due = ceil(extract(epoch FROM s.since + interval '48 hours') * 1000)::bigint
      FROM (SELECT conversation_id,
                   COALESCE(CASE WHEN end_time ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T'
                                 THEN end_time::timestamptz END, resolved_at) AS since
              FROM conversations) s
     WHERE s.conversation_id = c.conversation_id
       AND c.complete AND c.recheck_due IS NULL
       AND s.since + interval '48 hours' > now()
       AND c.resolved_at < s.since + interval '48 hours';
", "
    -- Releases at the source (see the ledger's `releases` module).
    CREATE TABLE releases (
        recording_id    TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        object_key      TEXT NOT NULL,
        size            BIGINT NOT NULL,
        md5             TEXT NOT NULL,
        sha256          TEXT NOT NULL,
        index_seq       BIGINT NOT NULL,
        index_sha256    TEXT NOT NULL,
        delete_date     TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('intended','released','undone','refused')),
        proven_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
        released_at     TIMESTAMPTZ,
        undone_at       TIMESTAMPTZ,
        last_error      TEXT,
        listed_in       BIGINT
    );
"];
