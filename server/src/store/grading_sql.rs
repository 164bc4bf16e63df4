//! SQL of the grading aggregate, shared by both backends (`$N` placeholders
//! work in both); [`impl_grading!`] implements [`super::Grading`] for a store
//! with a `pool`. Only claiming differs: PostgreSQL skips rows another
//! replica is claiming at the same moment (`FOR UPDATE SKIP LOCKED`).

/// Columns of a submission row, in [`SubmissionRow`] order.
pub(crate) const SUBMISSION_COLS: &str =
    "id, assignment_id, user_id, attempt, created_at_ms, files_hash, late, \
     status, score, max_score, summary, platform_retries, graded_at_ms";

/// A submission as selected.
pub(crate) type SubmissionRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    bool,
    String,
    Option<f64>,
    Option<f64>,
    Option<String>,
    i64,
    Option<i64>,
);

/// Decode a submission row.
pub(crate) fn submission(r: SubmissionRow) -> super::StoreResult<super::Submission> {
    Ok(super::Submission {
        id: r.0,
        assignment_id: r.1,
        user_id: r.2,
        attempt: r.3,
        created_at_ms: r.4,
        files_hash: r.5,
        late: r.6,
        status: super::SubmissionStatus::parse(&r.7)?,
        score: r.8,
        max_score: r.9,
        summary: r.10,
        platform_retries: r.11,
        graded_at_ms: r.12,
    })
}

/// Decode an assignment row.
pub(crate) fn assignment(r: (i64, i64, String, i64)) -> super::Assignment {
    super::Assignment {
        id: r.0,
        section_id: r.1,
        config: r.2,
        updated_at_ms: r.3,
    }
}

/// The claim's candidate: the oldest queued submission, or a running one
/// whose holder stopped renewing (`$3` is now).
pub(crate) const CLAIM_CANDIDATE: &str = "SELECT id FROM submissions \
     WHERE status = 'queued' OR (status = 'running' AND lease_until_ms < $3) \
     ORDER BY created_at_ms, id LIMIT 1";

/// Implement [`super::Grading`] for `$store` (a struct with a sqlx `pool`);
/// `$claim_lock` follows the claim's candidate query (`""` or `FOR UPDATE SKIP LOCKED`);
/// `$user_lock` serialises one student's submits (`$1` is the user id).
macro_rules! impl_grading {
    ($store:ty, $claim_lock:expr, $user_lock:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Grading for $store {
            async fn assignment_of_section(
                &self,
                section_id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::Assignment>> {
                let row: Option<(i64, i64, String, i64)> = sqlx::query_as(
                    "SELECT id, section_id, config, updated_at_ms FROM assignments WHERE section_id = $1",
                )
                .bind(section_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok(row.map($crate::store::grading_sql::assignment))
            }

            async fn assignment(&self, id: i64) -> $crate::store::StoreResult<$crate::store::Assignment> {
                let r: (i64, i64, String, i64) = sqlx::query_as(
                    "SELECT id, section_id, config, updated_at_ms FROM assignments WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok($crate::store::grading_sql::assignment(r))
            }

            async fn set_assignment(
                &self,
                section_id: i64,
                config: &str,
                at_ms: i64,
            ) -> $crate::store::StoreResult<$crate::store::Assignment> {
                let r: (i64, i64, String, i64) = sqlx::query_as(
                    "INSERT INTO assignments (section_id, config, updated_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (section_id) DO UPDATE SET config = excluded.config, \
                     updated_at_ms = excluded.updated_at_ms \
                     RETURNING id, section_id, config, updated_at_ms",
                )
                .bind(section_id)
                .bind(config)
                .bind(at_ms)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok($crate::store::grading_sql::assignment(r))
            }

            async fn assignment_files(
                &self,
                assignment_id: i64,
            ) -> $crate::store::StoreResult<Vec<(String, Vec<u8>)>> {
                sqlx::query_as(
                    "SELECT name, content FROM assignment_files WHERE assignment_id = $1 ORDER BY name",
                )
                .bind(assignment_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)
            }

            async fn put_assignment_file(
                &self,
                assignment_id: i64,
                name: &str,
                content: &[u8],
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO assignment_files (assignment_id, name, content) VALUES ($1, $2, $3) \
                     ON CONFLICT (assignment_id, name) DO UPDATE SET content = excluded.content",
                )
                .bind(assignment_id)
                .bind(name)
                .bind(content)
                .execute(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok(())
            }

            async fn delete_assignment_file(
                &self,
                assignment_id: i64,
                name: &str,
            ) -> $crate::store::StoreResult<()> {
                let done = sqlx::query(
                    "DELETE FROM assignment_files WHERE assignment_id = $1 AND name = $2",
                )
                .bind(assignment_id)
                .bind(name)
                .execute(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                $crate::store::rows::found(done.rows_affected())
            }

            async fn create_submission(
                &self,
                new: &$crate::store::NewSubmission,
                rules: &$crate::store::SubmitRules,
            ) -> $crate::store::StoreResult<
                Result<$crate::store::Submission, $crate::store::SubmitRefused>,
            > {
                use $crate::store::grading_sql as q;
                use $crate::store::rows::db_err;
                use $crate::store::SubmitRefused as R;
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                // One submit per student at a time (PostgreSQL: an advisory
                // lock for the transaction; SQLite serialises writers anyway),
                // so the in-flight rule holds across assignments too.
                sqlx::query($user_lock)
                    .bind(new.user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                // The insert first: it takes SQLite's write lock at once (a
                // read first could not upgrade under a concurrent writer),
                // and two submits racing for one attempt number collide on
                // the unique key (`Conflict`; the caller tries again).
                let row: q::SubmissionRow = sqlx::query_as(&format!(
                    "INSERT INTO submissions (assignment_id, user_id, attempt, created_at_ms, \
                     files_hash, late, status) \
                     SELECT $1, $2, COALESCE(MAX(attempt), 0) + 1, $3, $4, $5, 'queued' \
                     FROM submissions WHERE assignment_id = $1 AND user_id = $2 \
                     RETURNING {}",
                    q::SUBMISSION_COLS
                ))
                .bind(new.assignment_id)
                .bind(new.user_id)
                .bind(new.at_ms)
                .bind(&new.files_hash)
                .bind(new.late)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
                let sub = q::submission(row)?;
                let (in_flight, attempts, today, queued): (i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT \
                     (SELECT COUNT(*) FROM submissions WHERE user_id = $2 AND id <> $1 \
                        AND status IN ('queued', 'running')), \
                     (SELECT COUNT(*) FROM submissions WHERE assignment_id = $3 AND user_id = $2 \
                        AND id <> $1 AND status <> 'failed'), \
                     (SELECT COUNT(*) FROM submissions WHERE assignment_id = $3 AND user_id = $2 \
                        AND id <> $1 AND created_at_ms >= $4), \
                     (SELECT COUNT(*) FROM submissions WHERE status = 'queued' AND id <> $1)",
                )
                .bind(sub.id)
                .bind(new.user_id)
                .bind(new.assignment_id)
                .bind(rules.day_start_ms)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
                let refused = if in_flight > 0 {
                    Some(R::InFlight)
                } else if rules.max_attempts.is_some_and(|m| attempts >= m) {
                    Some(R::NoAttemptsLeft)
                } else if rules.per_day.is_some_and(|m| today >= m) {
                    Some(R::DailyLimit)
                } else if queued >= rules.queue_max {
                    Some(R::QueueFull)
                } else {
                    None
                };
                if let Some(r) = refused {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(Err(r));
                }
                tx.commit().await.map_err(db_err)?;
                Ok(Ok(sub))
            }

            async fn claim_submission(
                &self,
                owner: &str,
                now_ms: i64,
                lease_until_ms: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::Submission>> {
                use $crate::store::grading_sql as q;
                let row: Option<q::SubmissionRow> = sqlx::query_as(&format!(
                    "UPDATE submissions SET status = 'running', lease_owner = $1, lease_until_ms = $2 \
                     WHERE id = ({} {}) RETURNING {}",
                    q::CLAIM_CANDIDATE,
                    $claim_lock,
                    q::SUBMISSION_COLS
                ))
                .bind(owner)
                .bind(lease_until_ms)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                row.map(q::submission).transpose()
            }

            async fn renew_lease(
                &self,
                id: i64,
                owner: &str,
                lease_until_ms: i64,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE submissions SET lease_until_ms = $3 \
                     WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                )
                .bind(id)
                .bind(owner)
                .bind(lease_until_ms)
                .execute(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn finish_submission(
                &self,
                id: i64,
                owner: &str,
                result: &$crate::store::GradeResult,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::rows::db_err;
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                let done = sqlx::query(
                    "UPDATE submissions SET status = 'graded', score = $3, max_score = $4, \
                     summary = $5, graded_at_ms = $6, lease_owner = NULL, lease_until_ms = NULL \
                     WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                )
                .bind(id)
                .bind(owner)
                .bind(result.score)
                .bind(result.max_score)
                .bind(&result.summary)
                .bind(result.at_ms)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                if done.rows_affected() != 1 {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(false);
                }
                // A re-grade replaces the results: the write is idempotent.
                sqlx::query("DELETE FROM submission_results WHERE submission_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                for (i, r) in result.results.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO submission_results (submission_id, position, name, outcome, \
                         points, max_points, visibility, message, duration_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(id)
                    .bind(i as i64)
                    .bind(&r.name)
                    .bind(&r.outcome)
                    .bind(r.points)
                    .bind(r.max_points)
                    .bind(&r.visibility)
                    .bind(&r.message)
                    .bind(r.duration_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(true)
            }

            async fn requeue_submission(
                &self,
                id: i64,
                owner: &str,
                max_retries: i64,
                summary: &str,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE submissions SET platform_retries = platform_retries + 1, \
                     status = CASE WHEN platform_retries + 1 < $3 THEN 'queued' \
                       WHEN score IS NULL THEN 'failed' ELSE 'graded' END, \
                     summary = CASE WHEN platform_retries + 1 >= $3 AND score IS NOT NULL \
                       THEN summary ELSE $4 END, lease_owner = NULL, lease_until_ms = NULL \
                     WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                )
                .bind(id)
                .bind(owner)
                .bind(max_retries)
                .bind(summary)
                .execute(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn requeue_running(&self) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE submissions SET status = 'queued', lease_owner = NULL, lease_until_ms = NULL \
                     WHERE status = 'running'",
                )
                .execute(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok(done.rows_affected())
            }

            async fn regrade_assignment(&self, assignment_id: i64) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE submissions SET status = 'queued', lease_owner = NULL, \
                     lease_until_ms = NULL, platform_retries = 0 \
                     WHERE assignment_id = $1 AND status <> 'queued'",
                )
                .bind(assignment_id)
                .execute(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok(done.rows_affected())
            }

            async fn submission(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<($crate::store::Submission, Vec<$crate::store::ResultRow>)>
            {
                use $crate::store::grading_sql as q;
                use $crate::store::rows::db_err;
                let row: q::SubmissionRow = sqlx::query_as(&format!(
                    "SELECT {} FROM submissions WHERE id = $1",
                    q::SUBMISSION_COLS
                ))
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
                let rows: Vec<(String, String, f64, f64, String, String, i64)> = sqlx::query_as(
                    "SELECT name, outcome, points, max_points, visibility, message, duration_ms \
                     FROM submission_results WHERE submission_id = $1 ORDER BY position",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
                let results = rows
                    .into_iter()
                    .map(|r| $crate::store::ResultRow {
                        name: r.0,
                        outcome: r.1,
                        points: r.2,
                        max_points: r.3,
                        visibility: r.4,
                        message: r.5,
                        duration_ms: r.6,
                    })
                    .collect();
                Ok((q::submission(row)?, results))
            }

            async fn submissions_of(
                &self,
                assignment_id: i64,
                user_id: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Submission>> {
                use $crate::store::grading_sql as q;
                let rows: Vec<q::SubmissionRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM submissions WHERE assignment_id = $1 AND user_id = $2 \
                     ORDER BY created_at_ms DESC, id DESC",
                    q::SUBMISSION_COLS
                ))
                .bind(assignment_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                rows.into_iter().map(q::submission).collect()
            }

            async fn queued_ids(&self) -> $crate::store::StoreResult<Vec<(i64, i64)>> {
                sqlx::query_as(
                    "SELECT id, user_id FROM submissions WHERE status = 'queued' \
                     ORDER BY created_at_ms, id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)
            }

            async fn gradebook(
                &self,
                course_id: i64,
                assignment_id: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::GradebookRow>> {
                let rows: Vec<(i64, String, Option<f64>, i64, Option<i64>, Option<i64>, i64)> =
                    sqlx::query_as(
                        "SELECT m.user_id, u.username, \
                         MAX(s.score), \
                         COUNT(CASE WHEN s.status <> 'failed' THEN 1 END), \
                         MAX(s.id), MAX(s.created_at_ms), \
                         CAST(COALESCE(MAX(CASE WHEN s.late THEN 1 ELSE 0 END), 0) AS BIGINT) \
                         FROM course_members m JOIN users u ON u.id = m.user_id \
                         LEFT JOIN submissions s ON s.user_id = m.user_id AND s.assignment_id = $2 \
                         WHERE m.course_id = $1 AND m.role = 'student' \
                         GROUP BY m.user_id, u.username ORDER BY u.username",
                    )
                    .bind(course_id)
                    .bind(assignment_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::rows::db_err)?;
                Ok(rows
                    .into_iter()
                    .map(|r| $crate::store::GradebookRow {
                        user_id: r.0,
                        username: r.1,
                        best: r.2,
                        attempts: r.3,
                        last: r.4.zip(r.5),
                        late: r.6 != 0,
                    })
                    .collect())
            }

            async fn test_stats(
                &self,
                assignment_id: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::TestStat>> {
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT r.name, COUNT(*), COUNT(CASE WHEN r.outcome = 'passed' THEN 1 END) \
                     FROM submissions s JOIN submission_results r ON r.submission_id = s.id \
                     WHERE s.assignment_id = $1 AND s.status = 'graded' \
                     GROUP BY r.name ORDER BY MIN(r.position), r.name",
                )
                .bind(assignment_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                Ok(rows
                    .into_iter()
                    .map(|r| $crate::store::TestStat {
                        name: r.0,
                        runs: r.1,
                        passed: r.2,
                    })
                    .collect())
            }

            async fn progress(
                &self,
                course_id: i64,
                user_id: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ProgressRow>> {
                // The student's submissions aggregated per assignment (the
                // user_time index), then their last one and their last graded
                // one joined by id; what an assignment nobody of theirs was
                // graded in is worth: its newest graded submission's points.
                type Row = (
                    i64,
                    String,
                    Option<f64>,
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                    Option<String>,
                    Option<i64>,
                    Option<f64>,
                );
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT a.section_id, a.config, b.best, b.attempts, b.late, \
                     l.id, l.status, l.created_at_ms, \
                     COALESCE(g.max_score, (SELECT o.max_score FROM submissions o \
                         WHERE o.assignment_id = a.id AND o.max_score IS NOT NULL \
                         ORDER BY o.created_at_ms DESC LIMIT 1)) \
                     FROM assignments a JOIN course_sections cs ON cs.id = a.section_id \
                     LEFT JOIN (SELECT assignment_id, MAX(score) AS best, \
                         COUNT(CASE WHEN status <> 'failed' THEN 1 END) AS attempts, \
                         MAX(id) AS last_id, \
                         MAX(CASE WHEN max_score IS NOT NULL THEN id END) AS graded_id, \
                         CAST(MAX(CASE WHEN late THEN 1 ELSE 0 END) AS BIGINT) AS late \
                         FROM submissions WHERE user_id = $2 GROUP BY assignment_id) b \
                       ON b.assignment_id = a.id \
                     LEFT JOIN submissions l ON l.id = b.last_id \
                     LEFT JOIN submissions g ON g.id = b.graded_id \
                     WHERE cs.course_id = $1 ORDER BY cs.position, cs.id",
                )
                .bind(course_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::rows::db_err)?;
                rows.into_iter()
                    .map(|r| {
                        let last = match (r.5, r.6, r.7) {
                            (Some(id), Some(status), Some(at)) => Some((
                                id,
                                $crate::store::SubmissionStatus::parse(&status)?,
                                at,
                            )),
                            _ => None,
                        };
                        Ok($crate::store::ProgressRow {
                            section_id: r.0,
                            config: r.1,
                            best: r.2,
                            attempts: r.3.unwrap_or(0),
                            last,
                            max_score: r.8,
                            late: r.4.unwrap_or(0) != 0,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_grading;
