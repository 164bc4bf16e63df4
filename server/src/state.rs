//! What every request handler is given, through axum `State` (no globals, so
//! tests can run several servers in one process): the services, each owning
//! its own dependencies, the plain settings of connections and HTTP, and the
//! server's lifetime (its shutdown token and task tracker). Handlers take what
//! they need from the services; nothing here is reached past them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use campus_protocol::Limits;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::AuthService;
use crate::config::ServeArgs;
use crate::conn::ConnLimits;
use crate::courses::CourseService;
use crate::files::FileService;
use crate::grading::GradingService;
use crate::http::origin::OriginPolicy;
use crate::hub::Hub;
use crate::readiness::Readiness;
use crate::runner::Runner;

/// The services and settings every handler may use.
#[derive(Debug)]
pub struct AppState {
    /// Logins, token checks, account re-checks.
    pub auth: AuthService,
    /// Workspaces: authorization, limits, `workspace-fs`, change events.
    pub files: Arc<FileService>,
    /// Courses: catalog, material, roster, students' work for staff.
    pub courses: Arc<CourseService>,
    /// Assignments, submissions and their grading.
    pub grading: Arc<GradingService>,
    /// Sessions and runs.
    pub runner: Arc<Runner>,
    /// Live connections per user (connections register here).
    pub hub: Arc<Hub>,
    /// Every accepted socket's slot: limits per address before
    /// authentication, per user, and in total (see [`crate::conn`]).
    pub conns: Arc<ConnLimits>,
    /// What `/readyz` reports.
    pub readiness: Readiness,
    /// The admin view: its live feed, its actions' audit.
    pub admin: crate::admin::AdminService,
    /// What `/metrics` exposes.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Plain settings of connections and HTTP.
    pub settings: Settings,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks (and what they start) so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// This server instance's id (`<data dir>/instance-id`, see [`crate::instance`]).
    pub instance_id: String,
}

/// Shared handle.
pub type SharedState = Arc<AppState>;

/// Settings of connections and HTTP requests, read from the configuration once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Limits announced in `hello`.
    pub limits: Limits,
    /// WebSocket messages a connection may send per minute.
    pub ws_messages_per_min: u32,
    /// Largest WebSocket message accepted, bytes.
    pub ws_max_message_bytes: usize,
    /// Time between server pings.
    pub heartbeat: Duration,
    /// A connection silent this long is dropped.
    pub heartbeat_timeout: Duration,
    /// Which browser origins may open a WebSocket (`CAMPUS_PUBLIC_URL` and
    /// `CAMPUS_ALLOWED_ORIGINS`), and whether cookies are `Secure`.
    pub origins: OriginPolicy,
    /// Extra browser origins allowed for CORS (`CAMPUS_ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// An upload receiving nothing this long is cancelled.
    pub upload_idle_timeout: Duration,
    /// Longest an upload may take.
    pub upload_timeout: Duration,
    /// The built web client, if any.
    pub web_dir: Option<PathBuf>,
}

impl Settings {
    /// The settings of `args`, with `limits` as announced to clients and
    /// `origins` resolved against the bound address.
    pub fn new(args: &ServeArgs, limits: Limits, origins: OriginPolicy) -> Self {
        Settings {
            origins,
            limits,
            ws_messages_per_min: args.ws_messages_per_min,
            ws_max_message_bytes: usize::try_from(args.ws_max_message_kb.max(4) * 1024)
                .unwrap_or(usize::MAX),
            heartbeat: Duration::from_secs(args.heartbeat_secs.max(1)),
            heartbeat_timeout: Duration::from_secs(args.heartbeat_timeout_secs.max(2)),
            allowed_origins: args
                .allowed_origins
                .iter()
                .filter(|o| !o.trim().is_empty())
                .cloned()
                .collect(),
            upload_idle_timeout: Duration::from_secs(args.upload_idle_timeout_secs.max(1)),
            upload_timeout: Duration::from_secs(args.upload_timeout_secs.max(1)),
            web_dir: args.web_dir.clone(),
        }
    }
}
