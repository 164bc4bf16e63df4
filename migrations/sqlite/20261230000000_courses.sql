-- Courses (docs/courses.md): courses, who is in them and as what, the
-- sections of their material (each a top-level folder of the course's
-- material tree) with their visibility, and per-student exceptions.
-- course_catalog holds one row whose generation every change of these tables
-- adds one to (in the same transaction), so a server's in-memory catalog
-- knows when another process (the CLI, another instance) changed it.
-- Append-only: never edit this file once shipped.

CREATE TABLE courses (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    slug           TEXT    NOT NULL UNIQUE,
    title          TEXT    NOT NULL,
    term           TEXT    NOT NULL DEFAULT '',
    created_at_ms  INTEGER NOT NULL
);

CREATE TABLE course_members (
    course_id    INTEGER NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT    NOT NULL CHECK (role IN ('professor', 'ta', 'student')),
    added_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (course_id, user_id)
);

CREATE INDEX course_members_user ON course_members (user_id);

CREATE TABLE course_sections (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id      INTEGER NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    folder         TEXT    NOT NULL,
    title          TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    position       INTEGER NOT NULL,
    published      INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1)),
    release_at_ms  INTEGER NULL,
    close_at_ms    INTEGER NULL,
    UNIQUE (course_id, folder)
);

CREATE TABLE section_exceptions (
    section_id     INTEGER NOT NULL REFERENCES course_sections (id) ON DELETE CASCADE,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    release_at_ms  INTEGER NULL,
    close_at_ms    INTEGER NULL,
    PRIMARY KEY (section_id, user_id)
);

CREATE TABLE course_catalog (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL
);

INSERT INTO course_catalog (id, generation) VALUES (1, 0);
