//! The one error type of the server boundary. Every refusal carries a protocol
//! [`ErrorCode`] and a human message; it becomes a WebSocket `error` message or
//! an HTTP JSON body with the matching status. Internal errors are logged with a
//! fresh request id and reach the client as that id only, never the details.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use campus_protocol::ConnectionMsg;
use campus_protocol::{ErrorCode, ServerMsg};
use serde::Serialize;

/// A refusal or failure with its protocol code.
#[derive(Debug)]
pub struct AppError {
    /// Protocol code.
    pub code: ErrorCode,
    /// Message for the user.
    pub message: String,
    /// Wait hint for `rate_limited` / `busy`.
    pub retry_after: Option<Duration>,
    /// Current version, for `conflict`.
    pub current_version: Option<String>,
    /// Request id under which an internal error was logged.
    pub request_id: Option<String>,
    /// HTTP status override (e.g. 412 for a failed conditional request).
    pub http_status: Option<StatusCode>,
}

impl AppError {
    /// A refusal with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            retry_after: None,
            current_version: None,
            request_id: None,
            http_status: None,
        }
    }

    /// `rate_limited` with a wait hint.
    pub fn rate_limited(what: &str, wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0);
        let mut e = AppError::new(
            ErrorCode::RateLimited,
            format!("too many {what}; try again in {secs:.0} s"),
        );
        e.retry_after = Some(wait.max(Duration::from_millis(1)));
        e
    }

    /// `insufficient_storage`: the disk is full, `what` (e.g. "nothing was
    /// saved (the file is unchanged)") says what that meant for this request.
    pub fn insufficient_storage(what: &str) -> Self {
        tracing::warn!(what, "refused: the data dir's disk is full");
        AppError::new(
            ErrorCode::InsufficientStorage,
            format!(
                "the server's disk is full, so {what}. Your files can still be opened and \
                 downloaded; please tell your teacher or the server's administrator"
            ),
        )
    }

    /// `unavailable`: the database cannot be reached right now (open sessions go on).
    pub fn unavailable() -> Self {
        let mut e = AppError::new(
            ErrorCode::Unavailable,
            "the server cannot reach its database right now; open sessions keep working. Try again in a few seconds.",
        );
        e.retry_after = Some(crate::store::guard::RETRY_AFTER);
        e
    }

    /// An unexpected failure: logged here with a new request id; the client sees only the id.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(request_id = %id, error = %err, "internal error");
        let mut e = AppError::new(
            ErrorCode::Internal,
            format!("something went wrong on the server (request id {id})"),
        );
        e.request_id = Some(id);
        e
    }

    /// Milliseconds to wait, rounded up.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after.map(retry_ms)
    }

    /// As a WebSocket `error` message answering request `id`.
    pub fn to_msg(&self, id: Option<u64>) -> ServerMsg {
        ServerMsg::Connection(ConnectionMsg::Error {
            id,
            code: self.code,
            message: self.message.clone(),
            retry_after_ms: self.retry_after_ms(),
            current_version: self.current_version.clone(),
            request_id: self.request_id.clone(),
        })
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound => AppError::new(ErrorCode::NotFound, "not found"),
            StoreError::Conflict => AppError::new(ErrorCode::Conflict, "already exists"),
            other if other.is_storage_full() => AppError::insufficient_storage(
                "this change could not be recorded (nothing changed)",
            ),
            e if e.is_unavailable() => AppError::unavailable(),
            other => AppError::internal(other),
        }
    }
}

impl From<crate::runner::RunnerError> for AppError {
    fn from(e: crate::runner::RunnerError) -> Self {
        use crate::runner::RunnerError;
        match e {
            RunnerError::Internal(_) | RunnerError::SessionGone => AppError::internal(e),
            other => {
                let mut err = AppError::new(other.code(), other.to_string());
                err.retry_after = other.retry_after_ms().map(std::time::Duration::from_millis);
                err
            }
        }
    }
}

impl From<crate::authz::Denied> for AppError {
    fn from(d: crate::authz::Denied) -> Self {
        AppError::new(ErrorCode::Forbidden, d.0)
    }
}

/// JSON body of an HTTP error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.http_status.unwrap_or_else(|| {
            StatusCode::from_u16(self.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
            retry_after_ms: self.retry_after_ms(),
            current_version: self.current_version.as_deref(),
            request_id: self.request_id.as_deref(),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// A rate limit's refusal at the boundary: `rate_limited` + `retry_after_ms`.
impl From<crate::ratelimit::Refused> for AppError {
    fn from(r: crate::ratelimit::Refused) -> Self {
        AppError::rate_limited(r.what, r.wait)
    }
}

pub use crate::retry::retry_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hints_round_up_so_waiting_that_long_is_enough() {
        let e = AppError::rate_limited("runs", Duration::from_micros(1_500));
        assert_eq!(e.retry_after_ms(), Some(2));
        let e = AppError::rate_limited("runs", Duration::from_millis(3));
        assert_eq!(e.retry_after_ms(), Some(3));
        let e = AppError::rate_limited("runs", Duration::ZERO);
        assert_eq!(e.retry_after_ms(), Some(1));
    }
}
