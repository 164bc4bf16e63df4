//! Messages the client sends (`ClientMsg`), as tagged JSON text frames:
//! `{"type":"read","id":7,"path":"main.py"}`. `id` is optional and echoed in
//! the reply so a client can match replies to requests. Each domain has its own
//! group ([`FileRequest`], [`SessionRequest`], [`CourseRequest`],
//! [`ConnectionRequest`]); on the
//! wire they are one tagged object (see [`crate::wire`]), so a new domain
//! (courses, assignments, admin) is a new group and one more variant here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::admin::AdminRequest;
use crate::connection::ConnectionRequest;
use crate::courses::CourseRequest;
use crate::files::FileRequest;
use crate::grading::GradingRequest;
use crate::session::SessionRequest;
use crate::wire;

/// A message from client to server.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(untagged))]
pub enum ClientMsg {
    /// A file operation (goes to the connection's file task).
    Files(FileRequest),
    /// A message to the user's session.
    Session(SessionRequest),
    /// A course operation (goes to the connection's file task).
    Courses(CourseRequest),
    /// An assignment or grading operation.
    Grading(GradingRequest),
    /// The admin view: the live feed and actions on users.
    Admin(AdminRequest),
    /// About the connection itself (`ping`).
    Connection(ConnectionRequest),
}

/// Every client `type`, in the order refusals list them.
const TYPES: &[&str] = &[
    "ping",
    "list",
    "stat",
    "read",
    "write",
    "mkdir",
    "rename",
    "copy",
    "delete",
    "list_versions",
    "read_version",
    "restore_version",
    "trash_list",
    "trash_restore",
    "run",
    "input",
    "resize",
    "interrupt",
    "stop",
    "attach",
    "ack",
    "course_list",
    "course_create",
    "course_open",
    "course_list_files",
    "course_read",
    "course_write",
    "course_mkdir",
    "course_delete",
    "course_copy",
    "section_save",
    "section_delete",
    "exception_set",
    "exception_remove",
    "release_set",
    "release_remove",
    "roster_get",
    "enroll",
    "unenroll",
    "roster_import",
    "student_list_files",
    "student_read",
    "student_versions",
    "student_read_version",
    "student_runs",
    "assignment_get",
    "assignment_save",
    "test_file_put",
    "test_file_delete",
    "test_file_get",
    "check",
    "submit",
    "submission_get",
    "gradebook_get",
    "regrade",
    "progress_get",
    "admin_watch",
    "admin_unwatch",
    "admin_stop_run",
    "admin_disconnect",
    "admin_accounts",
    "admin_set_disabled",
];

impl ClientMsg {
    /// The request id, if the client gave one.
    pub fn id(&self) -> Option<u64> {
        match self {
            ClientMsg::Files(m) => m.id(),
            ClientMsg::Session(m) => m.id(),
            ClientMsg::Courses(m) => m.id(),
            ClientMsg::Grading(m) => m.id(),
            ClientMsg::Admin(m) => m.id(),
            ClientMsg::Connection(m) => m.id(),
        }
    }
}

impl Serialize for ClientMsg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ClientMsg::Files(m) => m.serialize(s),
            ClientMsg::Session(m) => m.serialize(s),
            ClientMsg::Courses(m) => m.serialize(s),
            ClientMsg::Grading(m) => m.serialize(s),
            ClientMsg::Admin(m) => m.serialize(s),
            ClientMsg::Connection(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ClientMsg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let msg = wire::read(d, "internally tagged enum ClientMsg", TYPES)?;
        let tag = msg.tag.as_str();
        if FileRequest::TYPES.contains(&tag) {
            wire::group(msg).map(ClientMsg::Files)
        } else if SessionRequest::TYPES.contains(&tag) {
            wire::group(msg).map(ClientMsg::Session)
        } else if CourseRequest::TYPES.contains(&tag) {
            wire::group(msg).map(ClientMsg::Courses)
        } else if GradingRequest::TYPES.contains(&tag) {
            wire::group(msg).map(ClientMsg::Grading)
        } else if AdminRequest::TYPES.contains(&tag) {
            wire::group(msg).map(ClientMsg::Admin)
        } else {
            wire::group(msg).map(ClientMsg::Connection)
        }
    }
}

impl From<FileRequest> for ClientMsg {
    fn from(m: FileRequest) -> Self {
        ClientMsg::Files(m)
    }
}

impl From<SessionRequest> for ClientMsg {
    fn from(m: SessionRequest) -> Self {
        ClientMsg::Session(m)
    }
}

impl From<GradingRequest> for ClientMsg {
    fn from(m: GradingRequest) -> Self {
        ClientMsg::Grading(m)
    }
}

impl From<AdminRequest> for ClientMsg {
    fn from(m: AdminRequest) -> Self {
        ClientMsg::Admin(m)
    }
}

impl From<CourseRequest> for ClientMsg {
    fn from(m: CourseRequest) -> Self {
        ClientMsg::Courses(m)
    }
}

impl From<ConnectionRequest> for ClientMsg {
    fn from(m: ConnectionRequest) -> Self {
        ClientMsg::Connection(m)
    }
}

/// Pull the `id` out of a message that failed to parse as a `ClientMsg`, so the
/// `bad_request` error can still be matched by the client.
pub fn salvage_id(raw: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()?
        .get("id")?
        .as_u64()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The types a group's enum knows, from its own refusal of an unknown one.
    pub(crate) fn declared<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let err = serde_json::from_str::<T>(r#"{"type":"?"}"#)
            .unwrap_err()
            .to_string();
        // "expected one of `a`, `b`, `c`", "expected `a` or `b`" for a group
        // of two, "expected `a`" for a group of one.
        let list = err.split("expected ").nth(1).unwrap_or_default();
        let list = list.trim_start_matches("one of ").replace("` or `", "`, `");
        let list = list.split(" at line").next().unwrap_or_default();
        list.split(", ")
            .map(|t| t.trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn the_groups_are_the_whole_list_and_name_their_own_types() {
        let groups = [
            (declared::<FileRequest>(), FileRequest::TYPES),
            (declared::<SessionRequest>(), SessionRequest::TYPES),
            (declared::<CourseRequest>(), CourseRequest::TYPES),
            (declared::<GradingRequest>(), GradingRequest::TYPES),
            (declared::<AdminRequest>(), AdminRequest::TYPES),
            (declared::<ConnectionRequest>(), ConnectionRequest::TYPES),
        ];
        let mut all = Vec::new();
        for (serde_names, types) in &groups {
            assert_eq!(serde_names, types);
            all.extend(types.iter().copied());
        }
        all.sort_unstable();
        let mut listed = TYPES.to_vec();
        listed.sort_unstable();
        assert_eq!(all, listed);
    }
}
