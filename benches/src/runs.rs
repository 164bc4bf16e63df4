//! Run benchmarks over the WebSocket against a release server with the real
//! sandbox: run → first output (and the sandbox overhead against bare
//! `python3` in the same run; then with a student's pause between runs, in
//! script, REPL and hybrid mode, which a warm sandbox serves — set
//! `CAMPUS_WARM_SANDBOXES=0` for cold starts), REPL expression → result, keystroke → echo
//! (one session, then many typing at once), an output flood, and the memory of
//! idle REPL sessions.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use campus_protocol::{ClientMsg, Encoding, RunMode, ServerMsg};
use campus_protocol::{ConnectionMsg, FileMsg, FileRequest, SessionMsg, SessionRequest};
use serde_json::json;

use crate::client::{login, Client, Event};
use crate::server::{proc_sample, ServerProcess};
use crate::stats::{self, summarize, Summary};

const PASSWORD: &str = "bench-password-1";
/// A student's pause between two runs (reading what the last one printed).
const THINK: Duration = Duration::from_millis(300);

/// What to measure.
pub struct Params {
    /// Sequential runs for run → first output.
    pub runs: usize,
    /// Keystrokes per echo scenario.
    pub keys: usize,
    /// Concurrent typing sessions.
    pub sessions: usize,
    /// Lines in the flood.
    pub flood_lines: usize,
    /// Idle REPLs for the memory figure.
    pub idle_repls: usize,
    /// JSON output.
    pub json: Option<PathBuf>,
}

async fn student(
    server: &ServerProcess,
    http: &reqwest::Client,
    name: &str,
) -> anyhow::Result<Client> {
    let token = login(http, &server.url, name, PASSWORD).await?;
    Client::connect(&server.url, &token).await
}

async fn put(c: &mut Client, path: &str, code: &str) -> anyhow::Result<()> {
    let id = c.id();
    let msg = ClientMsg::Files(FileRequest::Write {
        id: Some(id),
        path: path.into(),
        content: code.into(),
        encoding: Encoding::Utf8,
        base_version: None,
    });
    match c.request(id, &msg).await? {
        ServerMsg::Files(FileMsg::Written { .. }) => Ok(()),
        other => bail!("write failed: {other:?}"),
    }
}

pub(crate) fn run_msg(c: &mut Client, path: &str, mode: RunMode) -> (u64, ClientMsg) {
    let id = c.id();
    (
        id,
        ClientMsg::Session(SessionRequest::Run {
            id: Some(id),
            path: path.into(),
            mode,
            cols: Some(120),
            rows: Some(40),
            course: None,
        }),
    )
}

/// Read events until `pred` holds for the accumulated output (acking as we go).
pub(crate) async fn until_output(
    c: &mut Client,
    buf: &mut Vec<u8>,
    pred: impl Fn(&[u8]) -> bool,
) -> anyhow::Result<()> {
    while !pred(buf) {
        match c.next().await? {
            Event::Output(seq, bytes) => {
                buf.extend_from_slice(&bytes);
                c.send(&ClientMsg::Session(SessionRequest::Ack {
                    seq: seq + bytes.len() as u64,
                }))
                .await?;
            }
            Event::Msg(ServerMsg::Connection(ConnectionMsg::Error { code, message, .. })) => {
                bail!("{code}: {message}")
            }
            Event::Msg(_) => {}
        }
    }
    Ok(())
}

pub(crate) async fn until_ended(c: &mut Client) -> anyhow::Result<()> {
    loop {
        match c.next().await? {
            Event::Msg(ServerMsg::Session(SessionMsg::RunEnded { .. })) => return Ok(()),
            Event::Output(seq, bytes) => {
                c.send(&ClientMsg::Session(SessionRequest::Ack {
                    seq: seq + bytes.len() as u64,
                }))
                .await?
            }
            Event::Msg(ServerMsg::Connection(ConnectionMsg::Error { code, message, .. })) => {
                bail!("{code}: {message}")
            }
            Event::Msg(_) => {}
        }
    }
}

/// Time from spawning `/usr/bin/python3 -c "print(1)"` directly to its first output byte.
fn bare_python_first_output(n: usize) -> anyhow::Result<Vec<Duration>> {
    use std::io::Read;
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "print(1)"])
            .env_clear()
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut b = [0u8; 1];
        child.stdout.take().context("stdout")?.read_exact(&mut b)?;
        out.push(t.elapsed());
        child.wait()?;
    }
    Ok(out)
}

/// Memory of every sandboxed process on the host (helpers and programs).
#[derive(Debug, Default, Clone, Copy)]
struct SandboxMemory {
    processes: usize,
    rss: u64,
    pss: u64,
    private: u64,
}

fn sandbox_memory() -> SandboxMemory {
    let mut m = SandboxMemory::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return m;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let uid: u32 = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        if uid < 200_000 && !String::from_utf8_lossy(&cmd).contains("sandbox-exec") {
            continue;
        }
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let kb = |name: &str| -> u64 {
            rollup
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        m.processes += 1;
        m.rss += kb("Rss:");
        m.pss += kb("Pss:");
        m.private += kb("Private_Clean:") + kb("Private_Dirty:");
    }
    m
}

/// Private memory (PSS) of every sandboxed process on the host, bytes.
fn sandbox_pss_bytes() -> u64 {
    sandbox_memory().pss
}

/// Run every scenario and print the table.
pub async fn bench(p: Params) -> anyhow::Result<()> {
    let server = ServerProcess::start(&[
        ("CAMPUS_RUNS_PER_MIN", "100000".into()),
        ("CAMPUS_WS_MESSAGES_PER_MIN", "1000000".into()),
        ("CAMPUS_FILE_OPS_PER_MIN", "1000000".into()),
    ])
    .await?;
    let users = p.sessions.max(p.idle_repls) + 1;
    let names: Vec<String> = (0..users).map(|i| format!("runner{i}")).collect();
    server.add_users(&names, PASSWORD)?;
    let http = reqwest::Client::new();
    let mut rows: Vec<(String, Summary)> = Vec::new();
    let mut extra = serde_json::Map::new();

    // 1. run → first output, interleaved with bare python so both see the same machine.
    let mut c = student(&server, &http, &names[0]).await?;
    put(&mut c, "hello.py", "print(1)\n").await?;
    let (mut campus, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..p.runs {
        bare.extend(bare_python_first_output(1)?);
        let (_, msg) = run_msg(&mut c, "hello.py", RunMode::Script);
        let t = Instant::now();
        c.send(&msg).await?;
        let mut buf = Vec::new();
        until_output(&mut c, &mut buf, |b| !b.is_empty()).await?;
        campus.push(t.elapsed());
        until_ended(&mut c).await?;
    }
    let (cs, bs) = (summarize(&campus), summarize(&bare));
    // 1b. What a student pressing Run sees: a pause between runs (reading
    // the output), so a warm sandbox (if the server keeps them) is ready.
    put(&mut c, "ask.py", "x = 6 * 7\n").await?;
    let (mut paused, mut repl_start, mut hybrid) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..p.runs {
        tokio::time::sleep(THINK).await;
        let (_, msg) = run_msg(&mut c, "hello.py", RunMode::Script);
        let t = Instant::now();
        c.send(&msg).await?;
        let mut buf = Vec::new();
        until_output(&mut c, &mut buf, |b| !b.is_empty()).await?;
        paused.push(t.elapsed());
        until_ended(&mut c).await?;
        // REPL mode: Run → the prompt.
        tokio::time::sleep(THINK).await;
        let (_, msg) = run_msg(&mut c, "", RunMode::Repl);
        let t = Instant::now();
        c.send(&msg).await?;
        let mut buf = Vec::new();
        until_output(&mut c, &mut buf, |b| b.ends_with(b">>> ")).await?;
        repl_start.push(t.elapsed());
        c.send(&ClientMsg::Session(SessionRequest::Stop { id: None }))
            .await?;
        until_ended(&mut c).await?;
        // Hybrid: a small script, then an expression on its globals.
        tokio::time::sleep(THINK).await;
        let (_, msg) = run_msg(&mut c, "ask.py", RunMode::Hybrid);
        let t = Instant::now();
        c.send(&msg).await?;
        let mut buf = Vec::new();
        until_output(&mut c, &mut buf, |b| b.ends_with(b">>> ")).await?;
        c.send(&ClientMsg::Session(SessionRequest::Input {
            id: None,
            data: "x\r".into(),
        }))
        .await?;
        until_output(&mut c, &mut buf, |b| {
            let s = String::from_utf8_lossy(b);
            s.contains("42") && s.ends_with(">>> ")
        })
        .await?;
        hybrid.push(t.elapsed());
        c.send(&ClientMsg::Session(SessionRequest::Stop { id: None }))
            .await?;
        until_ended(&mut c).await?;
    }
    extra.insert(
        "sandbox_overhead".into(),
        json!({"campus_p50_ms": cs.p50_ms, "bare_python_p50_ms": bs.p50_ms,
               "overhead_p50_ms": cs.p50_ms - bs.p50_ms, "ratio_p50": cs.p50_ms / bs.p50_ms.max(1e-9)}),
    );
    rows.push((
        "run print(1) → first output (sandboxed, over WS)".into(),
        cs,
    ));
    rows.push((
        "bare /usr/bin/python3 -c print(1) → first output".into(),
        bs,
    ));
    rows.push((
        "run print(1) → first output, after a pause".into(),
        summarize(&paused),
    ));
    rows.push(("run in REPL mode → prompt".into(), summarize(&repl_start)));
    rows.push((
        "hybrid: small script, then a REPL expression → result".into(),
        summarize(&hybrid),
    ));

    // 2. REPL: expression → result, and keystroke → echo with one session.
    let (_, msg) = run_msg(&mut c, "", RunMode::Repl);
    c.send(&msg).await?;
    let mut buf = Vec::new();
    until_output(&mut c, &mut buf, |b| b.ends_with(b">>> ")).await?;
    let mut expr = Vec::new();
    for i in 0..p.keys.min(200) {
        buf.clear();
        let want = format!("{}", 1000 + i);
        let t = Instant::now();
        c.send(&ClientMsg::Session(SessionRequest::Input {
            id: None,
            data: format!("{i}+1000\r"),
        }))
        .await?;
        until_output(&mut c, &mut buf, |b| {
            let s = String::from_utf8_lossy(b);
            s.contains(&want) && s.ends_with(">>> ")
        })
        .await?;
        expr.push(t.elapsed());
    }
    rows.push((
        "REPL expression → result (1 session)".into(),
        summarize(&expr),
    ));
    let echo1 = echo_samples(&mut c, p.keys).await?;
    rows.push(("keystroke → echo (1 session)".into(), summarize(&echo1)));
    c.send(&ClientMsg::Session(SessionRequest::Stop { id: None }))
        .await?;
    until_ended(&mut c).await?;

    // 3. keystroke → echo with N sessions typing (one key per 200 ms each).
    let mut tasks = Vec::new();
    // names[0] is the single-session user above; the others are separate sessions.
    for name in names.iter().skip(1).take(p.sessions) {
        let mut c = student(&server, &http, name).await?;
        let keys = (p.keys / p.sessions.max(1)).max(20);
        tasks.push(tokio::spawn(async move {
            let (_, msg) = run_msg(&mut c, "", RunMode::Repl);
            c.send(&msg).await?;
            let mut buf = Vec::new();
            until_output(&mut c, &mut buf, |b| b.ends_with(b">>> ")).await?;
            let mut samples = Vec::new();
            for _ in 0..keys {
                tokio::time::sleep(Duration::from_millis(150 + rand_ms(100))).await;
                samples.extend(echo_samples(&mut c, 1).await?);
            }
            c.send(&ClientMsg::Session(SessionRequest::Stop { id: None }))
                .await?;
            until_ended(&mut c).await?;
            anyhow::Ok(samples)
        }));
    }
    let mut echo_n = Vec::new();
    for t in tasks {
        echo_n.extend(t.await??);
    }
    rows.push((
        format!("keystroke → echo ({} sessions typing)", p.sessions),
        summarize(&echo_n),
    ));

    // 4. Flood: N printed lines → last line at the client; server RSS peak.
    let rss_before = proc_sample(server.pid()).map(|s| s.0).unwrap_or(0);
    put(
        &mut c,
        "flood.py",
        &format!(
            "for i in range({}):\n    print(i)\nprint('DONE')\n",
            p.flood_lines
        ),
    )
    .await?;
    let (_, msg) = run_msg(&mut c, "flood.py", RunMode::Script);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let (pk, pid) = (peak.clone(), server.pid());
    let sampler = tokio::spawn(async move {
        loop {
            if let Some((rss, _, _)) = proc_sample(pid) {
                pk.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let t = Instant::now();
    c.send(&msg).await?;
    let mut tail = Vec::new();
    let mut total = 0usize;
    loop {
        match c.next().await? {
            Event::Output(seq, bytes) => {
                total += bytes.len();
                tail.extend_from_slice(&bytes);
                if tail.len() > 64 {
                    tail.drain(..tail.len() - 64);
                }
                c.send(&ClientMsg::Session(SessionRequest::Ack {
                    seq: seq + bytes.len() as u64,
                }))
                .await?;
                if String::from_utf8_lossy(&tail).contains("DONE") {
                    break;
                }
            }
            Event::Msg(ServerMsg::Session(SessionMsg::RunEnded { ended, .. }))
                if !String::from_utf8_lossy(&tail).contains("DONE") =>
            {
                bail!("flood ended early: {ended:?}")
            }
            _ => {}
        }
    }
    let flood = t.elapsed();
    sampler.abort();
    until_ended(&mut c).await?;
    extra.insert(
        "flood".into(),
        json!({"lines": p.flood_lines, "bytes": total, "seconds": flood.as_secs_f64(),
               "server_rss_before_mb": rss_before as f64 / 1e6,
               "server_rss_peak_mb": peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6}),
    );

    // 5. Idle REPL sessions: server RSS growth + sandbox PSS, per session.
    let rss0 = proc_sample(server.pid()).map(|s| s.0).unwrap_or(0);
    let pss0 = sandbox_pss_bytes();
    let mut idle = Vec::new();
    for name in names.iter().skip(1).take(p.idle_repls) {
        let mut c = student(&server, &http, name).await?;
        let (_, msg) = run_msg(&mut c, "", RunMode::Repl);
        c.send(&msg).await?;
        let mut buf = Vec::new();
        until_output(&mut c, &mut buf, |b| b.ends_with(b">>> ")).await?;
        idle.push(c);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = proc_sample(server.pid()).map(|s| s.0).unwrap_or(0);
    let pss1 = sandbox_pss_bytes();
    let k = p.idle_repls.max(1) as f64;
    let per = (rss1.saturating_sub(rss0) as f64 + pss1.saturating_sub(pss0) as f64) / k;
    extra.insert(
        "idle_repl_memory".into(),
        json!({"sessions": p.idle_repls, "server_rss_delta_mb": (rss1 as f64 - rss0 as f64) / 1e6,
               "sandbox_pss_mb": (pss1 as f64 - pss0 as f64) / 1e6, "per_session_mb": per / 1e6}),
    );
    for mut c in idle {
        c.send(&ClientMsg::Session(SessionRequest::Stop { id: None }))
            .await?;
        until_ended(&mut c).await?;
    }

    // 6. Idle IDEs (connected, nothing run): what their warm sandboxes cost.
    let before = sandbox_memory();
    let mut open = Vec::new();
    for name in names.iter().skip(1).take(p.idle_repls) {
        let mut c = student(&server, &http, name).await?;
        // What the IDE sends after every connect.
        let id = c.id();
        c.request(
            id,
            &ClientMsg::Session(SessionRequest::Attach {
                id: Some(id),
                since_seq: 0,
            }),
        )
        .await?;
        open.push(c);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = sandbox_memory();
    let k = p.idle_repls.max(1) as f64;
    extra.insert(
        "idle_warm_sandbox_memory".into(),
        json!({"sessions": p.idle_repls,
               "processes": after.processes.saturating_sub(before.processes),
               "rss_mb_per_session": (after.rss as f64 - before.rss as f64) / k / 1e6,
               "pss_mb_per_session": (after.pss as f64 - before.pss as f64) / k / 1e6,
               "private_mb_per_session": (after.private as f64 - before.private as f64) / k / 1e6}),
    );
    drop(open);

    println!("{}", stats::HEADER);
    for (n, s) in &rows {
        println!("{}", stats::row(n, s));
    }
    println!("{}", serde_json::to_string_pretty(&extra)?);
    if let Some(path) = p.json {
        let mut v: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(n, s)| (n.clone(), serde_json::to_value(s).unwrap_or_default()))
            .collect();
        v.extend(extra);
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}

/// Type single characters and time each echo; then erase them (Ctrl-U).
pub(crate) async fn echo_samples(c: &mut Client, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::new();
    for i in 0..n {
        let ch = (b'a' + (i % 26) as u8) as char;
        let t = Instant::now();
        c.send(&ClientMsg::Session(SessionRequest::Input {
            id: None,
            data: ch.to_string(),
        }))
        .await?;
        let mut buf = Vec::new();
        until_output(c, &mut buf, |b| b.contains(&(ch as u8))).await?;
        out.push(t.elapsed());
        if i % 20 == 19 {
            clear_line(c).await?;
        }
    }
    clear_line(c).await?;
    Ok(out)
}

/// Ctrl-U: erase the typed letters so the REPL never evaluates them.
async fn clear_line(c: &mut Client) -> anyhow::Result<()> {
    c.send(&ClientMsg::Session(SessionRequest::Input {
        id: None,
        data: "\u{15}".into(),
    }))
    .await?;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_millis(200),
        until_output(c, &mut buf, |b| !b.is_empty()),
    )
    .await;
    Ok(())
}

/// A cheap pseudo-random number of ms below `max` (spreads sessions apart).
fn rand_ms(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos % max.max(1)
}
