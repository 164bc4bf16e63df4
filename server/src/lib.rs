//! The Campus server library: everything `campus` does, with an injectable
//! listener and shutdown signal so tests can run a real server on port 0.

pub mod admin;
pub mod auth;
pub mod authz;
pub mod backup;
pub mod cli;
pub mod config;
pub mod conn;
pub mod courses;
pub mod disk;
pub mod error;
pub mod execution;
pub mod files;
pub mod grading;
pub mod http;
pub mod hub;
pub mod instance;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod readiness;
pub mod records;
pub mod retry;
pub mod runner;
pub mod sandbox;
pub mod server;
pub mod state;
pub mod store;
pub mod ws;
