//! `campus backup` while a class is saving, then `campus restore` into a
//! fresh data dir and database, on SQLite (the README's default data dir
//! database) and PostgreSQL (`pg_dump`/`pg_restore`): a server started on
//! the restored copy has every account (the students log in with their
//! passwords) and every save acknowledged before the backup started, byte
//! for byte. A symbolic link a student's program left in its workspace is
//! copied as a link, never followed (the backup does not contain the file
//! it points to); a fifo is left out. A restore into a data dir that is not
//! empty, and of a backup without its manifest, are refused.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campus_protocol::{ClientMsg, FileMsg, FileRequest, ServerMsg};
use support::class::save;
use support::db::test_databases;
use support::process::{
    add_student, campus, connect, free_port, login, wait_listening, GroupCleanup, Server,
};
use tokio::time::Instant;

const PW: &str = "backup-pass-123";
const STUDENTS: usize = 6;

/// One acknowledged save: (student, path, content, when the ack came).
type Ack = (usize, String, String, Instant);

/// Every file named `name` under `dir` (not following links).
fn find(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            find(&p, name, out);
        } else if e.file_name() == name {
            out.push(p);
        }
    }
}

async fn read(c: &mut support::server::WsClient, path: &str) -> Option<String> {
    let p = path.to_string();
    match c
        .request(move |id| ClientMsg::Files(FileRequest::Read { id, path: p }))
        .await
    {
        ServerMsg::Files(FileMsg::File { content, .. }) => Some(content),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_a_class_restores_every_acknowledged_save() {
    let dbs = test_databases().await;
    // A second, empty PostgreSQL database to restore into.
    let targets = test_databases().await;
    for db in &dbs {
        let backend = db.backend;
        let pg_url = (backend == "postgres").then(|| db.url.clone());
        let target_url = (backend == "postgres").then(|| {
            targets
                .iter()
                .find(|t| t.backend == "postgres")
                .unwrap()
                .url
                .clone()
        });
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let group = format!("campus-backup-{backend}-{}", std::process::id());
        let _cleanup = GroupCleanup(group.clone());
        let base = 700_000 + (std::process::id() % 5_000) * 16;
        let cmd = |dir: &Path, url: &Option<String>| {
            let mut c = campus(dir, &group, base);
            if let Some(u) = url {
                c.env("DATABASE_URL", u);
            }
            c
        };
        let names: Vec<String> = (0..STUDENTS).map(|i| format!("s{i}")).collect();
        for n in &names {
            add_student(&mut cmd(&data, &pg_url), n, PW);
        }
        let port = free_port();
        let server = Server(
            cmd(&data, &pg_url)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_listening(port).await;

        // The class: each student saves a new file every few ms, and
        // remembers when each save was acknowledged.
        let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let mut savers = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let token = login(port, n, PW).await;
            let mut c = connect(port, &token).await;
            let (acked, stop) = (Arc::clone(&acked), stop.clone());
            savers.push(tokio::spawn(async move {
                let mut k = 0;
                while !stop.is_cancelled() {
                    let path = format!("work/f{k}.txt");
                    let content = format!("student {i}, save {k}\n{}", "x".repeat(k * 7 % 3000));
                    save(&mut c, &path, &content, None).await;
                    acked
                        .lock()
                        .unwrap()
                        .push((i, path, content, Instant::now()));
                    k += 1;
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        // What a student's program can leave in its workspace: a link to a
        // file outside, and a fifo.
        let mut found = Vec::new();
        find(&data.join("workspaces"), "f0.txt", &mut found);
        let ws_dir = found[0].parent().unwrap().parent().unwrap().to_path_buf();
        std::os::unix::fs::symlink("/etc/shadow", ws_dir.join("leak")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(ws_dir.join("pipe"))
            .status()
            .unwrap();
        assert!(made.success());

        let backup = root.path().join("backup");
        let started = Instant::now();
        let out = {
            let mut c = cmd(&data, &pg_url);
            let b = backup.clone();
            tokio::task::spawn_blocking(move || c.arg("backup").arg(&b).output().unwrap())
                .await
                .unwrap()
        };
        assert!(
            out.status.success(),
            "[{backend}] backup: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        for s in savers {
            s.await.unwrap();
        }
        drop(server);
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        let before: Vec<_> = acked.iter().filter(|a| a.3 < started).collect();
        let during = acked.len() - before.len();
        assert!(
            before.len() >= STUDENTS * 5 && during > 0,
            "[{backend}] the class saved {} files before and {during} during the backup",
            before.len()
        );

        // The link is a link in the backup, the fifo is not there.
        let mut links = Vec::new();
        find(&backup.join("data"), "leak", &mut links);
        assert_eq!(links.len(), 1, "[{backend}]");
        let meta = std::fs::symlink_metadata(&links[0]).unwrap();
        assert!(meta.file_type().is_symlink(), "[{backend}] {meta:?}");
        let mut pipes = Vec::new();
        find(&backup.join("data"), "pipe", &mut pipes);
        assert!(pipes.is_empty(), "[{backend}] {pipes:?}");

        // Refusals: into a data dir that is not empty; a backup without its manifest.
        let busy = root.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("x"), "x").unwrap();
        let out = cmd(&busy, &target_url)
            .arg("restore")
            .arg(&backup)
            .output()
            .unwrap();
        assert!(!out.status.success(), "[{backend}]");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
        let partial = root.path().join("partial");
        std::fs::create_dir(&partial).unwrap();
        let fresh0 = root.path().join("fresh0");
        std::fs::create_dir(&fresh0).unwrap();
        let out = cmd(&fresh0, &target_url)
            .arg("restore")
            .arg(&partial)
            .output()
            .unwrap();
        assert!(!out.status.success(), "[{backend}]");
        assert!(String::from_utf8_lossy(&out.stderr).contains("campus-backup.json"));

        // Restore into a fresh data dir (and database), start a server on it.
        // Empty (the command runs in it); a missing one is created too.
        let fresh = root.path().join("restored");
        std::fs::create_dir(&fresh).unwrap();
        let out = cmd(&fresh, &target_url)
            .arg("restore")
            .arg(&backup)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "[{backend}] restore: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let _restored = Server(
            cmd(&fresh, &target_url)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_listening(port).await;
        let mut clients = Vec::new();
        for n in &names {
            let token = login(port, n, PW).await;
            clients.push(connect(port, &token).await);
        }
        for (i, path, content, _) in &before {
            let got = read(&mut clients[*i], path).await;
            assert_eq!(
                got.as_deref(),
                Some(content.as_str()),
                "[{backend}] s{i}/{path} acknowledged before the backup"
            );
        }
        let mut links = Vec::new();
        find(&fresh.join("workspaces"), "leak", &mut links);
        assert!(std::fs::symlink_metadata(&links[0])
            .unwrap()
            .file_type()
            .is_symlink());
        eprintln!(
            "[{backend}] {} saves before the backup restored; {during} during it",
            before.len()
        );
    }
}
