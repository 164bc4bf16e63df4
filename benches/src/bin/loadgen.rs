//! Campus class load generator. Starts its own release `campus serve` on a
//! fresh data dir (or targets `--url`), creates and logs in N students and
//! drives a realistic class; prints progress and a table, writes a JSON report,
//! and exits non-zero when an unexpected error occurred.
//!
//! ```text
//! cargo build --release -p campus-server
//! cargo run --release -p campus-bench --bin loadgen -- --students 300 --duration 120s --json report.json
//! cargo run --release -p campus-bench --bin loadgen -- --idle 5000 --json idle.json
//! cargo run --release -p campus-bench --bin loadgen -- --sweep 100,200,300,400 --duration 60s --json sweep.json
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use campus_bench::load::idle::{self, IdleOptions};
use campus_bench::load::report::{self, Report};
use campus_bench::load::setup::{Target, TargetOptions};
use campus_bench::load::student::{self, Spec};
use campus_bench::load::{parse_duration, sampler, Op, Recorder};
use campus_bench::server::{proc_sample, raise_nofile_limit};
use clap::Parser;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Campus class load generator")]
struct Cli {
    /// Students to simulate.
    #[arg(long, default_value_t = 300)]
    students: usize,
    /// Measured duration (e.g. 120s, 10m); per step with --sweep.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    duration: Duration,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Percent of students that also run CPU or memory hogs (intended limit endings).
    #[arg(long, default_value_t = 2.0)]
    heavy_pct: f64,
    /// Percent of students that disconnect while a program prints and reattach.
    #[arg(long, default_value_t = 3.0)]
    reattach_pct: f64,
    /// Spread the students' connects over this long (default: min(10 s, duration / 4)).
    #[arg(long, value_parser = parse_duration)]
    stagger: Option<Duration>,
    /// RNG seed for the jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// After the students disconnect, wait this long before the leak check (fds, RSS).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    close_wait: Duration,
    /// Progress line period.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    progress_every: Duration,
    /// Target an existing server (base URL, e.g. http://127.0.0.1:8080) instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// With --url: the server's pid, to sample its RSS, CPU and fds.
    #[arg(long)]
    server_pid: Option<u32>,
    /// With --url: the students' password (they are named PREFIX0..PREFIXn-1).
    #[arg(long, env = "LOADGEN_PASSWORD")]
    password: Option<String>,
    /// Student name prefix.
    #[arg(long, default_value = "student")]
    prefix: String,
    /// With --url: create the students first with `campus user add` in this data dir.
    #[arg(long)]
    create_users_in: Option<std::path::PathBuf>,
    /// Extra environment for our own server, KEY=VALUE (repeatable).
    #[arg(long = "server-env", value_parser = parse_kv)]
    server_env: Vec<(String, String)>,
    /// Idle mode: open this many heartbeating connections and report memory per connection.
    #[arg(long)]
    idle: Option<usize>,
    /// Idle mode: distinct users the connections log in as (our own server
    /// allows each that many WebSockets; an existing one needs
    /// `CAMPUS_WS_PER_USER` ≥ connections / users).
    #[arg(long, default_value_t = 250)]
    idle_users: usize,
    /// Idle mode: how long to hold the connections (≥ 2 heartbeats).
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    idle_hold: Duration,
    /// Knee-finding mode: comma-separated class sizes, each run for --duration.
    #[arg(long, value_delimiter = ',')]
    sweep: Option<Vec<usize>>,
    /// Sweep: stop once echo p99 exceeds this (ms).
    #[arg(long, default_value_t = 50.0)]
    sweep_echo_p99_ms: f64,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

#[tokio::main]
async fn main() {
    match real_main().await {
        Ok(0) => {}
        Ok(n) => {
            eprintln!("loadgen: {n} unexpected error(s)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::exit(2);
        }
    }
}

async fn real_main() -> anyhow::Result<u64> {
    let cli = Cli::parse();
    // Thousands of sockets here and in the server we start (it inherits the limit).
    let nofile = raise_nofile_limit()?;
    let mut env = cli.server_env.clone();
    if let Some(k) = cli.idle {
        // Idle mode shares few users among many connections; the server
        // closes a user's oldest WebSocket past CAMPUS_WS_PER_USER, so our
        // own server gets a cap that fits (unless one is given).
        let per_user = k.div_ceil(cli.idle_users.clamp(1, k.max(1)));
        if !env.iter().any(|(key, _)| key == "CAMPUS_WS_PER_USER") {
            env.push(("CAMPUS_WS_PER_USER".into(), per_user.max(1).to_string()));
        }
    }
    let mut target = Target::open(TargetOptions {
        url: cli.url.clone(),
        server_pid: cli.server_pid,
        password: cli.password.clone(),
        prefix: cli.prefix.clone(),
        create_users_in: cli.create_users_in.clone(),
        env,
    })
    .await?;
    eprintln!(
        "loadgen: server {} (pid {:?}), open-files limit {nofile}",
        target.url, target.pid
    );

    if let Some(k) = cli.idle {
        let r = idle::run(
            &mut target,
            IdleOptions {
                connections: k,
                users: cli.idle_users,
                hold: cli.idle_hold,
                parallel: 32,
            },
        )
        .await?;
        println!(
            "idle: {} of {} connected ({} users), RSS {:.1} → {:.1} (after connect) → {:.1} MiB (after {:.0} s), {:.1} KiB per connection; fds {} → {}; connect p50 {:.2} ms p99 {:.2} ms; closed during hold {}",
            r.connected, r.connections, r.users, r.rss_mb_before, r.rss_mb_after_connect, r.rss_mb_after_hold,
            r.hold_s, r.kib_per_connection, r.fds_before, r.fds_after, r.connect.p50_ms, r.connect.p99_ms, r.closed_during_hold
        );
        write_json(cli.json.as_deref(), &r)?;
        return Ok(r.unexpected_errors);
    }

    if let Some(steps) = cli.sweep.clone() {
        return sweep(&cli, &mut target, &steps).await;
    }

    let r = class(&cli, &mut target, cli.students).await?;
    println!("{}", report::table(&r));
    write_json(cli.json.as_deref(), &r)?;
    Ok(r.unexpected_errors)
}

fn write_json<T: Serialize>(path: Option<&std::path::Path>, v: &T) -> anyhow::Result<()> {
    if let Some(p) = path {
        std::fs::write(p, serde_json::to_string_pretty(v)?)
            .with_context(|| format!("write {}", p.display()))?;
        eprintln!("loadgen: wrote {}", p.display());
    }
    Ok(())
}

/// Run one class of `n` students for `cli.duration`.
async fn class(cli: &Cli, target: &mut Target, n: usize) -> anyhow::Result<Report> {
    target.ensure_users(n).await?;
    let tokens = target.tokens(n).await?;
    let roles = student::roles(n, cli.heavy_pct, cli.reattach_pct);
    let rec = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let samples = sampler::spawn(target.pid, stop.clone());
    let loadavg_start = sampler::loadavg();
    let my_cpu = || proc_sample(std::process::id()).map_or(0, |s| s.2);
    let (my_cpu_start, wall_start) = (my_cpu(), std::time::Instant::now());
    let stagger = cli
        .stagger
        .unwrap_or_else(|| (cli.duration / 4).min(Duration::from_secs(10)));
    let t0 = tokio::time::Instant::now() + Duration::from_millis(200);
    let end = t0 + cli.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (token, role)) in tokens.into_iter().zip(roles).enumerate() {
        let spec = Spec {
            index: i,
            url: target.url.clone(),
            token,
            role,
            start: t0 + stagger.mul_f64(i as f64 / n.max(1) as f64),
            end,
            seed: cli.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
        };
        tasks.spawn(student::run(spec, rec.clone(), stop.clone()));
    }
    let progress = tokio::spawn(progress(
        rec.clone(),
        samples.clone(),
        cli.progress_every,
        stop.clone(),
    ));
    // Every student stops by itself at `end`; this bounds the stragglers.
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout_at(end + Duration::from_secs(20), all_done)
        .await
        .is_err()
    {
        eprintln!("loadgen: students still busy 20 s after the end; cancelling");
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
    }
    stop.cancel();
    let _ = progress.await;
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let collected = rec.snapshot();
    let mut server = report::server(&samples);
    // Leak check: what is left once the connections are gone.
    tokio::time::sleep(cli.close_wait).await;
    if let Some((rss, fds, _)) = target.pid.and_then(proc_sample) {
        server.fds_after_close = fds;
        server.rss_mb_after_close = rss as f64 / (1024.0 * 1024.0);
    }
    Ok(Report {
        students: n,
        duration_s: cli.duration.as_secs_f64(),
        ops: report::ops(&collected),
        server,
        diagnostics: report::diagnostics(&collected),
        unexpected_errors: rec.unexpected.load(Ordering::Relaxed),
        intended: rec.intended.load(Ordering::Relaxed),
        // /proc CPU times are in USER_HZ = 100 ticks per second.
        loadgen_cpu_pct: (my_cpu() - my_cpu_start) as f64 / wall_start.elapsed().as_secs_f64(),
        loadavg_start,
        loadavg_end: sampler::loadavg(),
        timeline: report::timeline(&samples),
    })
}

async fn progress(
    rec: Arc<Recorder>,
    samples: sampler::Samples,
    every: Duration,
    stop: CancellationToken,
) {
    let t0 = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let last = samples.lock().ok().and_then(|s| s.last().copied());
        let server = last.map_or(String::new(), |s| {
            format!(
                "  server RSS {:.1} MiB  CPU {:.0}%  fds {}  machine {:.0}%",
                s.rss_mb, s.cpu_pct, s.fds, s.machine_busy_pct
            )
        });
        eprintln!(
            "[{:>5.0} s] ops {:>7}  unexpected {:>3}  intended {:>3}  runs live {:>3}{server}",
            t0.elapsed().as_secs_f64(),
            rec.ops_done.load(Ordering::Relaxed),
            rec.unexpected.load(Ordering::Relaxed),
            rec.intended.load(Ordering::Relaxed),
            rec.runs_live.load(Ordering::Relaxed),
        );
    }
}

/// One step of the sweep.
#[derive(Serialize)]
struct Step {
    students: usize,
    ops: std::collections::BTreeMap<String, report::OpReport>,
    server: report::ServerReport,
    diagnostics: std::collections::BTreeMap<String, campus_bench::stats::Summary>,
    unexpected_errors: u64,
    intended: u64,
    loadavg_end: [f64; 3],
}

#[derive(Serialize)]
struct Sweep {
    mode: &'static str,
    duration_s_per_step: f64,
    echo_p99_limit_ms: f64,
    steps: Vec<Step>,
    /// Largest class that stayed under the limit without unexpected errors.
    last_ok: Option<usize>,
    /// First class that did not.
    knee: Option<usize>,
    stop_reason: String,
}

async fn sweep(cli: &Cli, target: &mut Target, sizes: &[usize]) -> anyhow::Result<u64> {
    let max = sizes.iter().copied().max().unwrap_or(0);
    // Users once, up front; tokens are reused by every step (logins are rate limited).
    target.ensure_users(max).await?;
    let mut out = Sweep {
        mode: "sweep",
        duration_s_per_step: cli.duration.as_secs_f64(),
        echo_p99_limit_ms: cli.sweep_echo_p99_ms,
        steps: Vec::new(),
        last_ok: None,
        knee: None,
        stop_reason: "all steps passed".into(),
    };
    for (k, &n) in sizes.iter().enumerate() {
        if k > 0 {
            // Let the previous class's sessions and sandboxes wind down.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        eprintln!(
            "sweep: {n} students for {:.0} s",
            cli.duration.as_secs_f64()
        );
        let r = class(cli, target, n).await?;
        println!("{}", report::table(&r));
        let echo_p99 = r.ops.get(Op::Echo.name()).map_or(0.0, |o| o.p99_ms);
        let failed = if r.unexpected_errors > 0 {
            Some(format!(
                "{} unexpected errors at {n} students",
                r.unexpected_errors
            ))
        } else if echo_p99 > cli.sweep_echo_p99_ms {
            Some(format!(
                "echo p99 {echo_p99:.1} ms > {} ms at {n} students",
                cli.sweep_echo_p99_ms
            ))
        } else {
            None
        };
        out.steps.push(Step {
            students: n,
            ops: r.ops,
            server: r.server,
            diagnostics: r.diagnostics,
            unexpected_errors: r.unexpected_errors,
            intended: r.intended,
            loadavg_end: r.loadavg_end,
        });
        write_json(cli.json.as_deref(), &out)?;
        match failed {
            Some(reason) => {
                eprintln!("sweep: stop: {reason}");
                out.knee = Some(n);
                out.stop_reason = reason;
                break;
            }
            None => out.last_ok = Some(n),
        }
    }
    println!(
        "sweep: last ok {:?}, knee {:?} ({})",
        out.last_ok, out.knee, out.stop_reason
    );
    write_json(cli.json.as_deref(), &out)?;
    Ok(0)
}
