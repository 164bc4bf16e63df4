//! `GET /metrics`: after a student's run, the exposition counts it; it
//! passes `promtool check metrics`; Debian's real Prometheus scrapes the
//! metrics listener and answers queries on what it scraped; on the main
//! listener only admins may read it; the shipped alert rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`).
//! Prometheus and promtool come from Debian's `prometheus` package, which
//! `.ci/run` installs; without them these tests fail, they never skip.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use campus_protocol::Role;
use support::class::{ask_run, save, ASK};
use support::process::{free_port, output_with_stdin, Server};
use support::server::TestServer;
use tokio::time::Instant;

fn tool(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: apt-get install prometheus (.ci/run installs it)"
    );
    path
}

/// The value of the sample `series` (exact name with labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn promtool_check_metrics(text: &str) {
    let out = output_with_stdin(
        Command::new(tool("promtool")).args(["check", "metrics"]),
        text,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n---\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_runs_and_promtool_passes_the_exposition() {
    let db = support::db::sqlite();
    let server = TestServer::start(&db.url, |a| {
        a.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let maddr = server.running.as_ref().unwrap().metrics_addr.unwrap();
    let (_, token) = server.student("ann").await;
    let mut c = server.connect(&token).await;
    save(&mut c, "ask.py", ASK, None).await;
    ask_run(&mut c, "Ada").await;

    let http = reqwest::Client::new();
    let scrape = || async {
        let r = http
            .get(format!("http://{maddr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        r.text().await.unwrap()
    };
    // The run's end is counted when it is recorded: wait (bounded) for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape().await;
        if sample(&text, "campus_runs_ended_total{reason=\"exited\"}").is_some() {
            break text;
        }
        assert!(Instant::now() < deadline, "no run end counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        sample(&text, "campus_runs_started_total").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "campus_run_duration_seconds_count").unwrap() >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "campus_connections{kind=\"websocket\"}"),
        Some(1.0),
        "{text}"
    );
    // The run printed: its first output was timed; the student's messages
    // (save, run, answer) and the server's (replies, output frames) counted.
    assert!(
        sample(&text, "campus_run_first_output_seconds_count").unwrap() >= 1.0,
        "{text}"
    );
    assert!(sample(&text, "campus_ws_messages_received_total").unwrap() >= 3.0);
    assert!(sample(&text, "campus_ws_messages_sent_total").unwrap() >= 3.0);
    assert!(sample(&text, "campus_sandbox_slots").unwrap() >= 1.0);
    assert_eq!(sample(&text, "campus_database_up"), Some(1.0));
    assert_eq!(sample(&text, "campus_grading_queue_depth"), Some(0.0));
    assert!(sample(&text, "campus_data_dir_free_bytes").unwrap() > 0.0);
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(sample(&text, "process_open_fds").unwrap() > 0.0);
    assert!(
        !text.contains("ann"),
        "no per-student labels or values: {text}"
    );
    promtool_check_metrics(&text);

    // Debian's Prometheus scrapes the listener every second.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: campus\n    static_configs:\n      - targets: ['{maddr}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Server(
        Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = |q: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query("up{job=\"campus\"}").await;
        let runs = query("campus_runs_started_total").await;
        if up == Some(1.0) && runs.is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape Campus: up={up:?} runs={runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The main listener: admins only.
    let main = server.url("/metrics");
    assert_eq!(http.get(&main).send().await.unwrap().status(), 401);
    let r = http.get(&main).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "forbidden", "{body}");
    server
        .add_user("root-admin", "a-long-password-1", Role::Admin)
        .await;
    let admin = server.login("root-admin", "a-long-password-1").await;
    let r = http.get(&main).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("campus_runs_started_total"));
    drop(c);
    server.stop().await;
}

#[test]
fn the_shipped_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new(tool("promtool"))
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
