//! The Campus server library: everything `campus` does, with an injectable
//! listener and shutdown signal so tests can run a real server on port 0.

pub mod cli;
pub mod config;
pub mod runner;
pub mod sandbox;
pub mod store;
