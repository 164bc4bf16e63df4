//! Shared pieces of the Campus benchmarks and load generator: start a real
//! `campus serve` (release build) on a fresh data dir, create users through the
//! CLI, log in, open WebSockets, and summarise latencies.

pub mod client;
pub mod runs;
pub mod server;
pub mod stats;
