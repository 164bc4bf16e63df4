//! Grading exports over HTTP: an assignment's gradebook as CSV (staff) and
//! one submission as Gradescope's `results.json` (staff, or its student —
//! then with hidden tests as the student sees them).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AuthUser;
use crate::error::AppError;
use crate::state::SharedState;

/// `GET /api/courses/{slug}/assignments/{folder}/grades.csv`.
pub async fn grades_csv(
    State(state): State<SharedState>,
    AuthUser(user): AuthUser,
    Path((slug, folder)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let csv = state.grading.grades_csv(&user, &slug, &folder).await?;
    let name = format!("attachment; filename=\"{slug}-{folder}-grades.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        csv,
    )
        .into_response())
}

/// `GET /api/submissions/{id}/results.json`.
pub async fn results_json(
    State(state): State<SharedState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let v = state.grading.results_json(&user, id).await?;
    Ok(axum::Json(v).into_response())
}
