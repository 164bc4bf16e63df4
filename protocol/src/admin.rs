//! The admin domain: a live feed of every session (pushed every second to the
//! admins watching, computed once per tick whatever their number) and the
//! actions an admin takes on a user: stop their run, disconnect them, disable
//! or re-enable their account. Every request needs the admin role; a refusal
//! is `forbidden` and audited.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::session::RunMode;

/// What a session is doing, as the admin view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum AdminSessionState {
    /// Connected, nothing running.
    Idle,
    /// Running a script.
    Script,
    /// In the REPL (after a script, or a REPL run).
    Repl,
    /// Nobody attached (a run may still go on until its grace ends).
    Detached,
}

/// One session in the admin feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct AdminSessionInfo {
    /// The session's user.
    pub user_id: i64,
    /// Their login name.
    pub username: String,
    /// What it is doing.
    pub state: AdminSessionState,
    /// True while a program runs (also while detached).
    pub running: bool,
    /// The live run's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Path of the live run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Mode of the live run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RunMode>,
    /// Age of the live run, ms.
    pub run_age_ms: u64,
    /// CPU of the live run since the previous tick, percent of one core.
    pub cpu_percent: f64,
    /// CPU of the live run so far, ms.
    pub cpu_ms: u64,
    /// Memory of the live run now, bytes (its cgroup's).
    pub memory_bytes: u64,
    /// Peak memory of the live run, bytes.
    pub peak_memory_bytes: u64,
    /// How long nothing has run, ms (0 while running).
    pub idle_ms: u64,
    /// How long nobody has been attached, ms (0 when someone is).
    pub detached_ms: u64,
    /// Output of the live run so far, bytes.
    pub output_bytes: u64,
    /// Connections attached to the session.
    pub attached: u32,
    /// The user's open connections (tabs and devices).
    pub clients: u32,
}

/// Sessions by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SessionCounts {
    /// Connected, nothing running.
    pub idle: u32,
    /// Running a script.
    pub script: u32,
    /// In the REPL.
    pub repl: u32,
    /// Nobody attached.
    pub detached: u32,
}

/// The whole server at one tick.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct AdminTotals {
    /// Open WebSocket connections.
    pub connections: u32,
    /// Sessions (all of them, also those beyond the feed's bound).
    pub sessions: u32,
    /// Sessions by state.
    pub by_state: SessionCounts,
    /// Sandboxes running now (interactive and grading).
    pub sandboxes_running: u32,
    /// Sandbox slots in all.
    pub sandbox_slots: u32,
    /// Runs waiting for a slot.
    pub sandbox_waiting: u32,
    /// Memory limit of one interactive run, bytes.
    pub memory_limit_bytes: u64,
    /// Runs started in the last minute.
    pub runs_per_min: u64,
    /// Runs ended in the last minute, by reason (`exited`, `timeout`, …).
    pub ended_per_min: BTreeMap<String, u64>,
    /// Requests refused in the last minute, by error code, and connections
    /// refused at the door (`connection_refused`).
    pub refusals_per_min: BTreeMap<String, u64>,
    /// Submissions waiting to be graded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grading_queue: Option<u64>,
    /// How long the oldest of them has waited, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grading_oldest_ms: Option<u64>,
    /// Free bytes on the data dir's filesystem.
    pub disk_free_bytes: u64,
    /// Size of that filesystem, bytes.
    pub disk_total_bytes: u64,
    /// Whether the database answers.
    pub database_up: bool,
}

/// One point of the last hour's charts (one a minute; the last one is now).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AdminPoint {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Sessions then.
    pub sessions: u32,
    /// Sandboxes running then.
    pub sandboxes_running: u32,
    /// Runs started in the minute before.
    pub runs_per_min: u64,
}

/// An account as the admin view lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AdminAccount {
    /// User id.
    pub user_id: i64,
    /// Login name.
    pub username: String,
    /// `student`, `professor` or `admin`.
    pub role: crate::types::Role,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// When it was created, ms since the epoch.
    pub created_at_ms: i64,
}

/// A request of the admin view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Start the live feed on this connection: the reply is an `admin_done`,
    /// then an `admin_feed` at once and one every tick.
    AdminWatch {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Stop the feed (reply: `admin_done`).
    AdminUnwatch {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Stop the user's run (`killed_by_admin`; the student is told).
    AdminStopRun {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Whose run.
        user_id: i64,
        /// Only this run (the one the admin saw): a newer one is left alone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
    },
    /// Close every connection of the user (close code 4011); they may log in
    /// and connect again. Their run keeps going for its detach grace.
    AdminDisconnect {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Whom.
        user_id: i64,
    },
    /// List every account (reply: `admin_accounts`), e.g. to enable a disabled one.
    AdminAccounts {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Disable (or re-enable) the account: when disabled, its connections
    /// close, its run stops and its tokens are refused at once.
    AdminSetDisabled {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Whom.
        user_id: i64,
        /// True to disable, false to enable again.
        disabled: bool,
    },
}

impl AdminRequest {
    /// The `type` of each admin request, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "admin_watch",
        "admin_unwatch",
        "admin_stop_run",
        "admin_disconnect",
        "admin_accounts",
        "admin_set_disabled",
    ];

    /// The request id, if the client gave one.
    pub fn id(&self) -> Option<u64> {
        match self {
            AdminRequest::AdminWatch { id }
            | AdminRequest::AdminUnwatch { id }
            | AdminRequest::AdminStopRun { id, .. }
            | AdminRequest::AdminDisconnect { id, .. }
            | AdminRequest::AdminAccounts { id }
            | AdminRequest::AdminSetDisabled { id, .. } => *id,
        }
    }
}

/// A message of the admin view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdminMsg {
    /// The live feed: every session (at most `MAX_FEED_SESSIONS` of them,
    /// running ones and the busiest first) and the totals.
    AdminFeed {
        /// When it was computed, ms since the epoch.
        at_ms: i64,
        /// The sessions.
        sessions: Vec<AdminSessionInfo>,
        /// True when there were more sessions than the feed carries.
        truncated: bool,
        /// The totals.
        totals: AdminTotals,
        /// The last hour, one point a minute, oldest first.
        history: Vec<AdminPoint>,
    },
    /// Every account, by username.
    AdminAccounts {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The accounts.
        accounts: Vec<AdminAccount>,
    },
    /// An action was done (or there was nothing to do: `changed` false).
    AdminDone {
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Which request: `admin_stop_run`, `admin_disconnect`, …
        action: String,
        /// Whom it was done to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
        /// False when there was nothing to do (no run, not connected, …).
        changed: bool,
        /// What happened, in words for the admin.
        message: String,
    },
}

/// Sessions one feed tick carries at most (the totals count them all).
pub const MAX_FEED_SESSIONS: usize = 1000;

impl AdminMsg {
    /// The request id a reply echoes (the feed's ticks have none).
    pub fn id(&self) -> Option<u64> {
        match self {
            AdminMsg::AdminFeed { .. } => None,
            AdminMsg::AdminAccounts { id, .. } | AdminMsg::AdminDone { id, .. } => *id,
        }
    }

    /// The `type` of each admin message, in declaration order.
    pub const TYPES: &'static [&'static str] = &["admin_feed", "admin_accounts", "admin_done"];
}
