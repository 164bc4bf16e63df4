//! Shared integration-test support.
#![allow(dead_code)]

pub mod db;
pub mod server;
