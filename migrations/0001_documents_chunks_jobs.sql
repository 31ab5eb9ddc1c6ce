-- Documents, their pages and chunks, and ingestion jobs.
-- SQLite is the source of truth: the BM25 and vector indexes are derived from
-- these rows and the stored originals, and a document is searchable only when
-- its status is 'indexed'.

CREATE TABLE collections (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE documents (
    id            INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    title         TEXT NOT NULL,
    source_name   TEXT NOT NULL,          -- sanitised original file name, display only
    content_hash  TEXT NOT NULL,          -- sha256 of the original bytes, hex
    mime          TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    page_count    INTEGER NOT NULL,
    chunk_count   INTEGER NOT NULL DEFAULT 0,
    -- indexing: rows written, indexes not yet committed (invisible to search)
    -- indexed:  both indexes committed it (visible)
    -- deleting: erasure under way (invisible)
    status        TEXT NOT NULL CHECK (status IN ('indexing', 'indexed', 'deleting')),
    warnings      TEXT NOT NULL DEFAULT '',
    stored_path   TEXT NOT NULL,          -- relative to the data dir, server-chosen
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    indexed_at    TEXT,
    UNIQUE (collection_id, content_hash)
);
CREATE INDEX documents_status ON documents(status);

CREATE TABLE pages (
    document_id    INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    number         INTEGER NOT NULL,
    has_text_layer INTEGER NOT NULL,
    text           TEXT NOT NULL,
    PRIMARY KEY (document_id, number)
) WITHOUT ROWID;

CREATE TABLE chunks (
    id           INTEGER PRIMARY KEY,     -- also the point id in both indexes
    document_id  INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal      INTEGER NOT NULL,
    page         INTEGER NOT NULL,
    char_start   INTEGER NOT NULL,        -- offsets in characters into pages.text
    char_end     INTEGER NOT NULL,
    heading      TEXT NOT NULL DEFAULT '',
    text         TEXT NOT NULL,
    UNIQUE (document_id, ordinal)
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('ingest', 'delete', 'recover')),
    document_id  INTEGER,
    source_name  TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'rejected', 'skipped')),
    detail       TEXT NOT NULL DEFAULT '',
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at  TEXT
);
CREATE INDEX jobs_document ON jobs(document_id);
