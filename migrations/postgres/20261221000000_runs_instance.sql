-- Which server instance ran each run (docs/security.md, "Instances"): the
-- start-up repair of runs left open by a crash closes only the runs of its
-- own instance, so servers sharing a database never end each other's live
-- runs. `cli` for `campus run` on the command line (never repaired by a
-- server); NULL for runs recorded before this migration (closed by the first
-- instance to start, as before).
-- Append-only: never edit this file once shipped. No index: the repair reads
-- open runs through the partial index runs_open.

ALTER TABLE runs ADD COLUMN instance_id TEXT NULL;
