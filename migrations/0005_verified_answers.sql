-- How far an answer is verified (verified, partial, quoted, none), the tier
-- that produced it, and the record of the checks: the quotes, every
-- generated sentence with whether a source supports it (removed ones are
-- kept here, never shown as fact), the tiers tried and what it cost.
ALTER TABLE messages ADD COLUMN verification TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN tier TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN checks TEXT NOT NULL DEFAULT '{}';
