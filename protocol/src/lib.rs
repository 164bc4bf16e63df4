//! Campus wire protocol: the JSON messages exchanged over `GET /ws`, the binary
//! terminal-output frame, the error codes shared by WebSocket and HTTP, and the
//! protocol version. This crate does no I/O; both the server and the test/load
//! clients depend on it so they cannot drift apart.

pub mod client;
pub mod error;
pub mod frames;
pub mod server;
pub mod types;

pub use client::ClientMsg;
pub use error::{close_codes, ErrorCode};
pub use server::ServerMsg;
pub use types::*;

/// Version of this protocol, sent in the first `hello` message.
pub const PROTOCOL_VERSION: u32 = 1;
