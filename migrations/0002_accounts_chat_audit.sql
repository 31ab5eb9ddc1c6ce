-- Accounts, sessions, grants, conversations and the audit log.
-- Times the code compares (sessions, throttling) are unix seconds; times people
-- read are ISO-8601 UTC text.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role           TEXT NOT NULL CHECK (role IN ('staff', 'admin', 'auditor')),
    password_hash  TEXT NOT NULL,             -- argon2id PHC string
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE groups (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE COLLATE NOCASE
);

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;

-- A collection granted to one user or to one group.
CREATE TABLE grants (
    id             INTEGER PRIMARY KEY,
    collection_id  INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    user_id        INTEGER REFERENCES users(id) ON DELETE CASCADE,
    group_id       INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    UNIQUE (collection_id, user_id, group_id)
);

-- The cookie holds a random token; only its SHA-256 is stored, so a copy of
-- the database does not hand out live sessions.
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    address     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user_id);

-- Failed logins, keyed 'user:<name>' and 'addr:<ip>'; pruned after 15 minutes.
CREATE TABLE login_failures (
    key  TEXT NOT NULL,
    at   INTEGER NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(key, at);

CREATE TABLE conversations (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX conversations_user ON conversations(user_id, updated_at);

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    question         TEXT NOT NULL,
    answer           TEXT NOT NULL DEFAULT '',
    -- pending: generating; answered; not_covered: the documents do not say;
    -- failed: generation failed or was cut off; erased: a cited document was deleted
    status           TEXT NOT NULL CHECK (status IN ('pending', 'answered', 'not_covered', 'failed', 'erased')),
    citations        TEXT NOT NULL DEFAULT '[]',   -- JSON: rag::Citation list
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX messages_conversation ON messages(conversation_id);

-- Every chunk shown to the model for a message: erasure finds cached answers
-- that cite a deleted document through this table.
CREATE TABLE message_sources (
    message_id   INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    chunk_id     INTEGER NOT NULL,
    document_id  INTEGER NOT NULL,
    PRIMARY KEY (message_id, chunk_id)
) WITHOUT ROWID;
CREATE INDEX message_sources_document ON message_sources(document_id);

CREATE TABLE feedback (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    rating      INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment     TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Uploads through the web UI or API, one row per file, with their progress.
CREATE TABLE uploads (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    collection   TEXT NOT NULL,
    file_name    TEXT NOT NULL,              -- sanitised, display only
    size_bytes   INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'extracting', 'indexing', 'done', 'duplicate', 'rejected', 'failed')),
    detail       TEXT NOT NULL DEFAULT '',
    document_id  INTEGER,
    staged_path  TEXT NOT NULL DEFAULT '',   -- relative to the data dir, server-chosen
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at  TEXT
);

ALTER TABLE documents ADD COLUMN uploaded_by TEXT NOT NULL DEFAULT '';

-- The audit log. Each row's hash covers its fields and the previous row's
-- hash; prev_hash is UNIQUE so the chain cannot fork.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    at            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    address       TEXT NOT NULL,
    document_ids  TEXT NOT NULL,
    chunk_ids     TEXT NOT NULL,
    detail        TEXT NOT NULL,
    prev_hash     TEXT NOT NULL UNIQUE,
    hash          TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);

-- Ed25519 signatures over (upto_id, head_hash, signed_at).
CREATE TABLE audit_checkpoints (
    id          INTEGER PRIMARY KEY,
    upto_id     INTEGER NOT NULL,
    head_hash   TEXT NOT NULL,
    signed_at   TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    signature   TEXT NOT NULL
);
