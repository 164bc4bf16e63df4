//! WebSocket micro-benchmarks against a real `campus serve` (release build):
//! save 10 KiB → ack and read 10 KiB with N users saving on a period, and
//! back-to-back from one user. Prints a table; `--json` writes the figures.
//!
//! `cargo build --release -p campus-server && cargo run --release -p campus-bench --bin wsbench -- files --users 50`

use std::time::{Duration, Instant};

use anyhow::Context;
use campus_bench::client::{login, Client};
use campus_bench::server::ServerProcess;
use campus_bench::stats::{self, summarize};
use campus_protocol::{ClientMsg, Encoding, ServerMsg};
use campus_protocol::{FileMsg, FileRequest};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Write the summaries as JSON here.
    #[arg(long, global = true)]
    json: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Users each saving a 10 KiB file every `interval_ms` (staggered), and reading it back.
    Files {
        #[arg(long, default_value_t = 50)]
        users: usize,
        #[arg(long, default_value_t = 2000)]
        interval_ms: u64,
        #[arg(long, default_value_t = 60)]
        duration_secs: u64,
        /// Also measure one user saving back to back this many times.
        #[arg(long, default_value_t = 500)]
        back_to_back: usize,
    },
    /// Runs: run → first output, sandbox overhead vs bare python, REPL expression,
    /// keystroke echo (1 and `--sessions` active sessions), a 200k-line flood, idle REPL memory.
    Runs {
        /// Sequential runs for run → first output.
        #[arg(long, default_value_t = 40)]
        runs: usize,
        /// Keystrokes measured per echo scenario.
        #[arg(long, default_value_t = 400)]
        keys: usize,
        /// Concurrently typing REPL sessions for the loaded echo scenario.
        #[arg(long, default_value_t = 50)]
        sessions: usize,
        /// Lines printed by the flood.
        #[arg(long, default_value_t = 200_000)]
        flood_lines: usize,
        /// Idle REPL sessions for the memory figure.
        #[arg(long, default_value_t = 20)]
        idle_repls: usize,
    },
    /// A class opening the course page at once: `course_open` and
    /// `course_list_files` latency, the catalog's database loads, and the
    /// students' own workspace listing as the baseline.
    Courses {
        #[arg(long, default_value_t = 300)]
        students: usize,
    },
    /// The end of a lab: `--students` submit an assignment of ten tests
    /// within `--window-secs` while `--typists` type in their REPLs: queue
    /// drain time, submit → graded, throughput, keystroke echo (baseline
    /// before the burst, and during it).
    Grading {
        #[arg(long, default_value_t = 300)]
        students: usize,
        #[arg(long, default_value_t = 50)]
        typists: usize,
        #[arg(long, default_value_t = 30)]
        window_secs: u64,
    },
    /// The admin feed at class size: `--students` sessions, `--running` of
    /// them with a REPL open; server CPU with nobody, one and five admins
    /// watching (`--phase-secs` each), bytes per tick, `/metrics` scrape time.
    Admin {
        #[arg(long, default_value_t = 300)]
        students: usize,
        #[arg(long, default_value_t = 100)]
        running: usize,
        #[arg(long, default_value_t = 30)]
        phase_secs: u64,
    },
}

const PASSWORD: &str = "bench-password-1";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Files {
            users,
            interval_ms,
            duration_secs,
            back_to_back,
        } => files(users, interval_ms, duration_secs, back_to_back, cli.json).await,
        Cmd::Runs {
            runs: n,
            keys,
            sessions,
            flood_lines,
            idle_repls,
        } => {
            campus_bench::runs::bench(campus_bench::runs::Params {
                runs: n,
                keys,
                sessions,
                flood_lines,
                idle_repls,
                json: cli.json,
            })
            .await
        }
        Cmd::Courses { students } => campus_bench::courses::bench(students, cli.json).await,
        Cmd::Grading {
            students,
            typists,
            window_secs,
        } => campus_bench::grading::bench(students, typists, window_secs, cli.json).await,
        Cmd::Admin {
            students,
            running,
            phase_secs,
        } => campus_bench::admin::bench(students, running, phase_secs, cli.json).await,
    }
}

async fn files(
    users: usize,
    interval_ms: u64,
    duration_secs: u64,
    back_to_back: usize,
    json: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    // The benchmark measures latency, not the per-user limiter (100/min by default).
    let server = ServerProcess::start(&[
        ("CAMPUS_FILE_OPS_PER_MIN", "1000000".into()),
        ("CAMPUS_WS_MESSAGES_PER_MIN", "1000000".into()),
    ])
    .await?;
    let names: Vec<String> = (0..users.max(1)).map(|i| format!("bench{i}")).collect();
    server.add_users(&names, PASSWORD)?;
    let http = reqwest::Client::new();
    let content: String = (0..10 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();

    // Back to back, one user.
    let token = login(&http, &server.url, &names[0], PASSWORD).await?;
    let mut c = Client::connect(&server.url, &token).await?;
    let mut version = None;
    let (mut b2b_save, mut b2b_read) = (Vec::new(), Vec::new());
    for i in 0..back_to_back {
        let (save, read) = save_and_read(
            &mut c,
            "b2b.py",
            format!("{i:08}{}", &content[8..]),
            &mut version,
        )
        .await?;
        b2b_save.push(save);
        b2b_read.push(read);
    }
    c.close().await;

    // N users on a period.
    let mut tasks = Vec::new();
    let start = Instant::now() + Duration::from_millis(500);
    for (i, name) in names.iter().enumerate() {
        let token = login(&http, &server.url, name, PASSWORD).await?;
        let url = server.url.clone();
        let content = content.clone();
        let offset = Duration::from_millis(interval_ms * i as u64 / users as u64);
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&url, &token).await?;
            let mut version: Option<String> = None;
            let (mut saves, mut reads) = (Vec::new(), Vec::new());
            let end = start + Duration::from_secs(duration_secs);
            let mut next = start + offset;
            while next < end {
                tokio::time::sleep_until(next.into()).await;
                next += Duration::from_millis(interval_ms);
                let (save, read) =
                    save_and_read(&mut c, "main.py", content.clone(), &mut version).await?;
                saves.push(save);
                reads.push(read);
            }
            c.close().await;
            anyhow::Ok((saves, reads))
        }));
    }
    let (mut saves, mut reads) = (Vec::new(), Vec::new());
    for t in tasks {
        let (s, r) = t.await.context("task")??;
        saves.extend(s);
        reads.extend(r);
    }
    let rows = [
        (
            "save 10 KiB → ack, back to back (1 user)",
            summarize(&b2b_save),
        ),
        ("read 10 KiB, back to back (1 user)", summarize(&b2b_read)),
        (
            &*format!("save 10 KiB → ack, {users} users every {interval_ms} ms"),
            summarize(&saves),
        ),
        (
            &*format!("read 10 KiB, {users} users every {interval_ms} ms"),
            summarize(&reads),
        ),
    ]
    .map(|(n, s)| (n.to_string(), s));
    println!("{}", stats::HEADER);
    for (n, s) in &rows {
        println!("{}", stats::row(n, s));
    }
    if let Some(path) = json {
        let v: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(n, s)| (n.clone(), serde_json::to_value(s).unwrap_or_default()))
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}

/// Save `content` (carrying the last version) and read it back; returns both latencies.
async fn save_and_read(
    c: &mut Client,
    path: &str,
    content: String,
    version: &mut Option<String>,
) -> anyhow::Result<(Duration, Duration)> {
    let id = c.id();
    let msg = ClientMsg::Files(FileRequest::Write {
        id: Some(id),
        path: path.into(),
        content,
        encoding: Encoding::Utf8,
        base_version: version.clone(),
    });
    let t = Instant::now();
    match c.request(id, &msg).await? {
        ServerMsg::Files(FileMsg::Written { version: v, .. }) => *version = Some(v),
        other => anyhow::bail!("save failed: {other:?}"),
    }
    let save = t.elapsed();
    let id = c.id();
    let t = Instant::now();
    c.request(
        id,
        &ClientMsg::Files(FileRequest::Read {
            id: Some(id),
            path: path.into(),
        }),
    )
    .await?;
    Ok((save, t.elapsed()))
}
