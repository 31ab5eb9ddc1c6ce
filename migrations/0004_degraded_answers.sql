-- Whether an answer was found by keyword search alone because the vector
-- store was unreachable, so a reloaded conversation still says so.
ALTER TABLE messages ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0;
