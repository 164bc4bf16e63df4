//! The courses aggregate's SQL, written once for both backends: every query
//! uses `$N` placeholders (PostgreSQL's, which SQLite also accepts) and types
//! both map the same way (BIGINT/INTEGER to `i64`, BOOLEAN/0-1 to `bool`).
//! [`impl_courses!`] implements [`super::Courses`] for a store with a `pool`.

/// Columns of `courses`, in the order every course query selects them.
pub(crate) const COURSE_COLUMNS: &str = "id, slug, title, term, created_at_ms";
/// Columns of `course_sections`.
pub(crate) const SECTION_COLUMNS: &str =
    "id, course_id, folder, title, kind, position, published, release_at_ms, close_at_ms";
/// Add one to the catalog generation (in every writing transaction).
pub(crate) const BUMP_GENERATION: &str =
    "UPDATE course_catalog SET generation = generation + 1 WHERE id = 1";

/// A `courses` row.
pub(crate) type CourseRow = (i64, String, String, String, i64);
/// A `course_sections` row.
pub(crate) type SectionRow = (
    i64,
    i64,
    String,
    String,
    String,
    i64,
    bool,
    Option<i64>,
    Option<i64>,
);

/// Decode a course row.
pub(crate) fn course(r: CourseRow) -> super::Course {
    super::Course {
        id: r.0,
        slug: r.1,
        title: r.2,
        term: r.3,
        created_at_ms: r.4,
    }
}

/// Decode a section row.
pub(crate) fn section(r: SectionRow) -> super::Section {
    super::Section {
        id: r.0,
        course_id: r.1,
        folder: r.2,
        title: r.3,
        kind: r.4,
        position: r.5,
        published: r.6,
        release_at_ms: r.7,
        close_at_ms: r.8,
    }
}

/// Decode a member row.
pub(crate) fn member(r: (i64, i64, String, i64, String)) -> super::StoreResult<super::Member> {
    let role: super::CourseRole =
        r.2.parse()
            .map_err(|e: String| super::StoreError::Corrupt(format!("course member: {e}")))?;
    Ok(super::Member {
        course_id: r.0,
        user_id: r.1,
        username: r.4,
        role,
        added_at_ms: r.3,
    })
}

/// Implement [`super::Courses`] for `$store` (a struct with a sqlx `pool` of `$db`).
macro_rules! impl_courses {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Run one write touching exactly one row, and bump the generation.
            async fn write_one<'q, F>(&self, sql: &'q str, bind: F) -> $crate::store::StoreResult<()>
            where
                F: FnOnce(
                    sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            {
                use $crate::store::rows::{db_err, found};
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                let done = bind(sqlx::query(sql))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                found(done.rows_affected())?;
                sqlx::query($crate::store::courses_sql::BUMP_GENERATION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)
            }

            /// Insert or update a section (`$1` is the course or section id), and bump the generation.
            async fn write_section(
                &self,
                sql: &str,
                key: i64,
                f: $crate::store::SectionFields,
            ) -> $crate::store::StoreResult<$crate::store::Section> {
                use $crate::store::courses_sql as q;
                use $crate::store::rows::db_err;
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                let row: q::SectionRow = sqlx::query_as(sql)
                    .bind(key)
                    .bind(&f.folder)
                    .bind(&f.title)
                    .bind(&f.kind)
                    .bind(f.position)
                    .bind(f.published)
                    .bind(f.release_at_ms)
                    .bind(f.close_at_ms)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                sqlx::query(q::BUMP_GENERATION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(q::section(row))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Courses for $store {
            async fn catalog_generation(&self) -> $crate::store::StoreResult<i64> {
                let (g,): (i64,) =
                    sqlx::query_as("SELECT generation FROM course_catalog WHERE id = 1")
                        .fetch_one(&self.pool)
                        .await
                        .map_err($crate::store::rows::db_err)?;
                Ok(g)
            }

            async fn load_catalog(&self) -> $crate::store::StoreResult<$crate::store::Catalog> {
                use $crate::store::courses_sql as q;
                use $crate::store::rows::db_err;
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                let (generation,): (i64,) =
                    sqlx::query_as("SELECT generation FROM course_catalog WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_err)?;
                let courses: Vec<q::CourseRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM courses ORDER BY slug",
                    q::COURSE_COLUMNS
                ))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                let members: Vec<(i64, i64, String, i64, String)> = sqlx::query_as(
                    "SELECT m.course_id, m.user_id, m.role, m.added_at_ms, u.username \
                     FROM course_members m JOIN users u ON u.id = m.user_id \
                     ORDER BY m.course_id, m.user_id",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                let sections: Vec<q::SectionRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM course_sections ORDER BY course_id, position, id",
                    q::SECTION_COLUMNS
                ))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                let exceptions: Vec<(i64, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
                    "SELECT section_id, user_id, release_at_ms, close_at_ms \
                     FROM section_exceptions ORDER BY section_id, user_id",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                let releases: Vec<(i64, String, bool, Option<i64>, Option<i64>)> =
                    sqlx::query_as(
                        "SELECT section_id, path, published, release_at_ms, close_at_ms \
                         FROM material_releases ORDER BY section_id, path",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok($crate::store::Catalog {
                    generation,
                    courses: courses.into_iter().map(q::course).collect(),
                    members: members
                        .into_iter()
                        .map(q::member)
                        .collect::<Result<_, _>>()?,
                    sections: sections.into_iter().map(q::section).collect(),
                    exceptions: exceptions
                        .into_iter()
                        .map(|e| $crate::store::SectionException {
                            section_id: e.0,
                            user_id: e.1,
                            release_at_ms: e.2,
                            close_at_ms: e.3,
                        })
                        .collect(),
                    releases: releases
                        .into_iter()
                        .map(|r| $crate::store::MaterialRelease {
                            section_id: r.0,
                            path: r.1,
                            published: r.2,
                            release_at_ms: r.3,
                            close_at_ms: r.4,
                        })
                        .collect(),
                })
            }

            async fn create_course(
                &self,
                c: $crate::store::NewCourse,
            ) -> $crate::store::StoreResult<$crate::store::Course> {
                use $crate::store::courses_sql as q;
                use $crate::store::rows::db_err;
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                let row: q::CourseRow = sqlx::query_as(&format!(
                    "INSERT INTO courses (slug, title, term, created_at_ms) \
                     VALUES ($1, $2, $3, $4) RETURNING {}",
                    q::COURSE_COLUMNS
                ))
                .bind(&c.slug)
                .bind(&c.title)
                .bind(&c.term)
                .bind($crate::store::now_ms())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
                sqlx::query(q::BUMP_GENERATION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(q::course(row))
            }

            async fn delete_course(&self, course_id: i64) -> $crate::store::StoreResult<()> {
                self.write_one("DELETE FROM courses WHERE id = $1", |q| q.bind(course_id))
                    .await
            }

            async fn set_member(
                &self,
                course_id: i64,
                user_id: i64,
                role: $crate::store::CourseRole,
            ) -> $crate::store::StoreResult<()> {
                let now = $crate::store::now_ms();
                self.write_one(
                    "INSERT INTO course_members (course_id, user_id, role, added_at_ms) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (course_id, user_id) DO UPDATE SET role = excluded.role",
                    |q| q.bind(course_id).bind(user_id).bind(role.as_str()).bind(now),
                )
                .await
            }

            async fn remove_member(
                &self,
                course_id: i64,
                user_id: i64,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::rows::{db_err, found};
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                let done =
                    sqlx::query("DELETE FROM course_members WHERE course_id = $1 AND user_id = $2")
                        .bind(course_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                found(done.rows_affected())?;
                sqlx::query(
                    "DELETE FROM section_exceptions WHERE user_id = $1 AND section_id IN \
                     (SELECT id FROM course_sections WHERE course_id = $2)",
                )
                .bind(user_id)
                .bind(course_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                sqlx::query($crate::store::courses_sql::BUMP_GENERATION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)
            }

            async fn apply_roster(
                &self,
                course_id: i64,
                change: $crate::store::RosterChange,
            ) -> $crate::store::StoreResult<Vec<i64>> {
                use $crate::store::rows::db_err;
                let now = $crate::store::now_ms();
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                let mut created = Vec::with_capacity(change.new_accounts.len());
                for u in &change.new_accounts {
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO users (username, password_hash, role, disabled, created_at_ms) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(&u.username)
                    .bind(&u.password_hash)
                    .bind(u.role.as_str())
                    .bind(false)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    created.push(id);
                }
                for (username, role) in &change.members {
                    // INSERT … SELECT inserts nothing for an unknown username: counted below.
                    let done = sqlx::query(
                        "INSERT INTO course_members (course_id, user_id, role, added_at_ms) \
                         SELECT $1, id, $2, $3 FROM users WHERE username = $4 \
                         ON CONFLICT (course_id, user_id) DO UPDATE SET role = excluded.role",
                    )
                    .bind(course_id)
                    .bind(role.as_str())
                    .bind(now)
                    .bind(username)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    $crate::store::rows::found(done.rows_affected())?;
                }
                sqlx::query($crate::store::courses_sql::BUMP_GENERATION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(created)
            }

            async fn create_section(
                &self,
                course_id: i64,
                f: $crate::store::SectionFields,
            ) -> $crate::store::StoreResult<$crate::store::Section> {
                use $crate::store::courses_sql as q;
                self.write_section(
                    &format!(
                        "INSERT INTO course_sections (course_id, folder, title, kind, position, \
                         published, release_at_ms, close_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {}",
                        q::SECTION_COLUMNS
                    ),
                    course_id,
                    f,
                )
                .await
            }

            async fn update_section(
                &self,
                section_id: i64,
                f: $crate::store::SectionFields,
            ) -> $crate::store::StoreResult<$crate::store::Section> {
                use $crate::store::courses_sql as q;
                self.write_section(
                    &format!(
                        "UPDATE course_sections SET folder = $2, title = $3, kind = $4, \
                         position = $5, published = $6, release_at_ms = $7, close_at_ms = $8 \
                         WHERE id = $1 RETURNING {}",
                        q::SECTION_COLUMNS
                    ),
                    section_id,
                    f,
                )
                .await
            }

            async fn delete_section(&self, section_id: i64) -> $crate::store::StoreResult<()> {
                self.write_one("DELETE FROM course_sections WHERE id = $1", |q| {
                    q.bind(section_id)
                })
                .await
            }

            async fn set_exception(
                &self,
                e: $crate::store::SectionException,
            ) -> $crate::store::StoreResult<()> {
                self.write_one(
                    "INSERT INTO section_exceptions (section_id, user_id, release_at_ms, close_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (section_id, user_id) DO UPDATE \
                     SET release_at_ms = excluded.release_at_ms, close_at_ms = excluded.close_at_ms",
                    |q| {
                        q.bind(e.section_id)
                            .bind(e.user_id)
                            .bind(e.release_at_ms)
                            .bind(e.close_at_ms)
                    },
                )
                .await
            }

            async fn remove_exception(
                &self,
                section_id: i64,
                user_id: i64,
            ) -> $crate::store::StoreResult<()> {
                self.write_one(
                    "DELETE FROM section_exceptions WHERE section_id = $1 AND user_id = $2",
                    |q| q.bind(section_id).bind(user_id),
                )
                .await
            }

            async fn set_release(
                &self,
                r: $crate::store::MaterialRelease,
            ) -> $crate::store::StoreResult<()> {
                self.write_one(
                    "INSERT INTO material_releases \
                     (section_id, path, published, release_at_ms, close_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (section_id, path) DO UPDATE \
                     SET published = excluded.published, release_at_ms = excluded.release_at_ms, \
                     close_at_ms = excluded.close_at_ms",
                    |q| {
                        q.bind(r.section_id)
                            .bind(r.path)
                            .bind(r.published)
                            .bind(r.release_at_ms)
                            .bind(r.close_at_ms)
                    },
                )
                .await
            }

            async fn remove_release(
                &self,
                section_id: i64,
                path: &str,
            ) -> $crate::store::StoreResult<()> {
                let path = path.to_string();
                self.write_one(
                    "DELETE FROM material_releases WHERE section_id = $1 AND path = $2",
                    |q| q.bind(section_id).bind(path),
                )
                .await
            }
        }
    };
}

pub(crate) use impl_courses;
