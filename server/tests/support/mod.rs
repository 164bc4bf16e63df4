//! Shared integration-test support.
#![allow(dead_code)]

pub mod class;
pub mod db;
pub mod grading;
pub mod pg_private;
pub mod process;
pub mod server;
