-- Sensitive identifiers found at ingest (SSNs, card numbers, NHS numbers,
-- e-mail addresses, …). Each collection has a policy: 'report' (indexed as
-- is, findings listed), 'redact' (identifiers replaced by typed placeholders
-- in the stored text, so in both indexes, the model's context and every
-- view) or 'reject' (documents holding one are refused). Each document
-- records the policy its rows were processed under: one whose policy differs
-- from its collection's is waiting to be re-processed ('' is a document
-- stored before scanning existed). A finding keeps where the identifier is
-- and what it is, but the identifier itself only masked and as a keyed hash.
ALTER TABLE collections ADD COLUMN pii_policy TEXT NOT NULL DEFAULT 'report'
    CHECK (pii_policy IN ('report', 'redact', 'reject'));
ALTER TABLE documents ADD COLUMN pii_policy TEXT NOT NULL DEFAULT '';

CREATE TABLE pii_findings (
    id          INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page        INTEGER NOT NULL,
    char_start  INTEGER NOT NULL,   -- in pages.text as stored (redacted: the placeholder)
    char_end    INTEGER NOT NULL,
    kind        TEXT NOT NULL,      -- 'ssn', 'payment_card', … or a custom identifier's name
    confidence  REAL NOT NULL,
    masked      TEXT NOT NULL,      -- all but the last characters hidden
    keyed_hash  TEXT NOT NULL       -- HMAC of the normalised identifier: repeats, not values
);
CREATE INDEX pii_findings_document ON pii_findings(document_id);
CREATE INDEX pii_findings_kind ON pii_findings(kind);
CREATE INDEX pii_findings_hash ON pii_findings(keyed_hash, document_id);
