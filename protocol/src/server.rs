//! Messages the server sends (`ServerMsg`) as tagged JSON text frames. Terminal
//! output travels separately as binary frames (see [`crate::frames`]). Each
//! domain has its own group ([`FileMsg`], [`SessionMsg`], [`ConnectionMsg`]);
//! on the wire they are one tagged object (see [`crate::wire`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::admin::AdminMsg;
use crate::connection::ConnectionMsg;
use crate::courses::CourseMsg;
use crate::error::ErrorCode;
use crate::files::FileMsg;
use crate::grading::GradingMsg;
use crate::session::SessionMsg;
use crate::wire;

/// A message from server to client.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(untagged))]
pub enum ServerMsg {
    /// A reply to a file request, or a change made elsewhere.
    Files(FileMsg),
    /// An event of the user's session.
    Session(SessionMsg),
    /// A reply to a course request, or a course's change.
    Courses(CourseMsg),
    /// A reply to a grading request, or a grading's progress.
    Grading(GradingMsg),
    /// The admin view's feed and the result of an admin's action.
    Admin(AdminMsg),
    /// About the connection itself (`hello`, `pong`, `error`, `shutdown`).
    Connection(ConnectionMsg),
}

/// Every server `type`, in the order refusals list them.
const TYPES: &[&str] = &[
    "hello",
    "pong",
    "error",
    "listing",
    "entry",
    "file",
    "written",
    "deleted",
    "versions",
    "trash",
    "file_changed",
    "run_started",
    "phase",
    "warning",
    "run_ended",
    "attached",
    "shutdown",
    "courses",
    "course",
    "course_listing",
    "course_file",
    "course_written",
    "course_copied",
    "roster",
    "roster_result",
    "student_versions",
    "student_runs",
    "course_changed",
    "assignment",
    "test_file",
    "submission",
    "check_started",
    "test_progress",
    "check_done",
    "gradebook",
    "regraded",
    "progress",
    "admin_feed",
    "admin_accounts",
    "admin_done",
];

impl ServerMsg {
    /// Build an error reply.
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Connection(ConnectionMsg::Error {
            id,
            code,
            message: message.into(),
            retry_after_ms: None,
            current_version: None,
            request_id: None,
        })
    }
}

impl Serialize for ServerMsg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ServerMsg::Files(m) => m.serialize(s),
            ServerMsg::Session(m) => m.serialize(s),
            ServerMsg::Courses(m) => m.serialize(s),
            ServerMsg::Grading(m) => m.serialize(s),
            ServerMsg::Admin(m) => m.serialize(s),
            ServerMsg::Connection(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ServerMsg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let msg = wire::read(d, "internally tagged enum ServerMsg", TYPES)?;
        let tag = msg.tag.as_str();
        if FileMsg::TYPES.contains(&tag) {
            wire::group(msg).map(ServerMsg::Files)
        } else if SessionMsg::TYPES.contains(&tag) {
            wire::group(msg).map(ServerMsg::Session)
        } else if CourseMsg::TYPES.contains(&tag) {
            wire::group(msg).map(ServerMsg::Courses)
        } else if GradingMsg::TYPES.contains(&tag) {
            wire::group(msg).map(ServerMsg::Grading)
        } else if AdminMsg::TYPES.contains(&tag) {
            wire::group(msg).map(ServerMsg::Admin)
        } else {
            wire::group(msg).map(ServerMsg::Connection)
        }
    }
}

impl From<FileMsg> for ServerMsg {
    fn from(m: FileMsg) -> Self {
        ServerMsg::Files(m)
    }
}

impl From<SessionMsg> for ServerMsg {
    fn from(m: SessionMsg) -> Self {
        ServerMsg::Session(m)
    }
}

impl From<CourseMsg> for ServerMsg {
    fn from(m: CourseMsg) -> Self {
        ServerMsg::Courses(m)
    }
}

impl From<AdminMsg> for ServerMsg {
    fn from(m: AdminMsg) -> Self {
        ServerMsg::Admin(m)
    }
}

impl From<GradingMsg> for ServerMsg {
    fn from(m: GradingMsg) -> Self {
        ServerMsg::Grading(m)
    }
}

impl From<ConnectionMsg> for ServerMsg {
    fn from(m: ConnectionMsg) -> Self {
        ServerMsg::Connection(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::declared;

    #[test]
    fn the_groups_are_the_whole_list_and_name_their_own_types() {
        let groups = [
            (declared::<FileMsg>(), FileMsg::TYPES),
            (declared::<SessionMsg>(), SessionMsg::TYPES),
            (declared::<CourseMsg>(), CourseMsg::TYPES),
            (declared::<GradingMsg>(), GradingMsg::TYPES),
            (declared::<AdminMsg>(), AdminMsg::TYPES),
            (declared::<ConnectionMsg>(), ConnectionMsg::TYPES),
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
