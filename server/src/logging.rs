//! Structured logging with tracing: human-readable by default, JSON lines with
//! `--log-json`. Every request and WebSocket connection runs inside a span that
//! carries its id, so every line names it.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`campus serve`: the log is its only output).
    Stdout,
    /// Standard error (`campus run`: stdout carries the program's output only,
    /// so `campus run … > out.txt` captures exactly what the program printed).
    Stderr,
}

/// Install the global subscriber once (later calls are no-ops, for tests).
pub fn init(json: bool, target: Target) {
    let filter = EnvFilter::try_from_env("CAMPUS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let registry = tracing_subscriber::registry().with(filter);
    let writer = move || -> Box<dyn std::io::Write> {
        match target {
            Target::Stdout => Box::new(std::io::stdout()),
            Target::Stderr => Box::new(std::io::stderr()),
        }
    };
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .with_target(false)
                    // `campus run 2> err.txt`: no colour codes in the file.
                    .with_ansi(
                        target == Target::Stdout
                            || std::io::IsTerminal::is_terminal(&std::io::stderr()),
                    )
                    .with_writer(writer),
            )
            .try_init()
    };
    // Already installed (tests start several servers in one process).
    let _ = result;
}
