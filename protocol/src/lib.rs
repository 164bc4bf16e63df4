//! Campus wire protocol: the JSON messages exchanged over `GET /ws`, the binary
//! terminal-output frame, the error codes shared by WebSocket and HTTP, and the
//! protocol version. This crate does no I/O; both the server and the test/load
//! clients depend on it so they cannot drift apart.
//!
//! Messages are grouped by domain, each group a module with its requests, its
//! server messages and the value types they carry: [`files`], [`session`],
//! [`courses`], [`grading`], [`admin`], [`connection`].
//! [`ClientMsg`] and [`ServerMsg`] join the groups; on the wire each message is
//! one tagged JSON object, as if the groups were a single enum.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod client;
pub mod connection;
pub mod courses;
pub mod error;
pub mod files;
pub mod frames;
pub mod grading;
pub mod server;
pub mod session;
pub mod types;
mod wire;

pub use admin::{
    AdminAccount, AdminMsg, AdminPoint, AdminRequest, AdminSessionInfo, AdminSessionState,
    AdminTotals, SessionCounts, MAX_FEED_SESSIONS,
};
pub use client::ClientMsg;
pub use connection::{ConnectionMsg, ConnectionRequest, Limits};
pub use courses::{
    CourseInfo, CourseMsg, CourseRequest, CourseRole, CourseSummary, ExceptionInfo, MemberInfo,
    NewAccount, ReleaseInfo, RosterLine, RunSummary, SectionInfo, SectionState,
};
pub use error::{close_codes, ErrorCode};
pub use files::{
    ChangeKind, Encoding, EntryKind, FileEntry, FileMsg, FileRequest, TrashItem, VersionInfo,
};
pub use grading::{
    AssignmentConfig, AssignmentInfo, GradebookLine, GradingMsg, GradingRequest, LatePolicy,
    ProgressLine, SubmissionInfo, SubmissionState, TestResultInfo, TestSetting, TestStatInfo,
    TestVisibility,
};
pub use server::ServerMsg;
pub use session::{EndReason, Phase, RunEnded, RunMode, SessionMsg, SessionRequest};
pub use types::*;

/// Version of this protocol, sent in the first `hello` message.
pub const PROTOCOL_VERSION: u32 = 1;
