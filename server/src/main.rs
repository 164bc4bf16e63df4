//! The `campus` command line: `serve`, `migrate`, `user …`, `run`, `sandbox …`.

use clap::{Parser, Subcommand};

use campus_server::cli;
use campus_server::config::{ConfigError, ServeArgs, StorageArgs};
use campus_server::sandbox;

#[derive(Debug, Parser)]
#[command(name = "campus", version, about = "Campus: a classroom IDE backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(StorageArgs),
    /// Manage users.
    User {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(subcommand)]
        command: cli::UserCommand,
    },
    /// Run a file from a user's workspace through the real session/sandbox code.
    /// Create courses, enroll members, import rosters, publish sections.
    Course {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(subcommand)]
        command: cli::CourseCommand,
    },
    Run(Box<cli::RunArgs>),
    /// Back up the database and the data dir into DEST while the server runs.
    Backup {
        #[command(flatten)]
        storage: StorageArgs,
        /// Where the backup goes (a new or empty directory, outside the data dir).
        dest: std::path::PathBuf,
    },
    /// Restore a backup into an empty data dir (and a new database).
    Restore {
        #[command(flatten)]
        storage: StorageArgs,
        /// The backup (a directory made by `campus backup`).
        src: std::path::PathBuf,
    },
    /// Sandbox tools.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Internal: the sandbox re-exec helper started inside a run's PTY.
    #[command(hide = true)]
    SandboxExec(sandbox::exec::ExecArgs),
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Probe the host's isolation features and perform one real sandboxed run
    /// with the configuration `serve` would use (exit 0 only if both pass).
    Check(Box<cli::CheckArgs>),
}

/// Make every configured path absolute, once, right after parsing and before
/// anything uses one (see `ServeArgs::resolve_paths`).
fn resolve_paths(command: &mut Command) -> Result<(), ConfigError> {
    // The helper's arguments are built by the server, absolute already.
    if matches!(command, Command::SandboxExec(_)) {
        return Ok(());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| ConfigError::Invalid(format!("cannot read the current directory: {e}")))?;
    match command {
        Command::Serve(args) => args.resolve_paths(&cwd),
        Command::Migrate(storage)
        | Command::User { storage, .. }
        | Command::Course { storage, .. }
        | Command::Backup { storage, .. }
        | Command::Restore { storage, .. } => storage.resolve_paths(&cwd),
        Command::Run(args) => args.resolve_paths(&cwd),
        Command::Sandbox {
            command: SandboxCommand::Check(args),
        } => args.resolve_paths(&cwd),
        Command::SandboxExec(_) => Ok(()),
    }
}

/// Large allocations (argon2 uses 19 MiB per hash) go straight to mmap and back
/// to the OS when freed. Without this, glibc's adaptive threshold moves them
/// into per-thread arenas that keep the memory after a login storm.
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; called once before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Raise the open-files soft limit to the hard limit: every connection, run
/// and cached workspace holds descriptors, and 1,024 is not a class.
fn raise_open_files() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn main() {
    tune_allocator();
    raise_open_files();
    let mut cli = Cli::parse();
    if let Err(e) = resolve_paths(&mut cli.command) {
        eprintln!("campus: {e}");
        std::process::exit(2);
    }
    let code = match cli.command {
        // The helper must not start a tokio runtime: it forks and execs.
        Command::SandboxExec(args) => sandbox::exec::main(args),
        Command::Sandbox {
            command: SandboxCommand::Check(args),
        } => cli::block_on(cli::sandbox_check(*args)),
        Command::Serve(args) => cli::block_on(cli::serve(*args)),
        Command::Migrate(storage) => cli::block_on(cli::migrate(storage)),
        Command::User { storage, command } => cli::block_on(cli::user(storage, command)),
        Command::Course { storage, command } => cli::block_on(cli::course(storage, command)),
        Command::Run(args) => cli::block_on(cli::run(*args)),
        Command::Backup { storage, dest } => cli::block_on(cli::backup(storage, dest)),
        Command::Restore { storage, src } => cli::block_on(cli::restore(storage, src)),
    };
    std::process::exit(code);
}
