-- Liveness of runs: the server marks its live runs every few seconds
-- (CAMPUS_RUN_LIVENESS_SECS), so the start-up repair after a crash closes a
-- run at the last time it was seen alive instead of at the restart time.
-- Append-only: never edit this file once shipped. No index: written by
-- primary key, read only through the partial index runs_open (see ../README.md).

ALTER TABLE runs ADD COLUMN last_seen_ms INTEGER NULL;
