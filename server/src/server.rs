//! Starting and stopping the server: validate, open the store, bootstrap the
//! first admin, probe the sandbox, serve until the shutdown signal, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use campus_protocol::{Limits, Role};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::login_guard::{LoginGuard, LoginRules};
use crate::auth::{password, AuthDeps, AuthService, TokenKeys};
use crate::config::{self, ServeArgs};
use crate::conn::{self, ConnConfig, ConnLimits};
use crate::courses::{CourseDeps, CourseService};
use crate::files::{FileDeps, FileService, UserWorkspaces};
use crate::grading::{self, GradingConfig, GradingService};
use crate::http::origin::OriginPolicy;
use crate::hub::Hub;
use crate::readiness::{DiskThresholds, Readiness, ReadinessInputs};
use crate::records::{self, Records};
use crate::runner::probe::{self, ProbeSetup, SandboxProbe};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::state::{AppState, Settings, SharedState};
use crate::store::{self, DynStore, NewAudit, NewUser};

const MIB: u64 = 1024 * 1024;
/// Bytes one course's material may hold (slides, data sets), MiB.
const COURSE_QUOTA_MB: u64 = 1024;
/// Files and folders one course's material may hold.
const COURSE_MAX_ENTRIES: u64 = 20_000;

/// A workspace unused this long (and with no operation in flight) is closed, releasing its
/// three directory descriptors; otherwise every student since start keeps them open. Ten
/// minutes keeps the workspaces of a class that is saving and running open (no re-scan per
/// save), while a class that left gives them back within a few housekeeping ticks.
const WORKSPACE_IDLE: Duration = Duration::from_secs(10 * 60);

/// Check the configuration and make the data dir usable (fails fast in production).
pub fn validate(args: &ServeArgs) -> anyhow::Result<()> {
    args.check_resolved()?;
    if args.is_production() {
        config::validate_secret(args.jwt_secret.as_ref().map(config::Secret::expose))?;
        config::ensure_data_dir(&args.storage.data_dir, false)?;
    } else {
        config::ensure_data_dir(&args.storage.data_dir, true)?;
    }
    if args.ws_messages_per_min == 0 || args.file_ops_per_min == 0 || args.run.runs_per_min == 0 {
        return Err(config::ConfigError::Invalid("rate limits must be positive".into()).into());
    }
    ConnConfig::resolve(&args.conns, conn::open_files_limit())?;
    OriginPolicy::new(
        args.public_url.as_deref(),
        &args.allowed_origins,
        args.listen,
    )?;
    if args.is_production() {
        match args.public_url.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(config::ConfigError::Invalid(
                    "CAMPUS_PUBLIC_URL is required in production: the address students open (e.g. https://ide.uni.edu); only pages from it may open a Campus connection".into(),
                )
                .into())
            }
            Some(url) if url.to_ascii_lowercase().starts_with("http://") => {
                tracing::warn!(%url, "CAMPUS_PUBLIC_URL is plain http: passwords and session cookies cross the network unencrypted (serve it over https)");
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The configured secret, or in development one generated once and kept in the data dir.
pub fn jwt_secret(args: &ServeArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = args
        .jwt_secret
        .as_ref()
        .map(config::Secret::expose)
        .filter(|s| !s.trim().is_empty())
    {
        return Ok(s.trim().as_bytes().to_vec());
    }
    let path = args.storage.data_dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().as_bytes().to_vec());
        }
    }
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, secret.as_bytes()).with_context(|| {
        format!(
            "cannot store the development JWT secret in {}",
            path.display()
        )
    })?;
    tracing::warn!(path = %path.display(), "development mode: generated a JWT secret (set CAMPUS_JWT_SECRET in production)");
    Ok(secret.into_bytes())
}

/// Write a file readable only by the owner, atomically and durably (the
/// rename too: its directory is flushed).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Open the store named by the storage args (migrations applied).
pub async fn open_store(storage: &config::StorageArgs) -> anyhow::Result<DynStore> {
    let url = storage.effective_database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&storage.data_dir)
            .with_context(|| format!("cannot create {}", storage.data_dir.display()))?;
    }
    store::connect(&url, &storage.pool_settings())
        .await
        .context("cannot open the database")
}

/// On first start (no admin yet), create `admin` with a random password and print it once.
pub async fn bootstrap_admin(store: &DynStore) -> anyhow::Result<()> {
    if store.count_users_with_role(Role::Admin).await? > 0 {
        return Ok(());
    }
    let pw = password::random_password();
    let pw2 = pw.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw2))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    match store
        .create_user(NewUser {
            username: "admin".into(),
            password_hash: hash,
            role: Role::Admin,
        })
        .await
    {
        Ok(_) => {
            store
                .append_audit(NewAudit {
                    action: "user.bootstrap_admin".into(),
                    target: Some("admin".into()),
                    ip: Some("local".into()),
                    ..Default::default()
                })
                .await?;
            // Printed, not logged: logs never carry passwords.
            println!("First start: created the administrator account.\n  username: admin\n  password: {pw}\n(shown only once; change it with `campus user passwd admin --password-stdin`)");
        }
        // Another replica or a concurrent start created it first.
        Err(store::StoreError::Conflict) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Limits announced to clients.
pub fn limits(args: &ServeArgs) -> Limits {
    Limits {
        ws_messages_per_min: args.ws_messages_per_min,
        file_ops_per_min: args.file_ops_per_min,
        runs_per_min: args.run.runs_per_min,
        max_file_bytes: args.max_file_mb * MIB,
        workspace_quota_bytes: args.run.workspace_quota_mb * MIB,
        workspace_max_entries: args.run.workspace_max_entries,
        max_ws_message_bytes: args.ws_max_message_kb * 1024,
        run_memory_bytes: args.run.memory_limit_mb * MIB,
        run_cpu_secs: args.run.cpu_time_limit_secs,
        script_max_age_secs: args.run.script_max_age_secs,
        repl_max_age_secs: args.run.repl_max_age_secs,
    }
}

/// A running server (for tests and `serve`).
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The metrics listener's address, when there is one.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state (tests inspect it).
    pub state: SharedState,
    /// The database behind its breaker (tests inspect it; the drain closes it last).
    pub store: DynStore,
    /// The record writer (tests inspect it; the drain closes it).
    pub records: Records,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Begin a graceful shutdown.
    pub fn shutdown(&self) {
        self.state.shutdown.cancel();
    }

    /// Wait until the server has stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }
}

/// Build the state and start serving on `listener`; returns at once.
pub async fn start(args: ServeArgs, listener: TcpListener) -> anyhow::Result<Running> {
    validate(&args)?;
    let secret = jwt_secret(&args)?;
    let instance_id = crate::instance::load_or_create(&args.storage.data_dir)
        .context("cannot establish this server's instance id")?;
    tracing::info!(instance = %instance_id, "server instance");
    let db = open_store(&args.storage).await?;
    // Records a crashed (or database-less) earlier process could not write
    // first, so the repair below sees the runs' real ends and last marks.
    let replayed = records::replay_leftovers(&args.storage.journal_dir(), &db)
        .await
        .context("cannot write the run records left in the journal")?;
    if replayed.files > 0 {
        tracing::warn!(
            files = replayed.files,
            records = replayed.records,
            refused = replayed.refused,
            "wrote run records left in the journal by an earlier process"
        );
    }
    // Only this instance's runs: another server sharing the database keeps its live ones.
    let closed = db.close_dangling_runs(&instance_id).await?;
    if closed > 0 {
        tracing::warn!(
            closed,
            instance = %instance_id,
            "runs left open by a previous crash of this instance recorded as ended at their last sign of life"
        );
    }
    bootstrap_admin(&db).await?;
    // Tokens logged out and not yet expired, and the cursor of the account poll.
    let revocations = db
        .live_revocations(store::now_ms())
        .await
        .context("cannot load the revoked tokens")?;
    let account_cursor = db
        .account_changes(i64::MAX)
        .await
        .context("cannot read the database clock")?
        .now_ms;

    let helper_exe = args
        .run
        .helper_exe()
        .context("cannot find the campus binary")?;
    let mut sandbox = Sandbox::new(SandboxConfig {
        helper_exe,
        production: args.is_production(),
        uid_base: args.run.sandbox_uid_base,
        // Per instance: the cleanup below never reaches another server's runs.
        cgroup_group: crate::instance::cgroup_group(&args.run.cgroup_group, &instance_id),
        ..SandboxConfig::default()
    })
    .context("the sandbox is not usable")?;
    check_storage(&args, &mut sandbox)?;
    let sandbox = Arc::new(sandbox);
    for (name, ok, detail) in &sandbox.report().features {
        tracing::info!(feature = %name, ok, detail = %detail, "sandbox");
    }
    // Runs left behind by a crash of this instance (its own cgroup group only).
    let stale = sandbox.cleanup_stale();
    if stale > 0 {
        tracing::warn!(
            stale,
            "removed sandboxes left by a previous run of this server instance"
        );
    }

    let fs_limits = workspace_fs::Limits {
        max_file_bytes: args.max_file_mb * MIB,
        quota_bytes: args.run.workspace_quota_mb * MIB,
        max_entries: args.run.workspace_max_entries,
        ..workspace_fs::Limits::default()
    };
    let workspaces = workspace_fs::Workspaces::new(
        args.storage.workspaces_dir(),
        args.storage.workspace_meta_dir(),
        fs_limits.clone(),
    )
    .context("cannot open the workspaces directory")?;
    let uid_base = sandbox
        .report()
        .complete
        .then_some(args.run.sandbox_uid_base);
    let workspaces = Arc::new(UserWorkspaces::new(workspaces, uid_base));
    // Every task of the server is tracked by this tracker and ends with
    // this token (the runner's and the probe's tokens are its children).
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    spawn_temp_sweep(&workspaces, &tracker);

    let runner_config = args.run.runner_config();
    let sandbox_probe =
        start_sandbox_probe(&args, &sandbox, &runner_config, &listener, &shutdown).await?;

    // From here on the database is only reached through the breaker, and run
    // records only through the background writer.
    let (store, db_health) = store::guard(db);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let records = Records::start(
        args.storage
            .records_config("server")
            .with_instance(&instance_id),
        Arc::clone(&store),
        Arc::clone(&db_health),
    )
    .with_metrics(Arc::clone(&metrics));
    let runner = crate::runner::Runner::new(
        runner_config,
        Arc::clone(&sandbox),
        Some(records.clone()),
        shutdown.clone(),
    );
    let hub = Arc::new(Hub::default());
    let addr = listener.local_addr()?;
    let origins = OriginPolicy::new(args.public_url.as_deref(), &args.allowed_origins, addr)?;
    let conn_config = ConnConfig::resolve(&args.conns, conn::open_files_limit())?;
    tracing::info!(
        max_connections = conn_config.max_connections,
        max_unauthenticated = conn_config.max_unauth,
        max_unauthenticated_per_address = conn_config.max_unauth_per_address,
        ws_per_user = conn_config.ws_per_user,
        open_files_limit = conn::open_files_limit(),
        origins = ?origins.origins().iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "connection limits"
    );
    let conns = ConnLimits::new(conn_config);
    let auth = AuthService::start(
        AuthDeps {
            keys: TokenKeys::new(&secret, Duration::from_secs(args.token_ttl_secs.max(60))),
            store: Arc::clone(&store),
            db: Arc::clone(&db_health),
            records: records.clone(),
            hub: Arc::clone(&hub),
            login_guard: LoginGuard::new(
                LoginRules::from_args(&args.login, origins.secure_cookies()),
                &secret,
            ),
            hash_slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
            // Half a heartbeat keeps detection within about 1.5 heartbeats.
            recheck_after: Duration::from_millis(args.heartbeat_secs.max(1) * 500),
            runner: Arc::clone(&runner),
            account_poll: Duration::from_millis(args.account_poll_ms.max(50)),
            account_cursor_ms: account_cursor,
            revocations,
        },
        &tracker,
        shutdown.clone(),
    );
    let files = Arc::new(FileService::new(FileDeps {
        workspaces,
        store: Arc::clone(&store),
        records: records.clone(),
        hub: Arc::clone(&hub),
        ops_per_min: args.file_ops_per_min,
    }));
    let materials = workspace_fs::Workspaces::new(
        args.storage.courses_dir(),
        args.storage.course_meta_dir(),
        workspace_fs::Limits {
            // A course's material is the staff's, not a student's workspace:
            // its own, larger bounds.
            quota_bytes: COURSE_QUOTA_MB * MIB,
            max_entries: COURSE_MAX_ENTRIES,
            ..fs_limits
        },
    )
    .context("cannot open the courses directory")?;
    let courses = Arc::new(CourseService::new(CourseDeps {
        store: Arc::clone(&store),
        materials: Arc::new(materials),
        files: Arc::clone(&files),
        hub: Arc::clone(&hub),
        records: records.clone(),
        runner: Arc::clone(&runner),
        tracker: tracker.clone(),
    }));
    tracker.spawn(Arc::clone(&courses).watch(shutdown.clone()));
    let grading = start_grading(
        &args,
        &metrics,
        &store,
        &courses,
        &files,
        &hub,
        &runner,
        &instance_id,
        &tracker,
        &shutdown,
    )
    .await?;
    let readiness = Readiness::new(ReadinessInputs {
        store: Arc::clone(&store),
        db: db_health,
        records: records.clone(),
        sandbox,
        probe: sandbox_probe,
        disk: DiskThresholds {
            data_dir: args.storage.data_dir.clone(),
            min_free_bytes: args.disk_min_free_mb.saturating_mul(MIB),
            min_free_inodes: args.disk_min_free_inodes,
        },
        hub: Arc::clone(&hub),
        conns: Arc::clone(&conns),
        shutdown: shutdown.clone(),
    });
    let state: SharedState = Arc::new(AppState {
        auth,
        files,
        courses,
        grading,
        runner,
        hub,
        conns: Arc::clone(&conns),
        readiness,
        admin: crate::admin::AdminService::new(records.clone()),
        metrics,
        settings: Settings::new(&args, limits(&args), origins),
        instance_id,
        shutdown,
        tracker,
    });

    let metrics_addr = match args.metrics_listen {
        Some(at) => Some(serve_metrics(at, &state).await?),
        None => None,
    };
    let app = crate::http::router(state.clone());
    let st = state.clone();
    let grace = Duration::from_secs(args.shutdown_grace_secs.max(1));
    let (db, writer) = (Arc::clone(&store), records.clone());
    let task = tokio::spawn(async move {
        spawn_housekeeping(&st);
        conn::serve::serve(listener, app, conns, st.shutdown.clone(), grace).await;
        // Drain whatever ended the listener: runs are recorded and the
        // pool closed.
        st.shutdown.cancel();
        drain(&st, grace, &db, &writer).await;
        Ok(())
    });
    tracing::info!(%addr, backend = store.backend(), "campus is listening");
    Ok(Running {
        addr,
        metrics_addr,
        state,
        store,
        records,
        task,
    })
}

/// Serve `/metrics` alone on `at` until shutdown (a tracked task); returns
/// the bound address.
async fn serve_metrics(at: SocketAddr, state: &SharedState) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .with_context(|| format!("cannot listen for metrics on {at} (CAMPUS_METRICS_LISTEN)"))?;
    let bound = listener.local_addr()?;
    let app = crate::http::metrics_routes::router(state.clone());
    let stop = state.shutdown.clone();
    state.tracker.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    tracing::info!(addr = %bound, "serving /metrics (Prometheus) without authentication");
    Ok(bound)
}

/// The disk side of the sandbox (docs/security.md, "Storage"): find out
/// whether the kernel enforces the runs' workspace quota; production refuses
/// to start without it unless `CAMPUS_ALLOW_NO_DISK_QUOTA` waives it (then,
/// as in development, a usage scan stops runs over the quota). And the
/// database must not share a filesystem that programs can fill: SQLite on the
/// workspaces' filesystem without quotas is refused likewise; with quotas, the
/// root-only reserve is reported (it keeps the server writing when the
/// students' quotas add up to more than the disk).
fn check_storage(args: &ServeArgs, sandbox: &mut Sandbox) -> anyhow::Result<()> {
    let root = args.storage.workspaces_dir();
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let status = sandbox.probe_disk_quota(&root).clone();
    let db = args.storage.sqlite_file();
    let layout = crate::sandbox::storage_layout(&root, db.as_deref())
        .with_context(|| format!("cannot inspect the filesystem of {}", root.display()))?;
    let waived = args.run.allow_no_disk_quota;
    if status.enforced {
        tracing::info!(detail = %status.detail, "disk quota: enforced by the kernel");
        if layout.shared {
            if layout.reserved_bytes == 0 {
                tracing::warn!(
                    "the SQLite database shares the workspaces' filesystem, which keeps no \
                     space for root: if the students' quotas add up to more than the disk, \
                     their programs can fill it and stop logins (reserve blocks with \
                     `tune2fs -m`, or put the database elsewhere)"
                );
            } else {
                tracing::info!(
                    reserved_mib = layout.reserved_bytes >> 20,
                    "the SQLite database shares the workspaces' filesystem; its root-only \
                     reserve keeps the server writing when the students' space is used up"
                );
            }
        }
        return Ok(());
    }
    if args.is_production() && !waived {
        anyhow::bail!(
            "disk quotas are not enforced for student programs ({}); a program could fill the \
             disk{}. Enable quotas (see docs/security.md, \"Storage\", and `campus sandbox \
             check`), or set CAMPUS_ALLOW_NO_DISK_QUOTA=true to run with the usage-scan \
             fallback",
            status.detail,
            if layout.shared {
                " that also holds the database, and stop logins"
            } else {
                ""
            }
        );
    }
    tracing::warn!(
        detail = %status.detail,
        waived,
        "!!! DISK QUOTA NOT ENFORCED: student programs can write past their workspace quota \
         until a usage scan (every few seconds) stops them; a fast writer can fill the disk \
         in between !!!"
    );
    if layout.shared {
        tracing::warn!(
            "!!! the SQLite database is on the same filesystem as the workspaces, without \
             quotas: a program filling it can stop logins and saves for everyone !!!"
        );
    }
    Ok(())
}

/// The sandbox probe run (see [`crate::runner::probe`]): one real run through
/// the student path, logged; a failure refuses to start in production and
/// makes `/readyz` not ready in development.
async fn start_sandbox_probe(
    args: &ServeArgs,
    sandbox: &Arc<Sandbox>,
    runner_config: &crate::runner::RunnerConfig,
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<SandboxProbe>> {
    let setup = ProbeSetup {
        sandbox: Arc::clone(sandbox),
        runner: runner_config.clone(),
        workspaces_root: args.storage.workspaces_dir(),
        server_addr: listener.local_addr().ok().and_then(probe::loopback_of),
    };
    let max_age =
        (args.sandbox_probe_secs > 0).then(|| Duration::from_secs(args.sandbox_probe_secs));
    let probe = SandboxProbe::start(setup, max_age, shutdown).await;
    let report = probe.last();
    for c in &report.checks {
        if c.ok {
            tracing::info!(check = %c.name, detail = %c.detail, "sandbox probe run");
        } else {
            tracing::error!(check = %c.name, detail = %c.detail, "sandbox probe run");
        }
    }
    if report.ok {
        tracing::info!(duration_ms = report.duration_ms, summary = %report.summary, "sandbox probe run passed");
    } else if args.is_production() {
        probe.shutdown().await;
        anyhow::bail!(
            "the sandbox probe run failed, student programs would not run: {} (see `campus sandbox check`)",
            report.summary
        );
    } else {
        tracing::error!(
            summary = %report.summary,
            "!!! SANDBOX PROBE RUN FAILED: student programs do not run on this server; /readyz reports not ready (see `campus sandbox check`) !!!"
        );
    }
    Ok(probe)
}

/// After the listener stops: let connections say goodbye, then close the pool.
async fn drain(state: &SharedState, grace: Duration, store: &DynStore, records: &Records) {
    if tokio::time::timeout(grace, state.readiness.probe().shutdown())
        .await
        .is_err()
    {
        tracing::warn!("the sandbox probe run did not end within the shutdown grace period");
    }
    // Runs end with `server_shutdown` (and are recorded) before the pool closes.
    if tokio::time::timeout(grace, state.runner.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some runs did not end within the shutdown grace period");
    }
    state.tracker.close();
    if tokio::time::timeout(grace, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the shutdown grace period");
    }
    // Run ends recorded by the runner's shutdown reach the database (or the journal).
    records.close(grace).await;
    store.close().await;
    tracing::info!("shutdown complete");
}

/// Periodic upkeep, once a minute: forget idle rate-limiter keys and close idle workspaces;
/// once an hour, purge trash past its retention (7 days) in the open workspaces (the others
/// are purged when they are next opened).
fn spawn_housekeeping(state: &SharedState) {
    state.tracker.spawn(crate::admin::feed::run(state.clone()));
    let st = state.clone();
    state.tracker.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut minutes = 0u64;
        let mut sockets = st.conns.stats();
        loop {
            tokio::select! {
                _ = st.shutdown.cancelled() => break,
                _ = tick.tick() => {
                    st.auth.shrink();
                    st.auth.purge_revocations().await;
                    st.files.shrink();
                    sockets = log_connection_pressure(&sockets, st.conns.stats());
                    if minutes.is_multiple_of(60) {
                        let files = Arc::clone(st.files.workspaces());
                        let purged = tokio::task::spawn_blocking(move || files.purge_expired_trash()).await;
                        if let Ok(n) = purged {
                            if n > 0 {
                                tracing::info!(purged = n, "purged expired trash");
                            }
                        }
                    }
                    let files = Arc::clone(st.files.workspaces());
                    let closed = tokio::task::spawn_blocking(move || {
                        (files.evict_idle(WORKSPACE_IDLE), files.open_count())
                    })
                    .await;
                    if let Ok((closed, open)) = closed {
                        if closed > 0 {
                            tracing::debug!(closed, open, "closed idle workspaces");
                        }
                    }
                    minutes += 1;
                }
            }
        }
    });
}

/// Say once a minute when the connection limits had to act (an attack, or
/// caps too low for the class); returns `now` for the next comparison.
fn log_connection_pressure(before: &conn::ConnStats, now: conn::ConnStats) -> conn::ConnStats {
    let evicted = now.evicted.saturating_sub(before.evicted);
    let refused = now.refused.saturating_sub(before.refused);
    let replaced = now.replaced.saturating_sub(before.replaced);
    let accept_errors = now.accept_errors.saturating_sub(before.accept_errors);
    if evicted + refused + replaced + accept_errors > 0 {
        tracing::warn!(
            evicted,
            refused,
            replaced,
            accept_errors,
            total = now.total,
            unauthenticated = now.unauthenticated,
            max_connections = now.max_connections,
            "connection limits acted in the last minute (unauthenticated connections closed to make room, connections refused at the cap, WebSockets replaced by a newer one of their user, failed accepts)"
        );
    }
    now
}

/// How long the start-up sweep of crash leftovers may run; workspaces it did not reach are
/// swept when they are next opened.
const TEMP_SWEEP_BUDGET: Duration = Duration::from_secs(120);

/// Remove the temporaries (`.campus-tmp-*`) a crash (`kill -9`, power loss) left in every
/// workspace, also of students who do not come back, on a blocking thread: start-up does not
/// wait for it, and it never races a write (see `Workspaces::sweep_temporaries`).
fn spawn_temp_sweep(files: &Arc<UserWorkspaces>, tracker: &TaskTracker) {
    let files = Arc::clone(files);
    // Tracked: shutdown waits for it (bounded by the grace period; it stops
    // at its own budget).
    tracker.spawn_blocking(move || {
        let started = std::time::Instant::now();
        match files.sweep_temporaries(started + TEMP_SWEEP_BUDGET) {
            Ok(r) => {
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                if !r.complete {
                    tracing::warn!(removed = r.removed, workspaces = r.workspaces, ms,
                        "start-up sweep of temporary files stopped at its time budget; the rest are swept when each workspace is next opened");
                } else if r.removed > 0 {
                    tracing::warn!(
                        removed = r.removed,
                        workspaces = r.workspaces,
                        ms,
                        "removed temporary files left by an interrupted save"
                    );
                } else {
                    tracing::info!(
                        workspaces = r.workspaces,
                        ms,
                        "start-up sweep: no temporary files left behind"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "start-up sweep of temporary files failed"),
        }
    });
}

/// Run until `signal` resolves, then shut down gracefully.
pub async fn serve_until(
    args: ServeArgs,
    listener: TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let running = start(args, listener).await?;
    let token = running.state.shutdown.clone();
    running.state.tracker.spawn(async move {
        tokio::select! {
            _ = signal => {
                tracing::info!("shutdown signal received");
                token.cancel();
            }
            // Ended some other way: this watcher must not hold the drain up.
            _ = token.cancelled() => {}
        }
    });
    running.wait().await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The grading service: the harness written under the data dir, the
/// workers started (half the batch slots: each grading takes two), running
/// jobs of a previous single-replica process given back to the queue.
#[allow(clippy::too_many_arguments)]
async fn start_grading(
    args: &ServeArgs,
    metrics: &Arc<crate::metrics::Metrics>,
    store: &DynStore,
    courses: &Arc<CourseService>,
    files: &Arc<FileService>,
    hub: &Arc<Hub>,
    runner: &Arc<crate::runner::Runner>,
    instance_id: &str,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<GradingService>> {
    let root = args.storage.grading_dir();
    let python = args.run.runner_config().python;
    let r = root.clone();
    let programs =
        tokio::task::spawn_blocking(move || grading::install_programs(&r.join("programs"), python))
            .await?
            .context("cannot write the grader's programs")?;
    let executor = Arc::clone(runner.executor());
    let admission = executor.admission();
    let batch = admission
        .capacity()
        .saturating_sub(admission.interactive_reserve());
    // Each grading is CPU work: as many at once as there are cores (never
    // more than the batch slots allow, two each), so a lab's burst queues
    // instead of slowing every student's typing.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = (batch / 2).clamp(1, cores.max(1));
    if store.backend() == "sqlite" {
        // One process owns a SQLite file: nobody else can be grading these.
        match store.requeue_running().await {
            Ok(n) if n > 0 => {
                tracing::info!(n, "grading: submissions of the last run queued again")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "grading: running submissions not re-queued; their leases will expire")
            }
        }
    }
    let service = GradingService::new(
        Arc::clone(store),
        Arc::clone(courses),
        Arc::clone(files),
        Arc::clone(hub),
        Arc::new(grading::Grader::new(executor, programs)),
        GradingConfig {
            workers,
            queue_max: args.grading_queue_max,
            per_day: args.grading_per_day,
            lease: Duration::from_secs(30),
            max_retries: 3,
            root,
            owner: format!("{instance_id}-{}", uuid::Uuid::new_v4().simple()),
            metrics: Arc::clone(metrics),
        },
    );
    tracing::info!(workers, "grading workers");
    service.start(tracker, shutdown.clone());
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    use workspace_fs::{Precondition, Workspaces};

    fn service(dir: &Path, retention: Duration) -> UserWorkspaces {
        let limits = workspace_fs::Limits {
            trash_retention: retention,
            ..workspace_fs::Limits::default()
        };
        let reg = Workspaces::new(dir.join("workspaces"), dir.join("meta"), limits).unwrap();
        UserWorkspaces::new(reg, None)
    }

    #[test]
    fn trash_purge_touches_only_open_workspaces() {
        let dir = tempfile::tempdir().unwrap();
        // Workspaces of earlier students, on disk from a previous server run.
        {
            let old = service(dir.path(), Duration::ZERO);
            for owner in 1..=20 {
                let ws = old.open(owner).unwrap();
                ws.write("gone.txt", b"x", Precondition::CreateOnly)
                    .unwrap();
                ws.delete("gone.txt").unwrap();
            }
        }
        let files = service(dir.path(), Duration::ZERO);
        assert_eq!(files.purge_expired_trash(), 0);
        assert_eq!(files.open_count(), 0, "the pass opened closed workspaces");

        // An open workspace with expired trash is purged by the pass.
        let ws = files.open(7).unwrap();
        // (Opening it already purged its old item.)
        assert!(ws.trash_list().unwrap().is_empty());
        ws.write("later.txt", b"y", Precondition::CreateOnly)
            .unwrap();
        ws.delete("later.txt").unwrap();
        drop(ws);
        assert_eq!(files.purge_expired_trash(), 1);
        assert_eq!(files.open_count(), 1);
        assert_eq!(files.evict_idle(Duration::ZERO), 1);
        assert_eq!(files.open_count(), 0);
    }
}
