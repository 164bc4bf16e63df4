-- Assignments and grading (docs/grading.md). An assignment is a course
-- section with tests; its test files live here, never in the material tree
-- students read. A submission is its own grading job (status + lease), so
-- the row and the job are one write. Append-only: never edit once shipped.

CREATE TABLE assignments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    section_id     INTEGER NOT NULL UNIQUE REFERENCES course_sections (id) ON DELETE CASCADE,
    config         TEXT    NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);

CREATE TABLE assignment_files (
    assignment_id  INTEGER NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    content        BLOB    NOT NULL,
    PRIMARY KEY (assignment_id, name)
);

CREATE TABLE submissions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    assignment_id    INTEGER NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    files_hash       TEXT    NOT NULL,
    late             INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'graded', 'failed')),
    score            REAL    NULL,
    max_score        REAL    NULL,
    summary          TEXT    NULL,
    lease_owner      TEXT    NULL,
    lease_until_ms   INTEGER NULL,
    platform_retries INTEGER NOT NULL DEFAULT 0,
    graded_at_ms     INTEGER NULL,
    UNIQUE (assignment_id, user_id, attempt)
);
CREATE INDEX submissions_assignment_time ON submissions (assignment_id, created_at_ms);
CREATE INDEX submissions_user_time ON submissions (user_id, created_at_ms);
CREATE INDEX submissions_status_assignment ON submissions (status, assignment_id);

CREATE TABLE submission_results (
    submission_id  INTEGER NOT NULL REFERENCES submissions (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    name           TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    points         REAL    NOT NULL,
    max_points     REAL    NOT NULL,
    visibility     TEXT    NOT NULL,
    message        TEXT    NOT NULL,
    duration_ms    INTEGER NOT NULL,
    PRIMARY KEY (submission_id, position)
);
