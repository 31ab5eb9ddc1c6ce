-- A generated password (first admin, `user add` without --password-stdin,
-- an admin's reset) is one-time: its holder must choose their own before
-- anything else. Set when such a password is issued, cleared when the user
-- sets their own.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
