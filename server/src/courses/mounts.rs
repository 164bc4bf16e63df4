//! What a student's run of course material mounts: each open section's
//! folder read-only at `/course/<slug>/<folder>`, or — when per-file rules
//! hide something in it — only its visible files and folders, one mount
//! each, so a hidden file is not in the run's file system at all (not
//! merely unreadable). Blocking: reads the material's directories.

use std::path::Path;

use campus_protocol::ErrorCode;

use super::visibility::Hidden;
use crate::error::AppError;
use crate::execution::ReadOnlyTree;

/// Most read-only mounts one run gets (a mount is cheap, thousands are not).
pub const MAX_MOUNTS: usize = 64;

/// The mounts of a student's run: `open` is each open section's folder with
/// the paths (inside it) hidden from this student. The script's own section
/// (`script_folder`) comes first; another section that would pass
/// [`MAX_MOUNTS`] is left out of the run rather than failing it.
pub fn student_mounts(
    root: &Path,
    slug: &str,
    script_folder: &str,
    open: &[(String, Vec<String>)],
) -> Result<Vec<ReadOnlyTree>, AppError> {
    let mut out = Vec::new();
    let mine = open.iter().filter(|(f, _)| f == script_folder);
    let others = open.iter().filter(|(f, _)| f != script_folder);
    for (folder, hidden) in mine.chain(others) {
        let base = format!("{slug}/{folder}");
        // A folder stored by some other way than the server's checks (an old
        // CLI, a hand edit) is skipped, never mounted.
        if !crate::sandbox::valid_mount_name(&base) || !root.join(folder).is_dir() {
            continue;
        }
        let hidden = Hidden(hidden.iter().map(String::as_str).collect());
        if hidden.0.is_empty() {
            out.push(ReadOnlyTree {
                host: root.join(folder),
                name: base,
            });
            continue;
        }
        let before = out.len();
        match walk(&root.join(folder), "", &base, &hidden, &mut out) {
            Ok(()) => {}
            Err(e) if folder == script_folder => return Err(e),
            Err(_) => {
                tracing::info!(course = slug, folder = %folder, "section left out of a run: too many separate mounts");
                out.truncate(before);
            }
        }
    }
    Ok(out)
}

fn too_many() -> AppError {
    AppError::new(
        ErrorCode::TooLarge,
        format!(
            "this course's open material needs more than {MAX_MOUNTS} separate mounts \
             (files released one by one); ask your professor to group them in folders"
        ),
    )
}

/// Mount what `hidden` shows of `dir/rel`, entering only folders that hold something hidden.
fn walk(
    dir: &Path,
    rel: &str,
    base: &str,
    hidden: &Hidden<'_>,
    out: &mut Vec<ReadOnlyTree>,
) -> Result<(), AppError> {
    let here = if rel.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(rel)
    };
    let mut names: Vec<String> = std::fs::read_dir(&here)
        .map_err(AppError::internal)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // Temporaries and names the workspace rules refuse are never material.
        if workspace_fs::validate_path(&child).is_err() || !hidden.shows(&child) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(dir.join(&child)) else {
            continue;
        };
        if meta.is_dir() && hidden.inside(&child) {
            walk(dir, &child, base, hidden, out)?;
        } else if meta.is_dir() || meta.is_file() {
            if out.len() >= MAX_MOUNTS {
                return Err(too_many());
            }
            out.push(ReadOnlyTree {
                host: dir.join(&child),
                name: format!("{base}/{child}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_shown_is_mounted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        for f in [
            "w1/demo.py",
            "w1/test.py",
            "w1/data/a.csv",
            "w1/data/key/k.txt",
            "w2/x.py",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "x").expect("write");
        }
        let open = vec![
            (
                "w1".to_string(),
                vec!["test.py".to_string(), "data/key".to_string()],
            ),
            ("w2".to_string(), vec![]),
        ];
        let mounts = student_mounts(root, "cs", "w2", &open).expect("mounts");
        let names: Vec<&str> = mounts.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["cs/w2", "cs/w1/data/a.csv", "cs/w1/demo.py"],
            "the script's section first"
        );
        for m in &mounts {
            assert!(crate::sandbox::valid_mount_name(&m.name), "{}", m.name);
        }
    }

    #[test]
    fn a_section_with_too_many_mounts_fails_only_its_own_runs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        for i in 0..=MAX_MOUNTS + 1 {
            let p = root.join(format!("big/f{i:03}.py"));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "x").expect("write");
        }
        std::fs::create_dir_all(root.join("small")).expect("mkdir");
        let open = vec![
            ("big".to_string(), vec!["f000.py".to_string()]),
            ("small".to_string(), vec![]),
        ];
        let names = |m: Vec<ReadOnlyTree>| m.into_iter().map(|t| t.name).collect::<Vec<_>>();
        let small = student_mounts(root, "cs", "small", &open).expect("the other section runs");
        assert_eq!(names(small), ["cs/small"]);
        let big = student_mounts(root, "cs", "big", &open).expect_err("its own section");
        assert_eq!(big.code, ErrorCode::TooLarge);
    }
}
