//! Idle mode: K authenticated WebSockets that only answer the server's pings
//! (tungstenite answers a ping while we keep reading), and the server memory
//! each one costs.
//!
//! Connections share a smaller set of users (several tabs per user are
//! allowed), so 5,000 connections do not need 5,000 argon2 logins.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::report::OpReport;
use super::setup::Target;
use super::{connect_error_code, report, Collected, Op, Recorder};
use crate::client::Client;
use crate::server::proc_sample;

/// Idle-mode parameters.
pub struct IdleOptions {
    /// Connections to open.
    pub connections: usize,
    /// Distinct users they log in as.
    pub users: usize,
    /// How long to hold them open after the last one connected.
    pub hold: Duration,
    /// Connects in flight at once.
    pub parallel: usize,
}

/// The idle-mode report (`--json`).
#[derive(Debug, Serialize)]
pub struct IdleReport {
    /// Always `"idle"`.
    pub mode: &'static str,
    /// Connections requested.
    pub connections: usize,
    /// Distinct users.
    pub users: usize,
    /// Connections that got `hello`.
    pub connected: usize,
    /// Connections closed by the server during the hold (should be 0).
    pub closed_during_hold: u64,
    /// Seconds held.
    pub hold_s: f64,
    /// Server RSS before connecting, MiB.
    pub rss_mb_before: f64,
    /// Right after the last connect, MiB.
    pub rss_mb_after_connect: f64,
    /// After the hold (heartbeats have run), MiB.
    pub rss_mb_after_hold: f64,
    /// (after hold − before) / connected, KiB.
    pub kib_per_connection: f64,
    /// Server fds before.
    pub fds_before: usize,
    /// Server fds after the hold.
    pub fds_after: usize,
    /// Connect latencies and errors.
    pub connect: OpReport,
    /// Connect failures + closes during the hold.
    pub unexpected_errors: u64,
}

fn sample(pid: Option<u32>) -> (f64, usize) {
    pid.and_then(proc_sample)
        .map(|(rss, fds, _)| (rss as f64 / (1024.0 * 1024.0), fds))
        .unwrap_or((0.0, 0))
}

/// Open the connections, hold them, measure, close them.
pub async fn run(target: &mut Target, o: IdleOptions) -> anyhow::Result<IdleReport> {
    let users = o.users.clamp(1, o.connections.max(1));
    target.ensure_users(users).await?;
    let tokens = Arc::new(target.tokens(users).await?);
    // Let the logins' work settle before the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_before, fds_before) = sample(target.pid);
    eprintln!(
        "idle: baseline RSS {rss_before:.1} MiB, {fds_before} fds; opening {} connections as {users} users",
        o.connections
    );

    let rec = Arc::new(Recorder::default());
    let closed = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let url = Arc::new(target.url.clone());
    let t0 = Instant::now();
    // Connect with bounded parallelism; each connection then lives in its own reading task.
    let holders: Vec<Option<tokio::task::JoinHandle<()>>> =
        futures_util::stream::iter(0..o.connections)
            .map(|i| {
                let (url, tokens, rec, closed, stop) = (
                    url.clone(),
                    tokens.clone(),
                    rec.clone(),
                    closed.clone(),
                    stop.clone(),
                );
                async move {
                    let t = Instant::now();
                    let token = &tokens[i % tokens.len()];
                    match Client::connect(&url, token).await {
                        Ok(c) => {
                            rec.ok(Op::Connect, t.elapsed());
                            Some(tokio::spawn(hold(c, closed, stop)))
                        }
                        Err(e) => {
                            rec.error(Op::Connect, &connect_error_code(&e));
                            None
                        }
                    }
                }
            })
            .buffer_unordered(o.parallel.max(1))
            .collect()
            .await;
    let connected = holders.iter().filter(|h| h.is_some()).count();
    eprintln!(
        "idle: {connected} connected in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_after_connect, _) = sample(target.pid);
    let hold_start = Instant::now();
    while hold_start.elapsed() < o.hold {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (rss, fds) = sample(target.pid);
        eprintln!(
            "idle: {:>4.0} s  RSS {rss:.1} MiB  fds {fds}  closed {}",
            hold_start.elapsed().as_secs_f64(),
            closed.load(Ordering::Relaxed)
        );
    }
    let (rss_after_hold, fds_after) = sample(target.pid);
    let closed_during_hold = closed.load(Ordering::Relaxed);
    stop.cancel();
    for h in holders.into_iter().flatten() {
        let _ = h.await;
    }
    let Collected {
        samples,
        errors,
        extra,
    } = rec.snapshot();
    let connect_errors: BTreeMap<String, u64> = errors[0].clone();
    let unexpected = report::unexpected_in(&connect_errors) + closed_during_hold;
    let ops = report::ops(&Collected {
        samples,
        errors,
        extra,
    });
    let connect = ops
        .get(Op::Connect.name())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no connect summary"))?;
    Ok(IdleReport {
        mode: "idle",
        connections: o.connections,
        users,
        connected,
        closed_during_hold,
        hold_s: o.hold.as_secs_f64(),
        rss_mb_before: rss_before,
        rss_mb_after_connect: rss_after_connect,
        rss_mb_after_hold: rss_after_hold,
        kib_per_connection: if connected > 0 {
            (rss_after_hold - rss_before) * 1024.0 / connected as f64
        } else {
            0.0
        },
        fds_before,
        fds_after,
        connect,
        unexpected_errors: unexpected,
    })
}

/// Keep reading (which answers pings) until told to stop; count a server close.
async fn hold(mut c: Client, closed: Arc<AtomicU64>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            ev = c.next() => if ev.is_err() {
                closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    c.close().await;
}
