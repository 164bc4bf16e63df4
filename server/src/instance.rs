//! This server instance's identity (docs/security.md, "Instances"): a random
//! id created on first start and kept in `<data dir>/instance-id`. It names
//! the instance's cgroup group (`<CAMPUS_CGROUP_GROUP>-<id>`), so the start-up
//! cleanup of sandboxes left by a crash removes only this instance's, and it
//! is recorded with every run, so the start-up repair of runs left open
//! closes only this instance's runs. Two servers with different data dirs
//! never touch each other's runs, on one host or one database.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// File holding the id, in the data dir.
pub const FILE: &str = "instance-id";

/// Why the instance id cannot be read or created.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Reading, writing or linking the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The file exists but does not hold an id this server wrote.
    #[error("{path} does not hold an instance id ({found:?}); restore it or remove it to create a new identity (runs left open by the old one are then not repaired)")]
    Corrupt {
        /// The file.
        path: String,
        /// What it holds (cut short).
        found: String,
    },
}

/// An id is 16 lowercase hex digits.
fn valid(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The instance id kept in `data_dir`, created on first start. Creation is
/// atomic and race-free: the id is written to a private temporary file, synced,
/// and hard-linked into place, so a concurrent start (or a crash half-way)
/// can never leave a partial file, and of two racing starts one id wins and
/// both use it.
pub fn load_or_create(data_dir: &Path) -> Result<String, InstanceError> {
    let path = data_dir.join(FILE);
    let shown = path.display().to_string();
    let io_err = |source| InstanceError::Io {
        path: shown.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(s) => return check(s, &shown),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let id = hex::encode(rand::random::<[u8; 8]>());
    let tmp = data_dir.join(format!(".{FILE}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()?;
        match fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = fs::remove_file(&tmp);
    match written.map_err(io_err)? {
        true => {
            // The new name must survive a power loss too.
            if let Ok(dir) = fs::File::open(data_dir) {
                let _ = dir.sync_all();
            }
            tracing::info!(instance = %id, path = %shown, "first start: created this server's instance id");
            Ok(id)
        }
        // Another start won the race: use its id.
        false => check(fs::read_to_string(&path).map_err(io_err)?, &shown),
    }
}

fn check(s: String, shown: &str) -> Result<String, InstanceError> {
    let id = s.trim();
    if valid(id) {
        Ok(id.to_string())
    } else {
        Err(InstanceError::Corrupt {
            path: shown.to_string(),
            found: id.chars().take(40).collect(),
        })
    }
}

/// The cgroup group of this instance's runs: `<group>-<id>`.
pub fn cgroup_group(group: &str, id: &str) -> String {
    format!("{group}-{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        assert!(valid(&a), "{a}");
        assert_eq!(load_or_create(dir.path()).unwrap(), a);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), a);
        // No temporaries left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
    }

    #[test]
    fn racing_starts_agree() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(dir.path()).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(InstanceError::Corrupt { .. })
        ));
    }
}
