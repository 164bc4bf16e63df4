//! The runner: per-user sessions owning a sandboxed PTY process (filled in by the Runner work).
