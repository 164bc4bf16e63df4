//! Typed configuration: command-line flags with `CAMPUS_*` environment
//! fallbacks and defaults, validated once before anything is served.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::runner::config as runner;
use crate::sandbox;

/// Where the data lives: shared by `serve`, `migrate`, `user …` and `run`.
/// Its `Debug` hides the password of the database URL.
#[derive(Clone, Args)]
pub struct StorageArgs {
    /// Data directory (SQLite database, workspaces, dev JWT secret).
    #[arg(long, env = "CAMPUS_DATA_DIR", default_value = "./campus-data")]
    pub data_dir: PathBuf,
    /// Database URL: `postgres://…` selects PostgreSQL; absent means SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Maximum database connections in the pool.
    #[arg(long, env = "CAMPUS_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Seconds a request waits for a free database connection.
    #[arg(long, env = "CAMPUS_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    pub db_acquire_timeout_secs: u64,
    /// Seconds an idle database connection is kept.
    #[arg(long, env = "CAMPUS_DB_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub db_idle_timeout_secs: u64,
    /// Seconds between marks of the live runs in the database; after a crash a
    /// run is recorded as ended at its last mark.
    #[arg(long, env = "CAMPUS_RUN_LIVENESS_SECS", default_value_t = 10)]
    pub run_liveness_secs: u64,
}

impl RunLimitArgs {
    /// The runner's settings (its plain struct; the runner knows nothing of clap).
    pub fn runner_config(&self) -> crate::runner::RunnerConfig {
        let d = crate::runner::RunnerConfig::default();
        crate::runner::RunnerConfig {
            limits: crate::sandbox::SandboxLimits {
                memory_bytes: self.memory_limit_mb.max(1) << 20,
                pids: self.pids_limit.max(1),
                cpu_secs: self.cpu_time_limit_secs.max(1),
                file_size_bytes: self.file_size_limit_mb.max(1) << 20,
                disk_bytes: self.workspace_quota_mb.saturating_mul(1 << 20),
                disk_entries: self.workspace_max_entries,
                ..d.limits.clone()
            },
            script_max_age: Duration::from_secs(self.script_max_age_secs.max(1)),
            repl_max_age: Duration::from_secs(self.repl_max_age_secs.max(1)),
            output_limit_bytes: self.output_limit_mb.max(1) << 20,
            detached_grace: Duration::from_secs(self.detached_grace_secs.max(1)),
            reaper_interval: Duration::from_secs(self.reaper_interval_secs.max(1)),
            max_concurrent_runs: self.max_concurrent_runs as usize,
            batch_reserve_slots: self.batch_reserve_slots as usize,
            batch_queue: self.batch_queue,
            warm_sandboxes: self.warm_sandboxes,
            runs_per_min: self.runs_per_min.max(1),
            python: self.python.clone(),
            ..d
        }
    }

    /// The sandbox helper binary.
    pub fn helper_exe(&self) -> std::io::Result<PathBuf> {
        match &self.sandbox_helper {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe(),
        }
    }

    /// Make the helper path absolute (a bare name is looked up in `PATH`, the
    /// default is this executable) and check that `CAMPUS_PYTHON` is absolute.
    pub fn resolve_paths(&mut self, cwd: &Path) -> Result<(), ConfigError> {
        let helper = match self.sandbox_helper.take() {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(ConfigError::Invalid(
                    "CAMPUS_SANDBOX_HELPER is empty".into(),
                ))
            }
            Some(p) if is_bare_name(&p) => find_in_path(&p).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "CAMPUS_SANDBOX_HELPER {}: not found in PATH",
                    p.display()
                ))
            })?,
            Some(p) => absolute_in(cwd, &p),
            None => std::env::current_exe().map_err(|e| {
                ConfigError::Invalid(format!("cannot find the campus executable: {e}"))
            })?,
        };
        if !helper.is_file() {
            return Err(ConfigError::Invalid(format!(
                "CAMPUS_SANDBOX_HELPER {} is not a file",
                helper.display()
            )));
        }
        self.sandbox_helper = Some(helper);
        // A path inside the sandbox's root: resolving it against the host's
        // working directory would name a different file.
        if !self.python.is_absolute() {
            return Err(ConfigError::Invalid(format!(
                "CAMPUS_PYTHON must be an absolute path inside the sandbox (e.g. /usr/bin/python3), not {:?}",
                self.python
            )));
        }
        Ok(())
    }
}

/// `p` as an absolute path: a relative one is taken against `cwd` (the
/// directory `campus` was started in) and `.` components are dropped. Purely
/// lexical: symbolic links and `..` are left to the kernel.
pub fn absolute_in(cwd: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// A command name without a directory (`campus`, not `./campus`).
fn is_bare_name(p: &Path) -> bool {
    !p.is_absolute() && p.components().count() == 1 && !p.starts_with(".")
}

/// The first file `name` in the directories of `PATH` (absolute ones only).
fn find_in_path(name: &Path) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `sqlite://PATH` for a file path; `%`, `?` and `#` are percent-encoded
/// because sqlx decodes the path and splits the query at `?`.
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url
}

/// A `sqlite:` URL whose file path is relative, made absolute against `cwd`
/// (in-memory databases and other schemes are returned unchanged).
fn absolute_sqlite_url(url: &str, cwd: &Path) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_string();
    };
    let (db, params) = match rest.split_once('?') {
        Some((db, params)) => (db, Some(params)),
        None => (rest, None),
    };
    if db.is_empty() || db == ":memory:" || db.starts_with('/') {
        return url.to_string();
    }
    // `db` is already percent-encoded: only the directory in front needs it.
    let mut out = sqlite_url(cwd);
    if !out.ends_with('/') {
        out.push('/');
    }
    out.push_str(db.trim_start_matches("./"));
    if let Some(p) = params {
        out.push('?');
        out.push_str(p);
    }
    out
}

impl StorageArgs {
    /// Make the data dir (and a relative SQLite path in `DATABASE_URL`) absolute.
    pub fn resolve_paths(&mut self, cwd: &Path) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("CAMPUS_DATA_DIR is empty".into()));
        }
        self.data_dir = absolute_in(cwd, &self.data_dir);
        if let Some(url) = &self.database_url {
            self.database_url = Some(absolute_sqlite_url(url.trim(), cwd));
        }
        Ok(())
    }

    /// The database URL actually used (SQLite in the data dir by default).
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.clone(),
            _ => sqlite_url(&self.data_dir.join("campus.db")),
        }
    }

    /// The SQLite database file, when the database is SQLite on disk (None for
    /// PostgreSQL and in-memory databases).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let url = self.effective_database_url();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return None;
        }
        // Undo the encoding of `sqlite_url`.
        let decoded = path
            .replace("%3F", "?")
            .replace("%23", "#")
            .replace("%25", "%");
        Some(PathBuf::from(decoded))
    }

    /// Pool settings from the flags.
    pub fn pool_settings(&self) -> crate::store::PoolSettings {
        crate::store::PoolSettings {
            max_connections: self.db_max_connections.max(1),
            min_connections: 1,
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.db_idle_timeout_secs.max(1)),
            max_lifetime: Duration::from_secs(1800),
        }
    }

    /// Root of the student-visible workspace trees.
    pub fn workspaces_dir(&self) -> PathBuf {
        self.data_dir.join("workspaces")
    }

    /// Root of the per-workspace metadata (history, trash); never mounted in a sandbox.
    pub fn workspace_meta_dir(&self) -> PathBuf {
        self.data_dir.join("workspace-meta")
    }

    /// Root of grading: the harness, submissions' snapshots, work trees; never mounted whole.
    pub fn grading_dir(&self) -> PathBuf {
        self.data_dir.join("grading")
    }

    /// Root of the course material trees (mounted read-only in runs).
    pub fn courses_dir(&self) -> PathBuf {
        self.data_dir.join("courses")
    }

    /// Root of the course material's history and trash; never mounted.
    pub fn course_meta_dir(&self) -> PathBuf {
        self.data_dir.join("course-meta")
    }

    /// Where run records wait while the database cannot take them.
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("journal")
    }

    /// The record writer's settings for a process named `name`.
    pub fn records_config(&self, name: &str) -> crate::records::RecordsConfig {
        crate::records::RecordsConfig::new(
            self.journal_dir(),
            name,
            Duration::from_secs(self.run_liveness_secs.max(1)),
        )
    }
}

/// Limits of a run (read by `serve` and `run` alike).
#[derive(Debug, Clone, Args)]
pub struct RunLimitArgs {
    /// Wall-clock limit of the script phase, seconds.
    #[arg(long, env = "CAMPUS_SCRIPT_MAX_AGE_SECS", default_value_t = runner::DEFAULT_SCRIPT_MAX_AGE_SECS)]
    pub script_max_age_secs: u64,
    /// Wall-clock limit of the REPL phase, seconds.
    #[arg(long, env = "CAMPUS_REPL_MAX_AGE_SECS", default_value_t = runner::DEFAULT_REPL_MAX_AGE_SECS)]
    pub repl_max_age_secs: u64,
    /// CPU-time limit of a run, seconds.
    #[arg(long, env = "CAMPUS_CPU_TIME_LIMIT_SECS", default_value_t = sandbox::DEFAULT_CPU_SECS)]
    pub cpu_time_limit_secs: u64,
    /// Memory limit of a run, MiB (no swap).
    #[arg(long, env = "CAMPUS_MEMORY_LIMIT_MB", default_value_t = sandbox::DEFAULT_MEMORY_MIB)]
    pub memory_limit_mb: u64,
    /// Maximum processes/threads of a run.
    #[arg(long, env = "CAMPUS_PIDS_LIMIT", default_value_t = sandbox::DEFAULT_PIDS)]
    pub pids_limit: u64,
    /// Largest file a run may write, MiB.
    #[arg(long, env = "CAMPUS_FILE_SIZE_LIMIT_MB", default_value_t = sandbox::DEFAULT_FILE_SIZE_MIB)]
    pub file_size_limit_mb: u64,
    /// Total output cap of a run, MiB.
    #[arg(long, env = "CAMPUS_OUTPUT_LIMIT_MB", default_value_t = crate::execution::DEFAULT_OUTPUT_MIB)]
    pub output_limit_mb: u64,
    /// How long a session with nobody attached is kept for reattach, seconds.
    #[arg(long, env = "CAMPUS_DETACHED_GRACE_SECS", default_value_t = 300)]
    pub detached_grace_secs: u64,
    /// How often the reaper runs, seconds.
    #[arg(long, env = "CAMPUS_REAPER_INTERVAL_SECS", default_value_t = 300)]
    pub reaper_interval_secs: u64,
    /// Maximum concurrently running sandboxes on this host, interactive and
    /// batch together (0 = derive from memory and CPUs).
    #[arg(long, env = "CAMPUS_MAX_CONCURRENT_RUNS", default_value_t = 0)]
    pub max_concurrent_runs: u32,
    /// Sandbox slots batch work (grading, course jobs) always leaves free for
    /// students' interactive runs (0 = a quarter of the slots, at least 1).
    #[arg(long, env = "CAMPUS_BATCH_RESERVE_SLOTS", default_value_t = 0)]
    pub batch_reserve_slots: u32,
    /// Batch executions that may wait for a slot (beyond: `busy`).
    #[arg(long, env = "CAMPUS_BATCH_QUEUE", default_value_t = runner::DEFAULT_BATCH_QUEUE)]
    pub batch_queue: usize,
    /// Warm sandboxes kept ready on this host, one per student whose IDE is
    /// open (absent: a tenth of RAM at 8 MiB each; 0 = every run starts cold).
    #[arg(long, env = "CAMPUS_WARM_SANDBOXES")]
    pub warm_sandboxes: Option<usize>,
    /// Runs a user may start per minute.
    #[arg(long, env = "CAMPUS_RUNS_PER_MIN", default_value_t = runner::DEFAULT_RUNS_PER_MIN)]
    pub runs_per_min: u32,
    /// Python interpreter inside the sandbox.
    #[arg(long, env = "CAMPUS_PYTHON", default_value = "/usr/bin/python3")]
    pub python: PathBuf,
    /// The `campus` binary to re-exec as the sandbox helper (default: this executable).
    #[arg(long, env = "CAMPUS_SANDBOX_HELPER")]
    pub sandbox_helper: Option<PathBuf>,
    /// Name of the cgroup (under the server's own) that holds this server's runs.
    /// Servers sharing a host need different names.
    #[arg(long, env = "CAMPUS_CGROUP_GROUP", default_value = "campus")]
    pub cgroup_group: String,
    /// First uid of the per-student sandbox uid range (uid = base + user id).
    #[arg(long, env = "CAMPUS_SANDBOX_UID_BASE", default_value_t = 200_000)]
    pub sandbox_uid_base: u32,
    /// Workspace quota per user, MiB (the API's accounting, and the kernel's
    /// disk quota of the student's runs; see docs/security.md, "Storage").
    #[arg(long, env = "CAMPUS_WORKSPACE_QUOTA_MB", default_value_t = 150)]
    pub workspace_quota_mb: u64,
    /// Maximum files and directories per workspace.
    #[arg(long, env = "CAMPUS_WORKSPACE_MAX_ENTRIES", default_value_t = 5000)]
    pub workspace_max_entries: u64,
    /// Run even though the workspaces' filesystem enforces no disk quota
    /// (production refuses to start otherwise): runs are then stopped by a
    /// periodic usage scan instead, which a fast writer can overshoot.
    #[arg(long, env = "CAMPUS_ALLOW_NO_DISK_QUOTA", default_value_t = false)]
    pub allow_no_disk_quota: bool,
}

/// How failed logins are slowed down (docs/security.md, "Login limiting").
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Failed logins for one username from one address before each further
    /// attempt waits (exponential backoff).
    #[arg(long, env = "CAMPUS_LOGIN_ATTEMPTS", default_value_t = 5)]
    pub login_attempts: u32,
    /// Seconds after its wait ended when a username+address's (or a device
    /// cookie's) failures are forgotten; also the period of the username and
    /// address budgets.
    #[arg(long, env = "CAMPUS_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,
    /// First backoff wait, milliseconds; it doubles with each further failure.
    #[arg(long, env = "CAMPUS_LOGIN_BACKOFF_MS", default_value_t = 1000)]
    pub login_backoff_ms: u64,
    /// Longest backoff wait, seconds.
    #[arg(long, env = "CAMPUS_LOGIN_BACKOFF_MAX_SECS", default_value_t = 900)]
    pub login_backoff_max_secs: u64,
    /// Failed logins per username per window from browsers without its device
    /// cookie, all addresses together (beyond: one per window/N).
    #[arg(long, env = "CAMPUS_LOGIN_USER_FAILURES", default_value_t = 50)]
    pub login_user_failures: u32,
    /// Failed logins per address per window from browsers without a device
    /// cookie, all usernames together (a classroom behind one NAT shares it).
    #[arg(long, env = "CAMPUS_LOGIN_ADDRESS_FAILURES", default_value_t = 200)]
    pub login_address_failures: u32,
    /// Failed logins with one device cookie before its attempts back off.
    #[arg(long, env = "CAMPUS_LOGIN_DEVICE_ATTEMPTS", default_value_t = 10)]
    pub login_device_attempts: u32,
    /// Lifetime of the device cookie a successful login sets, days.
    #[arg(long, env = "CAMPUS_DEVICE_COOKIE_DAYS", default_value_t = 180)]
    pub device_cookie_days: u64,
}

/// Connection limits (docs/security.md, "Connections").
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Most open client connections, HTTP and WebSocket together (0: half of
    /// what the open-files limit leaves after `CAMPUS_FD_RESERVE`).
    #[arg(long, env = "CAMPUS_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Descriptors never used for client connections: the database pool,
    /// workspaces, runs, the journal and served files need them (at most half
    /// the open-files limit).
    #[arg(long, env = "CAMPUS_FD_RESERVE", default_value_t = 1024)]
    pub fd_reserve: u64,
    /// Most connections that have not authenticated, all addresses together
    /// (0: a quarter of the connection cap).
    #[arg(long, env = "CAMPUS_MAX_UNAUTH_CONNECTIONS", default_value_t = 0)]
    pub max_unauth_connections: usize,
    /// Most connections per client address (IPv6: per /64) that have not authenticated.
    #[arg(long, env = "CAMPUS_MAX_UNAUTH_PER_ADDRESS", default_value_t = 256)]
    pub max_unauth_per_address: usize,
    /// Seconds a client has for a request's headers, counted from when the
    /// server starts waiting for them (the connection opened, or the previous
    /// response was sent): also how long an idle keep-alive connection stays.
    #[arg(long, env = "CAMPUS_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// An unauthenticated connection that moves no bytes for this long, with
    /// no request being handled, is closed, seconds.
    #[arg(long, env = "CAMPUS_UNAUTH_IDLE_SECS", default_value_t = 10)]
    pub unauth_idle_secs: u64,
    /// The same for an authenticated HTTP connection, seconds.
    #[arg(long, env = "CAMPUS_IDLE_SECS", default_value_t = 120)]
    pub idle_secs: u64,
    /// WebSockets per user; one more closes the user's oldest (close code 4012).
    #[arg(long, env = "CAMPUS_WS_PER_USER", default_value_t = 8)]
    pub ws_per_user: usize,
    /// Authenticated HTTP connections per user; more count as unauthenticated.
    #[arg(long, env = "CAMPUS_HTTP_CONNECTIONS_PER_USER", default_value_t = 32)]
    pub http_connections_per_user: usize,
}

/// Everything `campus serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CAMPUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Also serve `GET /metrics` (Prometheus) here, without authentication:
    /// bind it to loopback or a private network. Unset: `/metrics` only on
    /// the main address, for admins.
    #[arg(long, env = "CAMPUS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// JWT signing secret (at least 32 bytes in production; generated in dev).
    #[arg(long, env = "CAMPUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// `development` or `production` (strict checks: secrets, sandbox, quotas);
    /// any other value is refused at start-up.
    #[arg(long = "env", env = "CAMPUS_ENV", default_value = "development")]
    pub environment: Environment,
    /// Token lifetime, seconds.
    #[arg(long, env = "CAMPUS_TOKEN_TTL_SECS", default_value_t = 12 * 3600)]
    pub token_ttl_secs: u64,
    /// How often the server polls the database for account changes made by
    /// another process (`campus user passwd/disable/role`, other instances'
    /// logouts), milliseconds: the longest such a change waits to take effect.
    #[arg(long, env = "CAMPUS_ACCOUNT_POLL_MS", default_value_t = 1000)]
    pub account_poll_ms: u64,
    /// The address browsers use to reach Campus, e.g. `https://ide.uni.edu`:
    /// the only origin (with `CAMPUS_ALLOWED_ORIGINS`) that may open a
    /// WebSocket, and `https://` makes the cookies `Secure`. Required in
    /// production; in development the default is the listen address
    /// (`http://127.0.0.1:PORT` and `http://localhost:PORT`).
    #[arg(long, env = "CAMPUS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// More browser origins allowed for the WebSocket and CORS, comma-separated.
    #[arg(long, env = "CAMPUS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "CAMPUS_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    /// WebSocket messages a connection may send per minute.
    #[arg(long, env = "CAMPUS_WS_MESSAGES_PER_MIN", default_value_t = 300)]
    pub ws_messages_per_min: u32,
    /// File operations per user per minute (WebSocket and HTTP together).
    #[arg(long, env = "CAMPUS_FILE_OPS_PER_MIN", default_value_t = 100)]
    pub file_ops_per_min: u32,
    /// Most submissions waiting for the grader (beyond: `busy`).
    #[arg(long, env = "CAMPUS_GRADING_QUEUE_MAX", default_value_t = 2000)]
    pub grading_queue_max: i64,
    /// Default submissions per student, assignment and day (an assignment may set its own).
    #[arg(long, env = "CAMPUS_GRADING_PER_DAY", default_value_t = 50)]
    pub grading_per_day: i64,
    /// Login limiting (docs/security.md, "Browser").
    #[command(flatten)]
    pub login: LoginArgs,
    /// Connection limits (docs/security.md, "Connections").
    #[command(flatten)]
    pub conns: ConnArgs,
    /// Largest file, MiB (API and sandbox).
    #[arg(long, env = "CAMPUS_MAX_FILE_MB", default_value_t = 10)]
    pub max_file_mb: u64,
    /// An upload (`PUT /api/files/…`) that receives no body bytes for this long is cancelled
    /// and writes nothing, seconds.
    #[arg(long, env = "CAMPUS_UPLOAD_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub upload_idle_timeout_secs: u64,
    /// Longest an upload may take from its first to its last byte, seconds.
    #[arg(long, env = "CAMPUS_UPLOAD_TIMEOUT_SECS", default_value_t = 600)]
    pub upload_timeout_secs: u64,
    /// Largest WebSocket message accepted, KiB.
    #[arg(long, env = "CAMPUS_WS_MAX_MESSAGE_KB", default_value_t = 1024)]
    pub ws_max_message_kb: u64,
    /// Seconds between server pings.
    #[arg(long, env = "CAMPUS_HEARTBEAT_SECS", default_value_t = 20)]
    pub heartbeat_secs: u64,
    /// A connection with no traffic (not even a pong) for this long is dropped, seconds.
    #[arg(long, env = "CAMPUS_HEARTBEAT_TIMEOUT_SECS", default_value_t = 60)]
    pub heartbeat_timeout_secs: u64,
    /// Seconds in-flight work gets to finish on shutdown.
    #[arg(long, env = "CAMPUS_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Folder with the built web client (index.html + assets); default: the
    /// first of `web-client/dist`, `../web-client/dist` that holds an index.html.
    #[arg(long, env = "CAMPUS_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Free space on the data dir's filesystem below which `/readyz` reports
    /// the disk as degraded and logins warn that saving may fail, MiB.
    #[arg(long, env = "CAMPUS_DISK_MIN_FREE_MB", default_value_t = 256)]
    pub disk_min_free_mb: u64,
    /// Free inodes on the data dir's filesystem below which the disk is degraded.
    #[arg(long, env = "CAMPUS_DISK_MIN_FREE_INODES", default_value_t = 5000)]
    pub disk_min_free_inodes: u64,
    /// How old the sandbox probe run's result may be before `/readyz` starts a
    /// new one, seconds (0: only the probe at start-up).
    #[arg(long, env = "CAMPUS_SANDBOX_PROBE_SECS", default_value_t = 60)]
    pub sandbox_probe_secs: u64,
    /// Run limits.
    #[command(flatten)]
    pub run: RunLimitArgs,
}

/// Where the built web client is looked for when `CAMPUS_WEB_DIR` is not set
/// (relative to the directory `campus` was started in).
pub const DEFAULT_WEB_DIRS: &[&str] = &["web-client/dist", "../web-client/dist"];

impl ServeArgs {
    /// True in production mode.
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// Make every configured path absolute against `cwd`, once, before anything
    /// uses them: the sandbox helper runs with `/` as its working directory, so
    /// a relative path handed to it names another file (or none).
    pub fn resolve_paths(&mut self, cwd: &Path) -> Result<(), ConfigError> {
        self.storage.resolve_paths(cwd)?;
        self.run.resolve_paths(cwd)?;
        self.web_dir = match self.web_dir.take() {
            Some(d) if d.as_os_str().is_empty() => None,
            Some(d) => Some(absolute_in(cwd, &d)),
            None => DEFAULT_WEB_DIRS
                .iter()
                .map(|d| absolute_in(cwd, Path::new(d)))
                .find(|d| d.join("index.html").is_file()),
        };
        Ok(())
    }

    /// Refuse relative paths: [`ServeArgs::resolve_paths`] must have run (the
    /// `campus` binary does it right after parsing; library callers must too).
    pub fn check_resolved(&self) -> Result<(), ConfigError> {
        let paths = [
            ("data directory", Some(&self.storage.data_dir)),
            ("web directory", self.web_dir.as_ref()),
            ("sandbox helper", self.run.sandbox_helper.as_ref()),
            ("python", Some(&self.run.python)),
        ];
        for (what, path) in paths {
            if let Some(p) = path.filter(|p| !p.is_absolute()) {
                return Err(ConfigError::Invalid(format!(
                    "the {what} path {} is relative; resolve the configuration first (ServeArgs::resolve_paths)",
                    p.display()
                )));
            }
        }
        Ok(())
    }
}

/// `CAMPUS_ENV`: exactly `development` or `production`. A typo (`prod`,
/// `Production `) must not silently mean development, which drops the
/// production checks, so anything else is a start-up error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// Generated secrets, the rlimits-only sandbox allowed.
    #[default]
    Development,
    /// Strict start-up checks.
    Production,
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" => Ok(Environment::Development),
            "production" => Ok(Environment::Production),
            other => Err(format!(
                "CAMPUS_ENV (--env) must be `development` or `production`, not {other:?}"
            )),
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Environment::Development => "development",
            Environment::Production => "production",
        })
    }
}

/// A secret from the configuration: `Debug` and `Display` print `[redacted]`,
/// so logging a configuration (or the `AppState` holding it) cannot leak it;
/// [`Secret::expose`] is the one, greppable, way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `url` with the password of its `user:password@` part replaced by `[redacted]`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}{tail}"),
        None => url.to_string(),
    }
}

impl std::fmt::Debug for StorageArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageArgs")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url_password),
            )
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout_secs", &self.db_acquire_timeout_secs)
            .field("db_idle_timeout_secs", &self.db_idle_timeout_secs)
            .field("run_liveness_secs", &self.run_liveness_secs)
            .finish()
    }
}

/// Secrets that must never be accepted in production.
const WELL_KNOWN_SECRETS: &[&str] = &[
    "secret",
    "changeme",
    "change-me",
    "changeit",
    "password",
    "jwt-secret",
    "your-secret-key",
    "your-256-bit-secret",
    "supersecret",
    "development",
    "campus",
    "test",
];

/// Reasons the configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Production without CAMPUS_JWT_SECRET.
    #[error("CAMPUS_JWT_SECRET is required in production (at least 32 random bytes)")]
    MissingSecret,
    /// Secret shorter than 32 bytes.
    #[error("CAMPUS_JWT_SECRET is too short ({0} bytes); use at least 32 random bytes")]
    ShortSecret(usize),
    /// A placeholder secret.
    #[error("CAMPUS_JWT_SECRET is a well-known default value; generate a random one (e.g. `openssl rand -hex 32`)")]
    DefaultSecret,
    /// Data dir unusable.
    #[error("data directory {path} is not usable: {reason}")]
    DataDir {
        /// The directory.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Bad value.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Check the JWT secret's strength; used in production mode.
pub fn validate_secret(secret: Option<&str>) -> Result<(), ConfigError> {
    let s = secret.ok_or(ConfigError::MissingSecret)?;
    let trimmed = s.trim();
    let lower = trimmed.to_ascii_lowercase();
    if WELL_KNOWN_SECRETS
        .iter()
        .any(|w| lower == *w || lower.starts_with("changeme"))
        || trimmed
            .chars()
            .all(|c| c == trimmed.chars().next().unwrap_or('x'))
    {
        return Err(ConfigError::DefaultSecret);
    }
    if trimmed.len() < 32 {
        return Err(ConfigError::ShortSecret(trimmed.len()));
    }
    Ok(())
}

/// Make sure the data dir exists (creating it in dev) and is readable and writable.
pub fn ensure_data_dir(dir: &Path, create: bool) -> Result<(), ConfigError> {
    let err = |reason: String| ConfigError::DataDir {
        path: dir.display().to_string(),
        reason,
    };
    if create {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    std::fs::read_dir(dir).map_err(|e| err(format!("cannot read it: {e}")))?;
    let probe = dir.join(".campus-write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| err(format!("cannot write to it: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// Defaults as `campus serve` parses them (no flags, no environment).
    fn defaults() -> ServeArgs {
        Serve::parse_from(["campus"]).serve
    }

    #[test]
    fn the_jwt_secret_is_never_printed() {
        let secret = "s3cr3t-0123456789-abcdefghij-klmnopq";
        let args = Serve::parse_from(["campus", "--jwt-secret", secret]).serve;
        assert_eq!(args.jwt_secret.as_ref().map(Secret::expose), Some(secret));
        let shown = format!("{args:?} {args:#?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("jwt_secret: Some([redacted])"), "{shown}");
    }

    #[test]
    fn relative_paths_become_absolute_against_the_cwd() {
        let cwd = Path::new("/srv/class");
        let abs = |p: &str| absolute_in(cwd, Path::new(p));
        assert_eq!(abs("./campus-data"), Path::new("/srv/class/campus-data"));
        assert_eq!(
            abs("campus-data/./x"),
            Path::new("/srv/class/campus-data/x")
        );
        assert_eq!(abs("../data"), Path::new("/srv/class/../data"));
        assert_eq!(abs("/var/lib/campus"), Path::new("/var/lib/campus"));
    }

    #[test]
    fn the_default_data_dir_and_database_are_resolved() {
        let mut s = defaults().storage;
        s.database_url = None;
        assert!(s.data_dir.is_relative(), "the default is ./campus-data");
        s.resolve_paths(Path::new("/srv/class")).unwrap();
        assert_eq!(s.data_dir, Path::new("/srv/class/campus-data"));
        assert_eq!(
            s.workspaces_dir(),
            Path::new("/srv/class/campus-data/workspaces")
        );
        assert_eq!(
            s.effective_database_url(),
            "sqlite:///srv/class/campus-data/campus.db"
        );
        assert_eq!(
            s.sqlite_file().as_deref(),
            Some(Path::new("/srv/class/campus-data/campus.db"))
        );
        s.database_url = Some("sqlite:///a%3Fb/100%25/c.db?mode=rwc".into());
        assert_eq!(
            s.sqlite_file().as_deref(),
            Some(Path::new("/a?b/100%/c.db"))
        );
        s.database_url = Some("postgres://u@db/campus".into());
        assert_eq!(s.sqlite_file(), None);
        s.database_url = Some("sqlite::memory:".into());
        assert_eq!(s.sqlite_file(), None);
        s.database_url = None;
        s.data_dir = PathBuf::new();
        assert!(s.resolve_paths(Path::new("/srv")).is_err());
    }

    #[test]
    fn relative_sqlite_urls_are_resolved_others_kept() {
        let cwd = Path::new("/srv/class");
        let cases = [
            ("sqlite:campus.db", "sqlite:///srv/class/campus.db"),
            (
                "sqlite://./db/c.db?mode=rwc",
                "sqlite:///srv/class/db/c.db?mode=rwc",
            ),
            ("sqlite:///var/c.db", "sqlite:///var/c.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("sqlite://?mode=memory", "sqlite://?mode=memory"),
            ("postgres://u:p@db/campus", "postgres://u:p@db/campus"),
        ];
        for (url, want) in cases {
            assert_eq!(absolute_sqlite_url(url, cwd), want, "{url}");
        }
        // The characters sqlx would split or decode are encoded in the directory.
        assert_eq!(
            absolute_sqlite_url("sqlite:c.db", Path::new("/a?b/100%")),
            "sqlite:///a%3Fb/100%25/c.db"
        );
        assert_eq!(sqlite_url(Path::new("/x#y/c.db")), "sqlite:///x%23y/c.db");
    }

    #[test]
    fn helper_and_python_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/campus"), b"").unwrap();
        let mut run = defaults().run;
        run.sandbox_helper = Some(PathBuf::from("./bin/campus"));
        run.resolve_paths(dir.path()).unwrap();
        assert_eq!(
            run.sandbox_helper.as_deref(),
            Some(dir.path().join("bin/campus").as_path())
        );
        // A bare name is looked up in PATH, like a shell would.
        run.sandbox_helper = Some(PathBuf::from("sh"));
        run.resolve_paths(dir.path()).unwrap();
        let sh = run.sandbox_helper.clone().unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        // No helper configured: this executable.
        run.sandbox_helper = None;
        run.resolve_paths(dir.path()).unwrap();
        assert_eq!(run.sandbox_helper, Some(std::env::current_exe().unwrap()));
        run.sandbox_helper = Some(PathBuf::from("./missing"));
        let e = run.resolve_paths(dir.path()).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("not a file"), "{e}");
        // CAMPUS_PYTHON is a path inside the sandbox: never resolved on the host.
        run.sandbox_helper = None;
        run.python = PathBuf::from("python3");
        let e = run.resolve_paths(dir.path()).unwrap_err().to_string();
        assert!(e.contains("CAMPUS_PYTHON must be an absolute path"), "{e}");
    }

    #[test]
    fn web_dir_is_resolved_or_found_next_to_the_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("server");
        std::fs::create_dir_all(cwd.join("assets")).unwrap();
        let mut a = defaults();
        a.web_dir = Some(PathBuf::from("assets"));
        a.resolve_paths(&cwd).unwrap();
        assert_eq!(a.web_dir, Some(cwd.join("assets")));
        // Default: no built client anywhere → None (API only).
        let mut a = defaults();
        a.web_dir = None;
        a.resolve_paths(&cwd).unwrap();
        assert_eq!(a.web_dir, None);
        // ../web-client/dist with an index.html, found as an absolute path.
        let dist = dir.path().join("web-client/dist");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(dist.join("index.html"), b"<html>").unwrap();
        let mut a = defaults();
        a.web_dir = None;
        a.resolve_paths(&cwd).unwrap();
        assert_eq!(a.web_dir, Some(cwd.join("../web-client/dist")));
        a.check_resolved().unwrap();
    }

    #[test]
    fn unresolved_arguments_are_refused() {
        let mut a = defaults();
        a.storage.data_dir = PathBuf::from("campus-data");
        let e = a.check_resolved().unwrap_err().to_string();
        assert!(
            e.contains("data directory path campus-data is relative"),
            "{e}"
        );
        a.resolve_paths(Path::new("/srv")).unwrap();
        a.check_resolved().unwrap();
    }

    #[test]
    fn secrets_are_checked() {
        assert!(matches!(
            validate_secret(None),
            Err(ConfigError::MissingSecret)
        ));
        assert!(matches!(
            validate_secret(Some("short")),
            Err(ConfigError::ShortSecret(5))
        ));
        assert!(matches!(
            validate_secret(Some("changeme")),
            Err(ConfigError::DefaultSecret)
        ));
        assert!(matches!(
            validate_secret(Some(&"a".repeat(40))),
            Err(ConfigError::DefaultSecret)
        ));
        assert!(validate_secret(Some("0123456789abcdef0123456789abcdef")).is_ok());
    }

    #[test]
    fn campus_env_accepts_the_documented_spellings_only() {
        let parse = |v: &str| Serve::try_parse_from(["campus", "--env", v]).map(|s| s.serve);
        assert_eq!(defaults().environment, Environment::Development);
        assert!(!defaults().is_production());
        assert!(parse("production").unwrap().is_production());
        assert!(!parse("development").unwrap().is_production());
        for bad in ["prod", "Production", "production ", "dev", "", "staging"] {
            let e = parse(bad).err().unwrap().to_string();
            assert!(
                e.contains("must be `development` or `production`"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn formatting_the_configuration_never_shows_a_secret() {
        let secret = "s3cr3t-0123456789-abcdefghij-klmnopqrstuv";
        let mut a = Serve::try_parse_from(["campus", "--jwt-secret", secret])
            .unwrap()
            .serve;
        assert_eq!(a.jwt_secret.as_ref().map(Secret::expose), Some(secret));
        a.storage.database_url =
            Some("postgres://campus:pg-pass-42@db:5432/campus?sslmode=require".into());
        for shown in [
            format!("{a:?}"),
            format!("{a:#?}"),
            format!("{:?}", a.storage),
        ] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!shown.contains("pg-pass-42"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        assert!(format!("{a:?}")
            .contains("postgres://campus:[redacted]@db:5432/campus?sslmode=require"));
        let s = Secret::from(secret);
        assert_eq!(
            format!("{s} {s:?} {s:#?}"),
            "[redacted] [redacted] [redacted]"
        );
        // URLs without a password are shown whole.
        assert_eq!(
            redact_url_password("postgres://u@db/c"),
            "postgres://u@db/c"
        );
        assert_eq!(
            redact_url_password("sqlite:///a@b:c/x.db"),
            "sqlite:///a@b:c/x.db"
        );
        assert_eq!(
            redact_url_password("postgres://u:p@ss@db/c"),
            "postgres://u:[redacted]@db/c"
        );
    }
}
