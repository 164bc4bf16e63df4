//! `campus backup DEST` and `campus restore SRC`: a consistent copy of a
//! data dir while the server runs, and putting one back into an empty data
//! dir.
//!
//! The database first: SQLite with `VACUUM INTO` (one read transaction, a
//! snapshot of one instant, the server keeps writing), PostgreSQL with the
//! server's own `pg_dump` (custom format; refused when the installed
//! `pg_dump` is older than the server). Then the files: every workspace,
//! its history and trash, the course trees, the grading store, the journal
//! and the keys. Files are never modified in place (a save writes a
//! temporary and renames it over), so each copied file is one complete
//! version; a file that vanishes mid-walk is skipped, temporaries are
//! left out. Every save acknowledged before the backup started is in it
//! (the files are copied after that instant); a save during it may or may
//! not be. Symbolic links are copied as links and never followed (student
//! code makes them), and nothing but regular files, directories and links
//! is copied. Owners and modes are kept. The manifest
//! (`campus-backup.json`) is written last, after the copy is flushed to the
//! device: a backup without it is incomplete and `restore` refuses it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{lchown, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sqlx::Connection;

use crate::config::StorageArgs;
use crate::store::now_ms;

/// The manifest's name inside a backup.
pub const MANIFEST: &str = "campus-backup.json";
/// The SQLite database's name inside a backup.
const SQLITE_FILE: &str = "campus.db";
/// The PostgreSQL dump's name inside a backup.
const PG_DUMP_FILE: &str = "campus.pgdump";
/// The data dir's files inside a backup.
const FILES_DIR: &str = "data";
/// The format this code writes and reads.
const FORMAT: u32 = 1;

/// What a backup holds (written last, as its completion mark).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Backup format.
    pub format: u32,
    /// The Campus version that made it.
    pub campus_version: String,
    /// When it started, ms since the epoch: every save acknowledged before is in it.
    pub started_at_ms: i64,
    /// When it was complete.
    pub finished_at_ms: i64,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Files, directories and links copied.
    pub entries: u64,
    /// Bytes of the files copied.
    pub bytes: u64,
    /// Entries left out (sockets, fifos, devices).
    pub skipped: u64,
}

/// Make a backup of `storage`'s data dir and database into `dest` (which must
/// not exist, or be empty).
pub async fn backup(storage: &StorageArgs, dest: &Path) -> anyhow::Result<Manifest> {
    let data_dir = &storage.data_dir;
    if !data_dir.is_dir() {
        bail!("the data dir {} does not exist", data_dir.display());
    }
    let dest = crate::config::absolute_in(&std::env::current_dir()?, dest);
    if dest.starts_with(data_dir) {
        bail!("the backup cannot go inside the data dir it copies");
    }
    prepare_empty(&dest)?;
    let started_at_ms = now_ms();
    let url = storage.effective_database_url();
    let database = if storage.sqlite_file().is_some() {
        sqlite_snapshot(&url, &dest.join(SQLITE_FILE)).await?;
        "sqlite"
    } else if url.starts_with("postgres") {
        pg_dump(&url, &dest.join(PG_DUMP_FILE)).await?;
        "postgres"
    } else {
        bail!("cannot back up the database at {url}: not SQLite on disk nor PostgreSQL");
    };
    let skip = database_files(storage);
    let (src, to) = (data_dir.clone(), dest.join(FILES_DIR));
    let counts = tokio::task::spawn_blocking(move || copy_tree(&src, &to, &skip))
        .await
        .context("the copy task failed")??;
    let dir = File::open(&dest)?;
    rustix::fs::syncfs(&dir).context("cannot flush the backup to its device")?;
    let manifest = Manifest {
        format: FORMAT,
        campus_version: env!("CARGO_PKG_VERSION").into(),
        started_at_ms,
        finished_at_ms: now_ms(),
        database: database.into(),
        entries: counts.entries,
        bytes: counts.bytes,
        skipped: counts.skipped,
    };
    crate::server::write_private(&dest.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
}

/// Put the backup at `src` into `storage`'s data dir (which must not exist,
/// or be empty) and database (a SQLite file that must not exist yet, or an
/// empty PostgreSQL database). The server is started on it afterwards, as
/// usual; its migrations bring an older backup's schema up to date.
pub async fn restore(storage: &StorageArgs, src: &Path) -> anyhow::Result<Manifest> {
    let manifest: Manifest = {
        let path = src.join(MANIFEST);
        let text = fs::read(&path).with_context(|| {
            format!(
                "{} has no {MANIFEST}: not a backup, or one that did not finish",
                src.display()
            )
        })?;
        serde_json::from_slice(&text).with_context(|| format!("{} is not valid", path.display()))?
    };
    if manifest.format != FORMAT {
        bail!(
            "backup format {} is not supported (this campus reads {FORMAT})",
            manifest.format
        );
    }
    let data_dir = storage.data_dir.clone();
    prepare_empty(&data_dir)?;
    let url = storage.effective_database_url();
    match (manifest.database.as_str(), storage.sqlite_file()) {
        ("sqlite", Some(file)) => {
            if file.exists() {
                bail!(
                    "{} exists: restore goes into a new database only",
                    file.display()
                );
            }
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent)?;
            }
            let tmp = file.with_extension("db.restoring");
            fs::copy(src.join(SQLITE_FILE), &tmp)?;
            File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &file)?;
        }
        ("postgres", None) if url.starts_with("postgres") => {
            pg_restore(&url, &src.join(PG_DUMP_FILE)).await?
        }
        (kind, _) => bail!(
            "this backup holds a {kind} database, and DATABASE_URL is {}",
            if storage.sqlite_file().is_some() {
                "SQLite"
            } else {
                "not SQLite"
            }
        ),
    }
    let (from, to) = (src.join(FILES_DIR), data_dir.clone());
    tokio::task::spawn_blocking(move || copy_tree(&from, &to, &[]))
        .await
        .context("the copy task failed")??;
    let dir = File::open(&data_dir)?;
    rustix::fs::syncfs(&dir).context("cannot flush the data dir to its device")?;
    Ok(manifest)
}

/// Create `dir` (and its parents), or accept it when it exists and is empty.
fn prepare_empty(dir: &Path) -> anyhow::Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{} is not empty", dir.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// The SQLite files inside the data dir that the file copy leaves out (the
/// database is copied by `VACUUM INTO`, consistently).
fn database_files(storage: &StorageArgs) -> Vec<PathBuf> {
    let Some(file) = storage.sqlite_file() else {
        return Vec::new();
    };
    let name = file.as_os_str().to_string_lossy().into_owned();
    ["", "-wal", "-shm", "-journal", ".migrate-lock"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{name}{suffix}")))
        .collect()
}

async fn sqlite_snapshot(url: &str, to: &Path) -> anyhow::Result<()> {
    use std::str::FromStr;
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
        .busy_timeout(std::time::Duration::from_secs(30))
        .create_if_missing(false);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .context("cannot open the SQLite database")?;
    sqlx::query("VACUUM INTO ?")
        .bind(to.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .context("VACUUM INTO failed")?;
    conn.close().await?;
    Ok(())
}

/// The major version of the PostgreSQL server at `url`.
async fn pg_server_major(url: &str) -> anyhow::Result<u32> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("cannot connect to PostgreSQL")?;
    let (num,): (String,) = sqlx::query_as("SHOW server_version_num")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(num.trim().parse::<u32>()? / 10_000)
}

/// The major version of a PostgreSQL client tool (`pg_dump --version`).
fn tool_major(tool: &str) -> anyhow::Result<u32> {
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .with_context(|| format!("{tool} is not installed (Debian: postgresql-client)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)"
    text.split_whitespace()
        .find_map(|w| w.split('.').next()?.parse::<u32>().ok())
        .with_context(|| format!("cannot read the version of {tool}: {text}"))
}

/// `tool` can handle a server of `server` major version: the same or newer.
async fn check_pg_tool(tool: &str, url: &str) -> anyhow::Result<()> {
    let (server, client) = (pg_server_major(url).await?, tool_major(tool)?);
    if client < server {
        bail!(
            "{tool} {client} cannot work with a PostgreSQL {server} server: install postgresql-client-{server} (or newer)"
        );
    }
    Ok(())
}

async fn pg_dump(url: &str, to: &Path) -> anyhow::Result<()> {
    check_pg_tool("pg_dump", url).await?;
    let out = tokio::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(to)
        .arg(format!("--dbname={url}"))
        .output()
        .await?;
    if !out.status.success() {
        bail!("pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

async fn pg_restore(url: &str, dump: &Path) -> anyhow::Result<()> {
    check_pg_tool("pg_restore", url).await?;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    if tables > 0 {
        bail!("the PostgreSQL database is not empty ({tables} tables): restore goes into a new database only");
    }
    let out = tokio::process::Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error"])
        .arg(format!("--dbname={url}"))
        .arg(dump)
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "pg_restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// What a copy did.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    entries: u64,
    bytes: u64,
    skipped: u64,
}

/// Copy the tree at `src` into `dst` (created), leaving out `skip` (absolute
/// paths), the workspaces' temporaries and anything but files, directories
/// and links; links are copied, never followed. Owners and modes are kept.
fn copy_tree(src: &Path, dst: &Path, skip: &[PathBuf]) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    fs::create_dir_all(dst)?;
    // Directories' modes are set after their contents (a read-only one
    // would refuse them otherwise).
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((from, to)) = stack.pop() {
        let entries = match fs::read_dir(&from) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", from.display())),
        };
        for entry in entries {
            let entry = entry?;
            let (path, name) = (entry.path(), entry.file_name());
            if skip.contains(&path)
                || name
                    .as_encoded_bytes()
                    .starts_with(workspace_fs::TEMP_PREFIX.as_bytes())
            {
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Deleted since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
            };
            let target = to.join(&name);
            let kind = meta.file_type();
            if kind.is_dir() {
                fs::create_dir(&target)?;
                stack.push((path, target.clone()));
                dirs.push((target, meta));
            } else if kind.is_symlink() {
                let link = match fs::read_link(&path) {
                    Ok(l) => l,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                std::os::unix::fs::symlink(&link, &target)?;
                lchown(&target, Some(meta.uid()), Some(meta.gid()))?;
            } else if kind.is_file() {
                match copy_file(&path, &target, &meta) {
                    Ok(n) => counts.bytes += n,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot copy {}", path.display()))
                    }
                }
            } else {
                counts.skipped += 1;
                continue;
            }
            counts.entries += 1;
        }
    }
    for (dir, meta) in dirs.iter().rev() {
        lchown(dir, Some(meta.uid()), Some(meta.gid()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(counts)
}

/// Copy one regular file (opened without following a link: one swapped in
/// since the walk saw a file is refused, not followed).
fn copy_file(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<u64> {
    let mut src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)?;
    if !src.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    let n = io::copy(&mut src, &mut dst)?;
    drop(dst);
    lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    Ok(n)
}
