//! `wsbench courses`: a class opening the course page at the start of a
//! lecture. N students (300 by default) are enrolled in one course with a
//! released section of material; all connect, then at once each opens the
//! course (`course_open`) and lists its material (`course_list_files`).
//! Reported: the latency of each (p50/p99), the catalog's database loads
//! during the burst (from `/readyz`: the queries the burst cost), and, as the
//! baseline measured in the same run, the same students listing their own
//! workspace at once (`list`, a directory read per student).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use campus_protocol::{ClientMsg, CourseMsg, CourseRequest, FileMsg, FileRequest, ServerMsg};
use serde::Serialize;

use crate::client::{login, Client};
use crate::server::ServerProcess;
use crate::stats::{self, summarize, Summary};

const PASSWORD: &str = "bench-password-1";
const SLUG: &str = "cs101";

/// What the run found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Students in the burst.
    pub students: usize,
    /// `course_open`, every student at once.
    pub course_open: Summary,
    /// `course_list_files` right after it.
    pub course_list_files: Summary,
    /// Baseline: each student's own workspace `list`, every student at once.
    pub workspace_list: Summary,
    /// Catalog loads from the database during the burst (each is one
    /// transaction of five reads).
    pub catalog_loads_during_burst: u64,
    /// Catalog loads from server start to the end.
    pub catalog_loads_total: u64,
}

/// Run the `campus` CLI next to the server (same data dir).
pub(crate) fn cli(
    server: &ServerProcess,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<()> {
    let mut child = Command::new(&server.bin)
        .args(args)
        .env("CAMPUS_DATA_DIR", server.data_dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "campus {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn catalog_loads(http: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let v: serde_json::Value = http
        .get(format!("{url}/readyz"))
        .send()
        .await?
        .json()
        .await?;
    v["courses"]["catalog_loads"]
        .as_u64()
        .context("readyz has no courses.catalog_loads")
}

/// Run the benchmark.
pub async fn bench(students: usize, json: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let server = ServerProcess::start(&[
        ("CAMPUS_FILE_OPS_PER_MIN", "1000000".into()),
        ("CAMPUS_WS_MESSAGES_PER_MIN", "1000000".into()),
        ("CAMPUS_LOGIN_ATTEMPTS", "100000".into()),
    ])
    .await?;
    let mut names: Vec<String> = (0..students.max(1)).map(|i| format!("s{i:04}")).collect();
    names.push("prof".into());
    eprintln!("creating {} accounts…", names.len());
    server.add_users(&names, PASSWORD)?;
    names.pop();
    cli(
        &server,
        &[
            "course",
            "create",
            "--slug",
            SLUG,
            "--title",
            "Bench",
            "--professor",
            "prof",
        ],
        None,
    )?;
    cli(
        &server,
        &["course", "import-roster", SLUG, "-"],
        Some(&names.join("\n")),
    )?;
    cli(&server, &["course", "publish", SLUG, "week1"], None)?;
    let http = reqwest::Client::new();
    let prof = login(&http, &server.url, "prof", PASSWORD).await?;
    for i in 0..20 {
        let r = http
            .put(format!(
                "{}/api/courses/{SLUG}/files/week1/file{i:02}.py",
                server.url
            ))
            .bearer_auth(&prof)
            .body(format!("print({i})\n"))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("upload: {}", r.status());
        }
    }
    eprintln!("connecting {} students…", names.len());
    let mut clients = Vec::new();
    for name in &names {
        let token = login(&http, &server.url, name, PASSWORD).await?;
        clients.push(Client::connect(&server.url, &token).await?);
    }
    // Let the CLI's changes be polled in (2 s), then start from a warm cache.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = catalog_loads(&http, &server.url).await?;

    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for mut c in clients {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let id = c.id();
            let t = Instant::now();
            let open = c
                .request(
                    id,
                    &ClientMsg::Courses(CourseRequest::CourseOpen {
                        id: Some(id),
                        course: SLUG.into(),
                    }),
                )
                .await?;
            let t_open = t.elapsed();
            let ServerMsg::Courses(CourseMsg::Course { course, .. }) = open else {
                bail!("course_open: {open:?}");
            };
            if course.sections.len() != 1 {
                bail!("expected one open section, got {}", course.sections.len());
            }
            let id = c.id();
            let t = Instant::now();
            let files = c
                .request(
                    id,
                    &ClientMsg::Courses(CourseRequest::CourseListFiles {
                        id: Some(id),
                        course: SLUG.into(),
                        path: String::new(),
                    }),
                )
                .await?;
            let t_list = t.elapsed();
            let ServerMsg::Courses(CourseMsg::CourseListing { entries, .. }) = files else {
                bail!("course_list_files: {files:?}");
            };
            if entries.len() != 21 {
                bail!("expected 21 entries, got {}", entries.len());
            }
            Ok::<_, anyhow::Error>((c, t_open, t_list))
        }));
    }
    let (mut opens, mut lists, mut clients) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        let (c, o, l) = t.await??;
        opens.push(o);
        lists.push(l);
        clients.push(c);
    }
    let after = catalog_loads(&http, &server.url).await?;

    // Baseline, same run: everyone lists their own workspace at once.
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for mut c in clients {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let id = c.id();
            let t = Instant::now();
            let m = c
                .request(
                    id,
                    &ClientMsg::Files(FileRequest::List {
                        id: Some(id),
                        path: String::new(),
                        recursive: true,
                        cursor: None,
                        limit: None,
                    }),
                )
                .await?;
            let elapsed = t.elapsed();
            if !matches!(m, ServerMsg::Files(FileMsg::Listing { .. })) {
                bail!("list: {m:?}");
            }
            c.close().await;
            Ok::<_, anyhow::Error>(elapsed)
        }));
    }
    let mut baseline = Vec::new();
    for t in tasks {
        baseline.push(t.await??);
    }
    let report = Report {
        students: names.len(),
        course_open: summarize(&opens),
        course_list_files: summarize(&lists),
        workspace_list: summarize(&baseline),
        catalog_loads_during_burst: after - before,
        catalog_loads_total: catalog_loads(&http, &server.url).await?,
    };
    println!("{}", stats::HEADER);
    println!(
        "{}",
        stats::row("course_open (all at once)", &report.course_open)
    );
    println!(
        "{}",
        stats::row("course_list_files (all at once)", &report.course_list_files)
    );
    println!(
        "{}",
        stats::row(
            "baseline: own workspace list (all at once)",
            &report.workspace_list
        )
    );
    println!(
        "catalog loads during the burst: {} (since start: {})",
        report.catalog_loads_during_burst, report.catalog_loads_total
    );
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
