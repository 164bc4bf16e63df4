//! Grading: students' submissions run against the professor's tests in the
//! sandbox, with integrity by construction (docs/grading.md).
//!
//! - [`pair`]: one grading — the harness (tests) and the student's code in
//!   two sandboxes under two uids, the server relaying plain data between
//!   them and alone deciding what a result is.
//! - [`snapshot`]: a submission's files, copied read-only and hashed.
//! - [`service`]: the requests, the durable queue and its workers, live
//!   progress, gradebook and re-grade.

pub mod pair;
pub mod service;
pub mod snapshot;

use std::path::{Path, PathBuf};

pub use pair::{
    GradeError, GradeEvent, GradeReport, GradeSpec, Grader, Outcome, Programs, TestRun,
};
pub use service::{GradingConfig, GradingService};

/// The harness: the trusted side of a grading.
const HARNESS_PY: &str = include_str!("harness.py");
/// The driver: serves the harness's calls in the student's sandbox.
const DRIVER_PY: &str = include_str!("driver.py");

/// Write the harness and the driver under `dir` (world-readable, as both
/// sandboxes' uids must read them; nothing in them is secret) and say where
/// they are. Rewritten at every start, so an upgrade takes effect.
pub fn install_programs(dir: &Path, python: PathBuf) -> std::io::Result<Programs> {
    use std::os::unix::fs::PermissionsExt;
    let harness_dir = dir.join("harness");
    let driver_dir = dir.join("driver");
    for (d, name, text) in [
        (&harness_dir, "harness.py", HARNESS_PY),
        (&driver_dir, "driver.py", DRIVER_PY),
    ] {
        std::fs::create_dir_all(d)?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        let tmp = d.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, d.join(name))?;
    }
    Ok(Programs {
        harness_dir,
        driver_dir,
        python,
    })
}

/// The module names a student's files offer (`solution.py` → `solution`):
/// the top level of `dir`, valid Python identifiers only.
pub fn student_modules(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".py")?;
            let ok = !stem.is_empty()
                && !stem.starts_with(|c: char| c.is_ascii_digit())
                && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            (ok && e.file_type().ok()?.is_file()).then(|| stem.to_string())
        })
        .collect();
    names.sort();
    names
}
