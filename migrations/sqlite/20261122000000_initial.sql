-- Initial schema (SQLite). Append-only: never edit this file once shipped;
-- add a new timestamped migration instead. See ../README.md for the indexes.
-- Timestamps are INTEGER milliseconds since the Unix epoch.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('student', 'professor', 'admin')),
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms  INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms     INTEGER NOT NULL,
    actor_id  INTEGER NULL REFERENCES users (id) ON DELETE SET NULL,
    actor     TEXT    NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NULL,
    detail    TEXT    NULL,
    ip        TEXT    NULL
);

CREATE INDEX audit_log_action_at ON audit_log (action, at_ms DESC, id DESC);
CREATE INDEX audit_log_at ON audit_log (at_ms, id);

CREATE TABLE runs (
    id                 TEXT    PRIMARY KEY NOT NULL,
    user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path               TEXT    NOT NULL,
    mode               TEXT    NOT NULL,
    started_at_ms      INTEGER NOT NULL,
    ended_at_ms        INTEGER NULL,
    reason             TEXT    NULL,
    exit_code          INTEGER NULL,
    cpu_ms             INTEGER NULL,
    peak_memory_bytes  INTEGER NULL,
    output_bytes       INTEGER NULL
);

CREATE INDEX runs_user_started ON runs (user_id, started_at_ms DESC, id DESC);
CREATE INDEX runs_started ON runs (started_at_ms);
CREATE INDEX runs_open ON runs (started_at_ms) WHERE ended_at_ms IS NULL;
