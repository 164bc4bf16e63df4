//! Structured logging with tracing: human-readable by default, JSON lines with
//! `--log-json`. Every request and WebSocket connection runs inside a span that
//! carries its id, so every line names it.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Install the global subscriber once (later calls are no-ops, for tests).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("CAMPUS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
    // Already installed (tests start several servers in one process).
    let _ = result;
}
