//! Implementations of the `campus` subcommands (parsing lives in main.rs).

use std::future::Future;

use clap::{Args, Subcommand};

use crate::config::{ConfigError, RunLimitArgs, ServeArgs, StorageArgs};

/// How long `campus run` waits at exit for its run record to reach the database
/// (it stays in the journal for the server's next start-up otherwise).
const RECORDS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// Set a user's password (read from standard input).
    Passwd {
        /// Login name.
        username: String,
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
    /// Change a user's role (student, professor or admin). Like `passwd` and
    /// `disable`, this signs the user out everywhere: every token issued
    /// before is refused, open connections close within about a second.
    Role {
        /// Login name.
        username: String,
        /// student, professor or admin.
        role: String,
    },
}

/// `campus course …`: term set-up from scripts (the same rules as the web
/// client's; changes reach running servers within a few seconds).
#[derive(Debug, Subcommand)]
pub enum CourseCommand {
    /// Create a course.
    Create {
        /// Short unique name (1-32 of a-z, 0-9, '-').
        #[arg(long)]
        slug: String,
        /// Display title.
        #[arg(long)]
        title: String,
        /// Term, free text.
        #[arg(long, default_value = "")]
        term: String,
        /// Make this existing account the course's professor.
        #[arg(long)]
        professor: Option<String>,
    },
    /// List courses with their member and section counts.
    List,
    /// Add a member to a course, or change their role.
    Enroll {
        /// Course slug.
        course: String,
        /// An existing account.
        username: String,
        /// student, ta or professor.
        #[arg(long, default_value = "student")]
        role: String,
    },
    /// Import a roster CSV (`username[,role]` per line; `-` reads standard
    /// input). Nothing is applied unless every line is valid.
    ImportRoster {
        /// Course slug.
        course: String,
        /// The CSV file, or `-`.
        file: std::path::PathBuf,
        /// Create student accounts for unknown usernames; their initial
        /// passwords are printed (once) as `username,password` lines.
        #[arg(long)]
        create_accounts: bool,
    },
    /// Publish a section (creating it if the course has none with this
    /// folder), or with `folder/path` give one file or folder inside a
    /// section its own visibility (`--unpublish`: a draft inside it).
    Publish {
        /// Course slug.
        course: String,
        /// The section's folder, or a path inside it (`week3/test.py`).
        folder: String,
        /// Release time, RFC 3339 (e.g. 2026-12-03T10:00:00+01:00); default: at once.
        #[arg(long)]
        release_at: Option<String>,
        /// Close time, RFC 3339; default: never.
        #[arg(long)]
        close_at: Option<String>,
        /// Unpublish instead.
        #[arg(long)]
        unpublish: bool,
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

impl RunArgs {
    /// Make every path absolute against `cwd` (see [`ServeArgs::resolve_paths`]).
    pub fn resolve_paths(&mut self, cwd: &std::path::Path) -> Result<(), ConfigError> {
        self.storage.resolve_paths(cwd)?;
        self.limits.resolve_paths(cwd)?;
        if let Some(p) = &self.json {
            self.json = Some(crate::config::absolute_in(cwd, p));
        }
        Ok(())
    }
}

/// `campus sandbox check`: the same storage and sandbox settings as `serve`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Storage (the probe run's workspace is inside the data dir).
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Limits, helper, uid base and cgroup group.
    #[command(flatten)]
    pub limits: RunLimitArgs,
}

impl CheckArgs {
    /// Make every path absolute against `cwd`.
    pub fn resolve_paths(&mut self, cwd: &std::path::Path) -> Result<(), ConfigError> {
        self.storage.resolve_paths(cwd)?;
        self.limits.resolve_paths(cwd)
    }
}

/// Run a future on a fresh multi-threaded runtime; returns the exit code.
pub fn block_on(f: impl Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("campus: cannot start the async runtime: {e}");
            1
        }
    }
}

/// `campus serve`.
pub async fn serve(args: ServeArgs) -> i32 {
    crate::logging::init(args.log_json, crate::logging::Target::Stdout);
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("campus: cannot listen on {}: {e}", args.listen);
            return 1;
        }
    };
    match crate::server::serve_until(args, listener, crate::server::shutdown_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("campus: {e:#}");
            1
        }
    }
}

/// `campus migrate`.
pub async fn migrate(storage: StorageArgs) -> i32 {
    match crate::server::open_store(&storage).await {
        Ok(store) => {
            println!("migrations applied ({})", store.backend());
            store.close().await;
            0
        }
        Err(e) => {
            eprintln!("campus: {e:#}");
            1
        }
    }
}

/// `campus user …`.
pub async fn user(storage: StorageArgs, cmd: UserCommand) -> i32 {
    match user_inner(storage, cmd).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("campus: {e:#}");
            1
        }
    }
}

async fn user_inner(storage: StorageArgs, cmd: UserCommand) -> anyhow::Result<()> {
    use crate::auth::password;
    use crate::store::{NewAudit, NewUser, StoreError};
    use campus_protocol::Role;

    let store = crate::server::open_store(&storage).await?;
    let audit = |action: &str, target: &str| NewAudit {
        actor: Some("cli".into()),
        action: action.into(),
        target: Some(target.into()),
        ip: Some("cli".into()),
        ..Default::default()
    };
    let result = async {
        match cmd {
            UserCommand::Add {
                username,
                role,
                password_stdin,
            } => {
                let role: Role = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
                validate_username(&username)?;
                if !password_stdin {
                    anyhow::bail!("pass --password-stdin and write the password to standard input");
                }
                let pw = read_password_stdin()?;
                let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
                    .await?
                    .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
                match store
                    .create_user(NewUser {
                        username: username.clone(),
                        password_hash: hash,
                        role,
                    })
                    .await
                {
                    Ok(u) => {
                        store.append_audit(audit("user.created", &username)).await?;
                        println!("created {} ({}, id {})", u.username, u.role, u.id);
                        Ok(())
                    }
                    Err(StoreError::Conflict) => anyhow::bail!("user {username:?} already exists"),
                    Err(e) => Err(e.into()),
                }
            }
            UserCommand::Passwd {
                username,
                password_stdin,
            } => {
                if !password_stdin {
                    anyhow::bail!("pass --password-stdin and write the password to standard input");
                }
                let pw = read_password_stdin()?;
                let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
                    .await?
                    .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
                match store.set_password_hash(&username, &hash).await {
                    Ok(()) => {}
                    Err(StoreError::NotFound) => anyhow::bail!("no user named {username:?}"),
                    Err(e) => return Err(e.into()),
                }
                store
                    .append_audit(audit("user.password_changed", &username))
                    .await?;
                println!("password of {username} changed; their sessions were signed out");
                Ok(())
            }
            UserCommand::List => {
                println!(
                    "{:<6} {:<24} {:<10} {:<9} created",
                    "id", "username", "role", "status"
                );
                for u in store.list_users().await? {
                    let created = chrono::DateTime::from_timestamp_millis(u.created_at_ms)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default();
                    let status = if u.disabled { "disabled" } else { "active" };
                    println!(
                        "{:<6} {:<24} {:<10} {:<9} {created}",
                        u.id, u.username, u.role, status
                    );
                }
                Ok(())
            }
            UserCommand::Disable { username } | UserCommand::Enable { username }
                if username.is_empty() =>
            {
                anyhow::bail!("a username is required")
            }
            UserCommand::Disable { username } => {
                set_disabled(&store, &username, true).await?;
                store
                    .append_audit(audit("user.disabled", &username))
                    .await?;
                println!("disabled {username}; their sessions were signed out");
                Ok(())
            }
            UserCommand::Enable { username } => {
                set_disabled(&store, &username, false).await?;
                store.append_audit(audit("user.enabled", &username)).await?;
                println!("enabled {username}");
                Ok(())
            }
            UserCommand::Role { username, role } => {
                let role: Role = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
                match store.set_user_role(&username, role).await {
                    Ok(()) => {}
                    Err(StoreError::NotFound) => anyhow::bail!("no user named {username:?}"),
                    Err(e) => return Err(e.into()),
                }
                let mut entry = audit("user.role_changed", &username);
                entry.detail = Some(format!("role {role}"));
                store.append_audit(entry).await?;
                println!("role of {username} is now {role}; their sessions were signed out");
                Ok(())
            }
        }
    }
    .await;
    store.close().await;
    result
}

async fn set_disabled(
    store: &crate::store::DynStore,
    username: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    match store.set_user_disabled(username, disabled).await {
        Ok(()) => Ok(()),
        Err(crate::store::StoreError::NotFound) => anyhow::bail!("no user named {username:?}"),
        Err(e) => Err(e.into()),
    }
}

/// Usernames: 1-64 characters of letters, digits, `.`, `_`, `-`.
pub fn validate_username(name: &str) -> anyhow::Result<()> {
    if !crate::auth::is_valid_username(name) {
        anyhow::bail!("invalid username {name:?}: use 1-64 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.len() < 8 {
        anyhow::bail!("the password must have at least 8 characters");
    }
    Ok(pw)
}

/// `campus run`: the same session and sandbox code as the WebSocket path,
/// attached to this terminal; prints the `run_ended` record as JSON on stderr.
pub async fn run(args: RunArgs) -> i32 {
    crate::logging::init(false, crate::logging::Target::Stderr);
    match run_inner(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("campus: {e:#}");
            1
        }
    }
}

async fn run_inner(args: RunArgs) -> anyhow::Result<i32> {
    use crate::runner::{run_in_terminal, Runner};
    use crate::sandbox::{Sandbox, SandboxConfig};
    use campus_protocol::{EndReason, RunMode, UserInfo};
    use std::sync::Arc;

    let mode = match args.mode.as_str() {
        "script" => RunMode::Script,
        "hybrid" => RunMode::Hybrid,
        "repl" => RunMode::Repl,
        other => anyhow::bail!("unknown mode {other:?} (script, hybrid or repl)"),
    };
    let path = args.path.clone().unwrap_or_default();
    if mode != RunMode::Repl && path.is_empty() {
        anyhow::bail!("give the script's path inside the workspace");
    }
    let store = crate::server::open_store(&args.storage).await?;
    let user = store
        .user_by_username(&args.as_user)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user named {:?}", args.as_user))?;
    let mut sandbox = Sandbox::new(SandboxConfig {
        helper_exe: args.limits.helper_exe()?,
        production: false,
        uid_base: args.limits.sandbox_uid_base,
        cgroup_group: format!("{}-cli", args.limits.cgroup_group),
        ..SandboxConfig::default()
    })?;
    let root = args.storage.workspaces_dir();
    std::fs::create_dir_all(&root)?;
    // The same limits as `serve`: quotas where enforced, else the usage scan.
    sandbox.probe_disk_quota(&root);
    let sandbox = Arc::new(sandbox);
    let workspaces = workspace_fs::Workspaces::new(
        args.storage.workspaces_dir(),
        args.storage.workspace_meta_dir(),
        workspace_fs::Limits {
            quota_bytes: args.limits.workspace_quota_mb.saturating_mul(1 << 20),
            max_entries: args.limits.workspace_max_entries,
            ..workspace_fs::Limits::default()
        },
    )?;
    let key = user.id.to_string();
    let uid = sandbox
        .isolated()
        .then(|| sandbox.student_uid(user.id))
        .transpose()?;
    let dir = workspaces.tree_path(&key)?;
    // A cold open scans the whole tree: on a blocking thread.
    tokio::task::spawn_blocking(move || workspaces.open(&key, uid.map(|u| (u, u)))).await??;
    // Run records go through the same background writer as the server's.
    let (store, health) = crate::store::guard(store);
    let records = crate::records::Records::start(
        args.storage.records_config("cli").with_instance("cli"),
        Arc::clone(&store),
        health,
    );
    let runner = Runner::new(
        crate::runner::RunnerConfig {
            // One run, started right after the attach: nothing to keep ready.
            warm_sandboxes: Some(0),
            ..args.limits.runner_config()
        },
        sandbox,
        Some(records.clone()),
        tokio_util::sync::CancellationToken::new(),
    );
    let info = UserInfo {
        id: user.id,
        username: user.username,
        role: user.role,
    };
    let ended = run_in_terminal(&runner, &info, dir, mode, path).await;
    runner.shutdown().await;
    records.close(RECORDS_WAIT).await;
    store.close().await;
    let ended = ended?;
    let line = serde_json::to_string(&ended)?;
    eprintln!("{line}");
    if let Some(p) = &args.json {
        std::fs::write(p, format!("{line}\n"))?;
    }
    Ok(match (ended.reason, ended.exit_code) {
        (EndReason::Exited, Some(code)) => code,
        // What a shell reports for a program ended by Ctrl-C.
        (EndReason::Interrupted, _) => 130,
        _ => 1,
    })
}

/// `campus sandbox check`: the feature probe, then one real run through the
/// student path (workspace in the data dir, the configured helper, uid base
/// and cgroup group), exactly as `serve` does at start. Exit 0 only when the
/// isolation is complete and the run passed.
pub async fn sandbox_check(args: CheckArgs) -> i32 {
    use crate::runner::probe::{ProbeSetup, SandboxProbe};
    use crate::sandbox::{format_report, Sandbox, SandboxConfig};
    use std::sync::Arc;

    let helper_exe = match args.limits.helper_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("campus: cannot find the campus binary: {e}");
            return 1;
        }
    };
    let mut sandbox = match Sandbox::new(SandboxConfig {
        helper_exe,
        production: false,
        uid_base: args.limits.sandbox_uid_base,
        cgroup_group: args.limits.cgroup_group.clone(),
        force_fallback: false,
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("campus: {e}");
            return 1;
        }
    };
    let root = args.storage.workspaces_dir();
    // `serve` creates it the same way on its first start.
    if let Err(e) = std::fs::create_dir_all(&root) {
        println!("isolation features:");
        print!("{}", format_report(sandbox.report()));
        println!("probe run: FAILED (cannot create {}: {e})", root.display());
        println!("sandbox check: NOT READY");
        return 1;
    }
    let quota_enforced = sandbox.probe_disk_quota(&root).enforced;
    let sandbox = Arc::new(sandbox);
    println!("isolation features:");
    print!("{}", format_report(sandbox.report()));
    println!();
    println!(
        "probe run (a real run through the student path, in {}):",
        root.display()
    );
    let setup = ProbeSetup {
        sandbox: Arc::clone(&sandbox),
        runner: args.limits.runner_config(),
        workspaces_root: root,
        server_addr: None,
    };
    let token = tokio_util::sync::CancellationToken::new();
    let probe = SandboxProbe::start(setup.clone(), None, &token).await;
    let report = probe.last();
    probe.shutdown().await;
    print!("{}", report.format());
    println!();
    // The same program on a warm sandbox: the path most runs take. A warm
    // sandbox that cannot take a run falls back to a cold start, so students
    // would only see runs ten times slower; the check says so plainly.
    let warm_ok = if setup.runner.warm_sandboxes == Some(0) {
        println!("warm probe run: not run (warm sandboxes are off: CAMPUS_WARM_SANDBOXES=0)");
        true
    } else if !report.ok {
        println!("warm probe run: not run (the cold probe run failed)");
        false
    } else {
        println!("warm probe run (the same program on a warm sandbox, the path most runs take):");
        let warm = crate::runner::probe::probe_warm(&setup, &token).await;
        print!("{}", warm.format());
        warm.ok
    };
    let complete = sandbox.report().complete;
    // As `serve` in production: a missing disk quota counts unless waived.
    let quota_ok = quota_enforced || args.limits.allow_no_disk_quota;
    let verdict = match (complete, report.ok, quota_ok, warm_ok) {
        (_, false, _, _) => "sandbox check: NOT READY (the probe run failed: student programs do not run)",
        (true, true, true, true) if quota_enforced => {
            "sandbox check: ready (isolation complete, disk quotas enforced, the probe runs passed)"
        }
        (true, true, true, true) => "sandbox check: ready (isolation complete, the probe runs passed; \
             disk quotas NOT enforced, waived by CAMPUS_ALLOW_NO_DISK_QUOTA)",
        (false, true, _, _) => "sandbox check: INCOMPLETE isolation (runs work without it; production mode will refuse to start)",
        (true, true, false, _) => "sandbox check: INCOMPLETE: disk quotas are not enforced (runs \
             work, stopped by a usage scan; production mode will refuse to start unless \
             CAMPUS_ALLOW_NO_DISK_QUOTA=true)",
        (true, true, true, false) => "sandbox check: INCOMPLETE: warm sandboxes do not work (every run \
             starts cold, about ten times slower; the server log says why; \
             CAMPUS_WARM_SANDBOXES=0 turns them off)",
    };
    println!("{verdict}");
    i32::from(!(complete && report.ok && quota_ok && warm_ok))
}

/// `campus course …`.
pub async fn course(storage: StorageArgs, cmd: CourseCommand) -> i32 {
    let store = match crate::server::open_store(&storage).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("campus: {e:#}");
            return 1;
        }
    };
    let result = course_inner(&store, cmd).await;
    store.close().await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("campus: {e:#}");
            1
        }
    }
}

async fn course_inner(store: &crate::store::DynStore, cmd: CourseCommand) -> anyhow::Result<()> {
    use crate::courses::catalog::CatalogView;
    use crate::courses::roster;
    use crate::store::{NewAudit, NewCourse, SectionFields, StoreError};
    use campus_protocol::CourseRole;

    let audit = |action: &str, target: &str, detail: String| NewAudit {
        actor: Some("cli".into()),
        action: action.into(),
        target: Some(format!("course:{target}")),
        detail: Some(detail),
        ip: Some("cli".into()),
        ..Default::default()
    };
    let view = CatalogView::new(store.load_catalog().await?);
    let course_id = |slug: &str| {
        view.course(slug)
            .map(|c| c.id)
            .ok_or_else(|| anyhow::anyhow!("no course {slug:?}"))
    };
    match cmd {
        CourseCommand::Create {
            slug,
            title,
            term,
            professor,
        } => {
            if !crate::courses::valid_slug(&slug) {
                anyhow::bail!(
                    "invalid slug {slug:?}: use 1-32 of a-z, 0-9 and '-', not starting with '-'"
                );
            }
            let prof = match &professor {
                Some(p) => Some(
                    store
                        .user_by_username(p)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no user named {p:?}"))?,
                ),
                None => None,
            };
            let c = match store
                .create_course(NewCourse {
                    slug: slug.clone(),
                    title: title.clone(),
                    term,
                })
                .await
            {
                Ok(c) => c,
                Err(StoreError::Conflict) => anyhow::bail!("course {slug:?} already exists"),
                Err(e) => return Err(e.into()),
            };
            if let Some(p) = prof {
                store.set_member(c.id, p.id, CourseRole::Professor).await?;
            }
            store
                .append_audit(audit("course.create", &slug, title))
                .await?;
            println!("created course {slug} (id {})", c.id);
        }
        CourseCommand::List => {
            println!(
                "{:<24} {:>8} {:>9}  {:<14} title",
                "slug", "members", "sections", "term"
            );
            for c in view.courses() {
                println!(
                    "{:<24} {:>8} {:>9}  {:<14} {}",
                    c.slug,
                    view.members(c.id).count(),
                    view.sections(c.id).len(),
                    c.term,
                    c.title
                );
            }
        }
        CourseCommand::Enroll {
            course,
            username,
            role,
        } => {
            let role: CourseRole = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let id = course_id(&course)?;
            let u = store
                .user_by_username(&username)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user named {username:?}"))?;
            store.set_member(id, u.id, role).await?;
            store
                .append_audit(audit(
                    "course.enroll",
                    &course,
                    format!("{username} as {}", role.as_str()),
                ))
                .await?;
            println!("{username} is {} in {course}", role.as_str());
        }
        CourseCommand::ImportRoster {
            course,
            file,
            create_accounts,
        } => {
            let id = course_id(&course)?;
            let csv = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
            };
            let plan = roster::plan_import(store, &view, id, &csv, create_accounts)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            for l in &plan.lines {
                let who = l.username.as_deref().unwrap_or("-");
                match &l.error {
                    Some(e) => eprintln!("line {}: {who}: invalid: {e}", l.line),
                    None => eprintln!("line {}: {who}: {}", l.line, l.outcome),
                }
            }
            if !plan.valid() {
                anyhow::bail!("nothing was applied: fix the invalid lines and import again");
            }
            let n = plan.members.len();
            let made = roster::apply(store, id, plan)
                .await
                .map_err(|e| anyhow::anyhow!(e.message.clone()))?;
            for a in &made {
                println!("{},{}", a.username, a.password);
            }
            store
                .append_audit(audit(
                    "course.roster_import",
                    &course,
                    format!("{n} members set, {} accounts created", made.len()),
                ))
                .await?;
            eprintln!("{n} members set, {} accounts created", made.len());
        }
        CourseCommand::Publish {
            course,
            folder,
            release_at,
            close_at,
            unpublish,
        } => {
            let id = course_id(&course)?;
            let time = |t: Option<String>| -> anyhow::Result<Option<i64>> {
                t.map(|t| {
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .map(|d| d.timestamp_millis())
                        .map_err(|e| anyhow::anyhow!("{t:?} is not an RFC 3339 time: {e}"))
                })
                .transpose()
            };
            let (release, close) = (time(release_at)?, time(close_at)?);
            if let (Some(r), Some(c)) = (release, close) {
                if c <= r {
                    anyhow::bail!("the close time must be after the release time");
                }
            }
            if let Some((section, rel)) = folder.split_once('/') {
                let rel = workspace_fs::normalize_path(rel.trim_matches('/')).into_owned();
                if rel.is_empty() {
                    anyhow::bail!(
                        "{folder:?} names the section itself: publish {section:?} without the slash"
                    );
                }
                workspace_fs::validate_path(&rel)
                    .map_err(|e| anyhow::anyhow!("{folder:?}: {e}"))?;
                let s = view
                    .section_by_folder(id, section)
                    .ok_or_else(|| anyhow::anyhow!("{section:?} is not a section of {course}"))?;
                store
                    .set_release(crate::store::MaterialRelease {
                        section_id: s.id,
                        path: rel.clone(),
                        published: !unpublish,
                        release_at_ms: release,
                        close_at_ms: close,
                    })
                    .await?;
                store
                    .append_audit(audit(
                        "course.release_set",
                        &course,
                        format!(
                            "{section}/{rel}: published {}, release {release:?}, close {close:?}",
                            !unpublish
                        ),
                    ))
                    .await?;
                println!(
                    "{course}/{section}/{rel}: {}{}",
                    if unpublish {
                        "a draft inside its section"
                    } else {
                        "published"
                    },
                    release
                        .and_then(chrono::DateTime::from_timestamp_millis)
                        .map(|t| format!(", released {}", t.to_rfc3339()))
                        .unwrap_or_default()
                );
                return Ok(());
            }
            if !crate::courses::valid_folder(&folder) {
                anyhow::bail!("invalid folder {folder:?}: one name of letters, digits, '.', '_' or '-', not starting with '.'");
            }
            let existing = view.section_by_folder(id, &folder).cloned();
            let fields = SectionFields {
                folder: folder.clone(),
                title: existing
                    .as_ref()
                    .map_or_else(|| folder.clone(), |s| s.title.clone()),
                kind: existing
                    .as_ref()
                    .map_or_else(|| "notes".into(), |s| s.kind.clone()),
                position: existing.as_ref().map_or_else(
                    || {
                        view.sections(id)
                            .iter()
                            .map(|s| s.position)
                            .max()
                            .unwrap_or(0)
                            + 1
                    },
                    |s| s.position,
                ),
                published: !unpublish,
                release_at_ms: release.or(existing.as_ref().and_then(|s| s.release_at_ms)),
                close_at_ms: close.or(existing.as_ref().and_then(|s| s.close_at_ms)),
            };
            if let (Some(r), Some(c)) = (fields.release_at_ms, fields.close_at_ms) {
                if c <= r {
                    anyhow::bail!("the close time must be after the release time");
                }
            }
            let saved = match existing {
                Some(s) => store.update_section(s.id, fields).await?,
                None => store.create_section(id, fields).await?,
            };
            store
                .append_audit(audit(
                    "course.section_save",
                    &course,
                    format!("{folder}: published {}", saved.published),
                ))
                .await?;
            println!(
                "{course}/{folder}: {}{}",
                if saved.published {
                    "published"
                } else {
                    "unpublished"
                },
                saved
                    .release_at_ms
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|t| format!(", released {}", t.to_rfc3339()))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `campus backup DEST`.
pub async fn backup(storage: StorageArgs, dest: std::path::PathBuf) -> i32 {
    match crate::backup::backup(&storage, &dest).await {
        Ok(m) => {
            println!(
                "Backed up the {} database and {} entries ({} bytes) into {} in {:.1} s.",
                m.database,
                m.entries,
                m.bytes,
                dest.display(),
                (m.finished_at_ms - m.started_at_ms) as f64 / 1000.0
            );
            println!("Every save acknowledged before it started is in it.");
            0
        }
        Err(e) => {
            eprintln!("campus: backup failed: {e:#}");
            1
        }
    }
}

/// `campus restore SRC`.
pub async fn restore(storage: StorageArgs, src: std::path::PathBuf) -> i32 {
    match crate::backup::restore(&storage, &src).await {
        Ok(m) => {
            let when = chrono::DateTime::from_timestamp_millis(m.started_at_ms)
                .map_or_else(|| m.started_at_ms.to_string(), |t| t.to_rfc3339());
            println!(
                "Restored the backup started at {when} ({} database, {} entries) into {}.",
                m.database,
                m.entries,
                storage.data_dir.display()
            );
            println!("Start the server on it as usual (`campus serve`).");
            0
        }
        Err(e) => {
            eprintln!("campus: restore failed: {e:#}");
            1
        }
    }
}
