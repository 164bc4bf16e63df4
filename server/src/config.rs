//! Typed configuration: command-line flags with `CAMPUS_*` environment
//! fallbacks and defaults, validated once before anything is served.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

/// Where the data lives: shared by `serve`, `migrate`, `user …` and `run`.
#[derive(Debug, Clone, Args)]
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
}

impl RunLimitArgs {
    /// The sandbox helper binary.
    pub fn helper_exe(&self) -> std::io::Result<PathBuf> {
        match &self.sandbox_helper {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe(),
        }
    }
}

impl StorageArgs {
    /// The database URL actually used (SQLite in the data dir by default).
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.clone(),
            _ => format!("sqlite://{}", self.data_dir.join("campus.db").display()),
        }
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
}

/// Limits of a run (read by `serve` and `run` alike).
#[derive(Debug, Clone, Args)]
pub struct RunLimitArgs {
    /// Wall-clock limit of the script phase, seconds.
    #[arg(long, env = "CAMPUS_SCRIPT_MAX_AGE_SECS", default_value_t = 1800)]
    pub script_max_age_secs: u64,
    /// Wall-clock limit of the REPL phase, seconds.
    #[arg(long, env = "CAMPUS_REPL_MAX_AGE_SECS", default_value_t = 3600)]
    pub repl_max_age_secs: u64,
    /// CPU-time limit of a run, seconds.
    #[arg(long, env = "CAMPUS_CPU_TIME_LIMIT_SECS", default_value_t = 30)]
    pub cpu_time_limit_secs: u64,
    /// Memory limit of a run, MiB (no swap).
    #[arg(long, env = "CAMPUS_MEMORY_LIMIT_MB", default_value_t = 128)]
    pub memory_limit_mb: u64,
    /// Maximum processes/threads of a run.
    #[arg(long, env = "CAMPUS_PIDS_LIMIT", default_value_t = 50)]
    pub pids_limit: u64,
    /// Largest file a run may write, MiB.
    #[arg(long, env = "CAMPUS_FILE_SIZE_LIMIT_MB", default_value_t = 10)]
    pub file_size_limit_mb: u64,
    /// Total output cap of a run, MiB.
    #[arg(long, env = "CAMPUS_OUTPUT_LIMIT_MB", default_value_t = 50)]
    pub output_limit_mb: u64,
    /// How long a session with nobody attached is kept for reattach, seconds.
    #[arg(long, env = "CAMPUS_DETACHED_GRACE_SECS", default_value_t = 300)]
    pub detached_grace_secs: u64,
    /// How often the reaper runs, seconds.
    #[arg(long, env = "CAMPUS_REAPER_INTERVAL_SECS", default_value_t = 300)]
    pub reaper_interval_secs: u64,
    /// Maximum concurrently running sandboxes on this host (0 = derive from memory and CPUs).
    #[arg(long, env = "CAMPUS_MAX_CONCURRENT_RUNS", default_value_t = 0)]
    pub max_concurrent_runs: u32,
    /// Runs a user may start per minute.
    #[arg(long, env = "CAMPUS_RUNS_PER_MIN", default_value_t = 10)]
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
}

/// Everything `campus serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CAMPUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// JWT signing secret (at least 32 bytes in production; generated in dev).
    #[arg(long, env = "CAMPUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// `production` turns on strict checks (secrets, sandbox).
    #[arg(long = "env", env = "CAMPUS_ENV", default_value = "development")]
    pub environment: String,
    /// Token lifetime, seconds.
    #[arg(long, env = "CAMPUS_TOKEN_TTL_SECS", default_value_t = 12 * 3600)]
    pub token_ttl_secs: u64,
    /// Allowed browser origins for the WebSocket and CORS, comma-separated
    /// (default: the server's own origin).
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
    /// Login attempts per username+IP per window.
    #[arg(long, env = "CAMPUS_LOGIN_ATTEMPTS", default_value_t = 10)]
    pub login_attempts: u32,
    /// Login-attempt window, seconds.
    #[arg(long, env = "CAMPUS_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,
    /// Largest file, MiB (API and sandbox).
    #[arg(long, env = "CAMPUS_MAX_FILE_MB", default_value_t = 10)]
    pub max_file_mb: u64,
    /// Workspace quota per user, MiB.
    #[arg(long, env = "CAMPUS_WORKSPACE_QUOTA_MB", default_value_t = 150)]
    pub workspace_quota_mb: u64,
    /// Maximum files and directories per workspace.
    #[arg(long, env = "CAMPUS_WORKSPACE_MAX_ENTRIES", default_value_t = 5000)]
    pub workspace_max_entries: u64,
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
    /// Folder with the built web client (index.html + assets).
    #[arg(long, env = "CAMPUS_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Run limits.
    #[command(flatten)]
    pub run: RunLimitArgs,
}

impl ServeArgs {
    /// True in production mode.
    pub fn is_production(&self) -> bool {
        self.environment.eq_ignore_ascii_case("production")
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
mod tests {
    use super::*;

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
}
