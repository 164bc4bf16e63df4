//! Implementations of the `campus` subcommands (parsing lives in main.rs).

use std::future::Future;

use clap::{Args, Subcommand};

use crate::config::{RunLimitArgs, ServeArgs, StorageArgs};

/// `campus user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        /// Login name.
        #[arg(long)]
        username: String,
        /// student, professor or admin.
        #[arg(long)]
        role: String,
        /// Read the password from standard input (required).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user (they can no longer log in; open connections are refused).
    Disable {
        /// Login name.
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Login name.
        username: String,
    },
}

/// `campus run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Whose workspace and sandbox to use.
    #[arg(long = "as")]
    pub as_user: String,
    /// script, hybrid or repl.
    #[arg(long, default_value = "script")]
    pub mode: String,
    /// Also write the run_ended record as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Script path inside the workspace.
    pub path: Option<String>,
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Limits.
    #[command(flatten)]
    pub limits: RunLimitArgs,
}

/// Run a future on a fresh multi-threaded runtime; returns the exit code.
pub fn block_on(f: impl Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("campus: cannot start the async runtime: {e}");
            1
        }
    }
}

/// `campus serve`.
pub async fn serve(_args: ServeArgs) -> i32 {
    eprintln!("serve: not wired yet");
    1
}

/// `campus migrate`.
pub async fn migrate(_storage: StorageArgs) -> i32 {
    1
}

/// `campus user …`.
pub async fn user(_storage: StorageArgs, _cmd: UserCommand) -> i32 {
    1
}

/// `campus run`.
pub async fn run(_args: RunArgs) -> i32 {
    1
}
