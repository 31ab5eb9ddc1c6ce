-- API tokens for the OpenAI-compatible endpoints, and per-answer usage
-- metrics for the usage page.

-- A token acts as its user with at most its scopes and collections. Only the
-- SHA-256 of the secret is stored (the secret is 32 random bytes: a fast
-- hash is enough, and a copy of the database hands out no live token);
-- `prefix` is the first characters of the secret, shown to tell tokens apart.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    scopes        TEXT NOT NULL,              -- comma-separated: ask, embeddings
    collections   TEXT,                       -- JSON array; NULL: all the user's grants
    created_at    INTEGER NOT NULL,           -- unix seconds
    created_by    TEXT NOT NULL,
    expires_at    INTEGER,                    -- unix seconds; NULL: never
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    last_used_from TEXT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- One row per answered (or refused) question: how it went and what it cost.
-- No question or answer text: the usage page needs none, and retention here
-- is independent of the chat history's.
CREATE TABLE answer_metrics (
    id                INTEGER PRIMARY KEY,
    message_id        INTEGER NOT NULL UNIQUE,
    at                INTEGER NOT NULL,       -- unix seconds, when answered
    via               TEXT NOT NULL,          -- web or api
    status            TEXT NOT NULL,          -- answered, not_covered, failed
    outcome           TEXT NOT NULL,          -- ok, not_covered, refused_busy, cancelled
    tier              TEXT NOT NULL,          -- '' when no model ran
    verification      TEXT NOT NULL,
    escalated         INTEGER NOT NULL,       -- more than one tier tried
    first_token_ms    REAL,                   -- NULL when no model ran
    total_ms          REAL NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    generated_tokens  INTEGER NOT NULL,
    cpu_secs          REAL NOT NULL,
    rating            INTEGER                 -- thumbs: 1, -1 or NULL
);
CREATE INDEX answer_metrics_at ON answer_metrics(at);
