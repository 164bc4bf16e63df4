-- Revocable tokens (docs/security.md, "Sessions and tokens").
-- users.token_generation: carried in every token as `gen`; a password change,
-- disable, enable or role change adds one, so every older token of the user
-- is refused. users.updated_at_ms: when the row last changed (database clock),
-- so a server notices changes made by another process (the CLI, another
-- instance) by polling `WHERE updated_at_ms > ?` every second.
-- revoked_tokens: tokens ended by logout (one row per token id `jti`) until
-- they would have expired anyway; recorded_at_ms (database clock) is the
-- polling cursor of other processes.
-- Append-only: never edit this file once shipped.

ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN updated_at_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_updated ON users (updated_at_ms);

CREATE TABLE revoked_tokens (
    jti             TEXT    PRIMARY KEY NOT NULL,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at_ms   INTEGER NOT NULL,
    recorded_at_ms  INTEGER NOT NULL
);

CREATE INDEX revoked_tokens_recorded ON revoked_tokens (recorded_at_ms);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at_ms);
