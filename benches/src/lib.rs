//! Shared pieces of the Campus benchmarks and load generator: start a real
//! `campus serve` (release build) on a fresh data dir, create users through the
//! CLI, log in, open WebSockets, summarise latencies, and the class load
//! generator itself ([`load`]).

pub mod admin;
pub mod client;
pub mod courses;
pub mod grading;
pub mod load;
pub mod runs;
pub mod server;
pub mod stats;
