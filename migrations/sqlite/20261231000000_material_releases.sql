-- Per-file (or sub-folder) visibility inside a section (docs/courses.md):
-- a rule only narrows what its section shows — unpublished, a later release,
-- an earlier close — and a student's section exception overrides its times
-- as it does the section's. `path` is relative to the section's folder, so
-- a renamed section keeps its rules. Append-only: never edit once shipped.

CREATE TABLE material_releases (
    section_id     INTEGER NOT NULL REFERENCES course_sections (id) ON DELETE CASCADE,
    path           TEXT    NOT NULL,
    published      INTEGER NOT NULL DEFAULT 1 CHECK (published IN (0, 1)),
    release_at_ms  INTEGER NULL,
    close_at_ms    INTEGER NULL,
    PRIMARY KEY (section_id, path)
);
