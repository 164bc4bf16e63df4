//! `wsbench admin`: the admin feed at class size. N students (300) are
//! connected with a session each, M of them (100) with a REPL open; then the
//! server's CPU is measured over three equal phases: nobody watching (the
//! baseline, same run, taken before and again after), one admin watching,
//! five admins watching. Reported: the feed's own work per tick (gather and
//! serialize, from the server's `campus_admin_feed_tick_seconds`), the
//! process CPU of each phase, what each further admin adds per tick (five
//! minus one, over four), the bytes of one tick, and `/metrics` scrape time
//! at that class size (an admin's token on the main listener).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use campus_protocol::{AdminMsg, AdminRequest, ClientMsg, RunMode, ServerMsg, SessionRequest};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::client::{login, Client, Event};
use crate::runs::run_msg;
use crate::server::{proc_sample, ServerProcess};
use crate::stats::{summarize, Summary};

const PASSWORD: &str = "bench-password-1";

/// What the run found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Students connected, each with a session.
    pub sessions: usize,
    /// Of them, with a REPL open.
    pub running: usize,
    /// Length of each phase, s.
    pub phase_s: f64,
    /// Server CPU per second with nobody watching, ms (the baseline, before).
    pub cpu_ms_per_s_baseline: f64,
    /// The same after the admins left (the baseline, after).
    pub cpu_ms_per_s_baseline_after: f64,
    /// The same with one admin watching.
    pub cpu_ms_per_s_one_admin: f64,
    /// The same with five admins watching.
    pub cpu_ms_per_s_five_admins: f64,
    /// Ticks one admin received per phase.
    pub ticks_per_phase: u64,
    /// The feed's work per tick (gather + serialize), mean, ms — the server's own histogram.
    pub feed_ms_per_tick: f64,
    /// The same with five admins watching (must not grow with them).
    pub feed_ms_per_tick_five_admins: f64,
    /// Process CPU per tick with one admin minus the mean baseline, ms (noisy: 10 ms clock ticks).
    pub cpu_ms_per_tick: f64,
    /// What each further admin adds per tick: (five − one) / 4 / ticks, ms.
    pub cpu_ms_per_tick_per_extra_admin: f64,
    /// Bytes of one tick (the JSON text frame), mean.
    pub bytes_per_tick: f64,
    /// `GET /metrics` with `sessions` sessions, sequential scrapes.
    pub metrics_scrape: Summary,
    /// Size of one exposition, bytes.
    pub metrics_bytes: usize,
}

/// `campus_admin_feed_tick_seconds` sum and count from `/metrics`.
async fn feed_totals(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<(f64, f64)> {
    let text = http
        .get(format!("{url}/metrics"))
        .bearer_auth(token)
        .send()
        .await?
        .text()
        .await?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    Ok((
        value("campus_admin_feed_tick_seconds_sum"),
        value("campus_admin_feed_tick_seconds_count"),
    ))
}

fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    Ok(proc_sample(pid)
        .context("cannot read the server's /proc")?
        .2)
}

/// Drain a student's connection until `stop` (their session must not back up).
async fn hold(mut c: Client, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            e = c.next() => if e.is_err() { break },
        }
    }
    c.close().await;
}

/// An admin watching: counts the ticks and their bytes until `stop`.
async fn watch(
    mut c: Client,
    stop: CancellationToken,
    ticks: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let id = c.id();
    let m = c
        .request(
            id,
            &ClientMsg::Admin(AdminRequest::AdminWatch { id: Some(id) }),
        )
        .await?;
    if !matches!(m, ServerMsg::Admin(AdminMsg::AdminDone { .. })) {
        bail!("admin_watch: {m:?}");
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            e = c.next() => {
                if let Event::Msg(m @ ServerMsg::Admin(AdminMsg::AdminFeed { .. })) = e? {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(serde_json::to_string(&m)?.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }
    c.close().await;
    Ok(())
}

/// Run the benchmark.
pub async fn bench(
    students: usize,
    running: usize,
    phase_s: u64,
    json: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    crate::server::raise_nofile_limit()?;
    let server = ServerProcess::start(&[
        ("CAMPUS_FILE_OPS_PER_MIN", "1000000".into()),
        ("CAMPUS_WS_MESSAGES_PER_MIN", "1000000".into()),
        ("CAMPUS_RUNS_PER_MIN", "1000000".into()),
        ("CAMPUS_LOGIN_ATTEMPTS", "100000".into()),
    ])
    .await?;
    let names: Vec<String> = (0..students).map(|i| format!("s{i:04}")).collect();
    eprintln!("creating {students} students and 5 admins…");
    server.add_users(&names, PASSWORD)?;
    for i in 0..5 {
        let name = format!("admin{i}");
        crate::courses::cli(
            &server,
            &[
                "user",
                "add",
                "--username",
                &name,
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        )?;
    }
    let http = reqwest::Client::new();
    let stop = CancellationToken::new();
    let mut held = Vec::new();
    eprintln!("connecting {students} students ({running} with a REPL)…");
    for (i, name) in names.iter().enumerate() {
        let token = login(&http, &server.url, name, PASSWORD).await?;
        let mut c = Client::connect(&server.url, &token).await?;
        if i < running {
            let (id, msg) = run_msg(&mut c, "", RunMode::Repl);
            let m = c.request(id, &msg).await?;
            if !matches!(
                m,
                ServerMsg::Session(campus_protocol::SessionMsg::RunStarted { .. })
            ) {
                bail!("{name}: REPL did not start: {m:?}");
            }
        } else {
            // A session without a run: attach creates it.
            c.send(&ClientMsg::Session(SessionRequest::Attach {
                id: None,
                since_seq: 0,
            }))
            .await?;
        }
        held.push(tokio::spawn(hold(c, stop.clone())));
    }
    // Let the REPLs and their warm sandboxes settle (their start-up CPU is
    // not the feed's).
    tokio::time::sleep(Duration::from_secs(20)).await;
    let scrape_token = login(&http, &server.url, "admin0", PASSWORD).await?;
    let pid = server.pid();
    let phase = Duration::from_secs(phase_s);

    eprintln!("phase 1: nobody watching, {phase_s} s…");
    let t0 = cpu_ticks(pid)?;
    tokio::time::sleep(phase).await;
    let baseline = cpu_ticks(pid)? - t0;

    let mut admins = Vec::new();
    for i in 0..5 {
        let token = login(&http, &server.url, &format!("admin{i}"), PASSWORD).await?;
        admins.push(Client::connect(&server.url, &token).await?);
    }
    let watch_stop = CancellationToken::new();
    let first_ticks = Arc::new(AtomicU64::new(0));
    let first_bytes = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    let first = admins.remove(0);
    watchers.push(tokio::spawn(watch(
        first,
        watch_stop.clone(),
        Arc::clone(&first_ticks),
        Arc::clone(&first_bytes),
    )));
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("phase 2: one admin watching, {phase_s} s…");
    let f1 = feed_totals(&http, &server.url, &scrape_token).await?;
    let (t1, k1) = (cpu_ticks(pid)?, first_ticks.load(Ordering::Relaxed));
    let b1 = first_bytes.load(Ordering::Relaxed);
    tokio::time::sleep(phase).await;
    let one = cpu_ticks(pid)? - t1;
    let ticks = first_ticks.load(Ordering::Relaxed) - k1;
    let bytes = first_bytes.load(Ordering::Relaxed) - b1;
    let f2 = feed_totals(&http, &server.url, &scrape_token).await?;

    for c in admins {
        watchers.push(tokio::spawn(watch(
            c,
            watch_stop.clone(),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("phase 3: five admins watching, {phase_s} s…");
    let f3 = feed_totals(&http, &server.url, &scrape_token).await?;
    let t2 = cpu_ticks(pid)?;
    tokio::time::sleep(phase).await;
    let five = cpu_ticks(pid)? - t2;
    let f4 = feed_totals(&http, &server.url, &scrape_token).await?;
    watch_stop.cancel();
    for w in watchers {
        w.await??;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("phase 4: nobody watching again, {phase_s} s…");
    let t3 = cpu_ticks(pid)?;
    tokio::time::sleep(phase).await;
    let after = cpu_ticks(pid)? - t3;

    eprintln!("scraping /metrics…");
    let token = scrape_token;
    let mut samples = Vec::new();
    let mut metrics_bytes = 0;
    for _ in 0..100 {
        let t = Instant::now();
        let r = http
            .get(format!("{}/metrics", server.url))
            .bearer_auth(&token)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("/metrics: {}", r.status());
        }
        metrics_bytes = r.bytes().await?.len();
        samples.push(t.elapsed());
    }
    stop.cancel();
    for h in held {
        let _ = h.await;
    }

    // /proc counts CPU in clock ticks (100 per second on Linux).
    let ms = |t: u64| t as f64 * 10.0;
    let per_s = |t: u64| ms(t) / phase_s as f64;
    let mean_ms = |a: (f64, f64), b: (f64, f64)| (b.0 - a.0) * 1000.0 / (b.1 - a.1).max(1.0);
    let baseline_mean = (ms(baseline) + ms(after)) / 2.0;
    let report = Report {
        sessions: students,
        running,
        phase_s: phase_s as f64,
        cpu_ms_per_s_baseline: per_s(baseline),
        cpu_ms_per_s_baseline_after: per_s(after),
        cpu_ms_per_s_one_admin: per_s(one),
        cpu_ms_per_s_five_admins: per_s(five),
        ticks_per_phase: ticks,
        feed_ms_per_tick: mean_ms(f1, f2),
        feed_ms_per_tick_five_admins: mean_ms(f3, f4),
        cpu_ms_per_tick: (ms(one) - baseline_mean) / ticks.max(1) as f64,
        cpu_ms_per_tick_per_extra_admin: (ms(five) - ms(one)) / 4.0 / ticks.max(1) as f64,
        bytes_per_tick: bytes as f64 / ticks.max(1) as f64,
        metrics_scrape: summarize(&samples),
        metrics_bytes,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
