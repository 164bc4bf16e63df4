//! The run's filesystem view, built inside the new mount namespace by the
//! reaper (PID 1 of the new pid namespace) before it forks the program:
//!
//! ```text
//! /                 tmpfs, read-only after setup
//! /usr /bin /lib…   read-only binds of the host's (symlinks recreated as symlinks)
//! /etc              generated passwd/group/hosts + read-only ld.so.cache, localtime, python3.*
//! /home/student     the workspace, read-write, or read-only (a snapshot) (nosuid, nodev)
//! /course/NAME      course material, read-only (bind remounted MS_RDONLY, no submounts)
//! /scratch          a per-execution host directory, read-write, when asked for
//! /tmp, /dev/shm    size-limited tmpfs, mode 1777
//! /dev              null zero full random urandom tty, a private devpts
//! /proc             fresh procfs of the new pid namespace (hidepid=2)
//! ```
//!
//! The new root is a tmpfs mounted over the host's /tmp (hidden from the
//! sandbox); sources under /tmp stay reachable because we open them (O_PATH)
//! first and bind from /proc/self/fd/N.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Where the new root is assembled (any existing directory works; see module doc).
const STAGING: &str = "/tmp";
/// Host directories bound read-only when they exist.
const SYSTEM_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Host /etc entries that programs need and that hold no secrets.
const ETC_BINDS: [&str; 3] = ["ld.so.cache", "localtime", "alternatives"];
/// Device nodes bound from the host.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// What the run's root contains.
pub(super) struct RootPlan<'a> {
    /// Host workspace (at /home/student).
    pub workspace: &'a Path,
    /// Mount the workspace read-only.
    pub workspace_read_only: bool,
    /// (host path, name under /course), read-only.
    pub read_only: &'a [(PathBuf, String)],
    /// Host scratch directory (read-write at /scratch).
    pub scratch: Option<&'a Path>,
    /// Size of /tmp, bytes.
    pub tmp_bytes: u64,
    /// The student's uid/gid (for /etc/passwd).
    pub uid: u32,
    /// The student's gid.
    pub gid: u32,
}

type R = Result<(), String>;

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Build the new root, pivot into it, mount /proc. Must run in a fresh mount
/// namespace, as PID 1 of a fresh pid namespace.
pub(super) fn enter_new_root(plan: &RootPlan<'_>) -> R {
    // Nothing we do may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| err("make private", Path::new("/"), e))?;

    // Pin the sources before the staging tmpfs may hide them.
    let ws = open_path(plan.workspace, true)?;
    let mut courses = Vec::new();
    for (host, name) in plan.read_only {
        if !super::valid_mount_name(name) {
            return Err(format!("invalid read-only mount name {name:?}"));
        }
        courses.push((open_path(host, false)?, name));
    }
    let scratch = plan.scratch.map(|p| open_path(p, true)).transpose()?;

    let root = Path::new(STAGING);
    mount_tmpfs(root, "size=1m,mode=0755", MsFlags::empty())?;

    for d in SYSTEM_DIRS {
        let host = Path::new("/").join(d);
        let Ok(meta) = fs::symlink_metadata(&host) else {
            continue;
        };
        let dst = root.join(d);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&host).map_err(|e| err("readlink", &host, e))?;
            symlink(&target, &dst).map_err(|e| err("symlink", &dst, e))?;
        } else if meta.is_dir() {
            mkdir(&dst)?;
            bind(&host, &dst, true)?;
        }
    }

    make_etc(root, plan)?;

    let home = root.join("home/student");
    fs::create_dir_all(&home).map_err(|e| err("mkdir", &home, e))?;
    if plan.workspace_read_only {
        bind_read_only_tree(&fd_path(&ws), &home)?;
    } else {
        bind(&fd_path(&ws), &home, false)?;
    }

    let course_root = root.join(super::READ_ONLY_ROOT.trim_start_matches('/'));
    if !courses.is_empty() {
        mkdir(&course_root)?;
    }
    for (file, name) in &courses {
        let dst = course_root.join(name);
        let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(true);
        if is_dir {
            mkdir(&dst)?;
        } else {
            File::create(&dst).map_err(|e| err("create", &dst, e))?;
        }
        bind_read_only_tree(&fd_path(file), &dst)?;
    }
    if let Some(scratch) = &scratch {
        let dst = root.join(super::SCRATCH_DIR.trim_start_matches('/'));
        mkdir(&dst)?;
        bind(&fd_path(scratch), &dst, false)?;
    }

    let tmp = root.join("tmp");
    mkdir(&tmp)?;
    mount_tmpfs(
        &tmp,
        &format!("size={},mode=1777", plan.tmp_bytes.max(4096)),
        MsFlags::empty(),
    )?;

    make_dev(root, plan.tmp_bytes)?;
    mkdir(&root.join("proc"))?;

    // pivot_root(".", ".") stacks the old root on top of the new one; detaching
    // "." then drops the old root (and the host /tmp it hid) entirely.
    nix::unistd::chdir(root).map_err(|e| err("chdir", root, e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", root, e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detach old root", root, e))?;
    nix::unistd::chdir("/").map_err(|e| err("chdir", Path::new("/"), e))?;

    // A procfs mounted from inside the new pid namespace shows only its processes.
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("hidepid=2"),
    )
    .map_err(|e| err("mount", Path::new("/proc"), e))?;

    remount(
        Path::new("/"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
}

/// open(O_PATH) a source so it stays reachable after being hidden.
fn open_path(path: &Path, dir: bool) -> Result<File, String> {
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if dir {
        flags |= libc::O_DIRECTORY;
    }
    OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| err("open", path, e))
}

fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

fn mkdir(p: &Path) -> R {
    fs::create_dir(p).map_err(|e| err("mkdir", p, e))
}

fn mount_tmpfs(dst: &Path, opts: &str, extra: MsFlags) -> R {
    mount(
        Some("tmpfs"),
        dst,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | extra,
        Some(opts),
    )
    .map_err(|e| err("mount tmpfs", dst, e))
}

/// Bind `src` on `dst`; always nosuid+nodev, read-only if asked.
fn bind(src: &Path, dst: &Path, read_only: bool) -> R {
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| err("bind", dst, e))?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    remount(dst, flags)
}

/// Bind a tree read-only for the program: a non-recursive bind (mounts
/// below `src` are not carried along, so none of them can be writable), then
/// a remount with MS_RDONLY at the mount level, checked with statvfs: every
/// write, create, rename, link or chmod through it fails with EROFS.
fn bind_read_only_tree(src: &Path, dst: &Path) -> R {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| err("bind", dst, e))?;
    remount(
        dst,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )?;
    let st = nix::sys::statvfs::statvfs(dst).map_err(|e| err("statvfs", dst, e))?;
    if !st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Err(err("read-only mount", dst, "still writable after remount"));
    }
    Ok(())
}

/// Change the per-mount flags of a mount (bind remount: the superblock is untouched).
fn remount(dst: &Path, flags: MsFlags) -> R {
    mount(
        None::<&str>,
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )
    .map_err(|e| err("remount", dst, e))
}

/// A generated /etc: the student and root in passwd/group, localhost, nothing secret.
fn make_etc(root: &Path, plan: &RootPlan<'_>) -> R {
    let etc = root.join("etc");
    mkdir(&etc)?;
    let files = [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                 student:x:{}:{}:student:/home/student:/bin/sh\n",
                plan.uid, plan.gid
            ),
        ),
        ("group", format!("root:x:0:\nstudent:x:{}:\n", plan.gid)),
        (
            "hosts",
            "127.0.0.1 localhost campus\n::1 localhost\n".to_string(),
        ),
        ("hostname", "campus\n".to_string()),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files\n".to_string(),
        ),
    ];
    for (name, text) in files {
        let p = etc.join(name);
        fs::write(&p, text).map_err(|e| err("write", &p, e))?;
    }
    let mut binds: Vec<String> = ETC_BINDS.iter().map(|s| s.to_string()).collect();
    // Debian's python3.X reads /etc/python3.X/sitecustomize.py.
    if let Ok(entries) = fs::read_dir("/etc") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("python3") {
                binds.push(name);
            }
        }
    }
    for name in binds {
        let host = Path::new("/etc").join(&name);
        let Ok(meta) = fs::metadata(&host) else {
            continue;
        };
        let dst = etc.join(&name);
        if meta.is_dir() {
            mkdir(&dst)?;
        } else {
            File::create(&dst).map_err(|e| err("create", &dst, e))?;
        }
        bind(&host, &dst, true)?;
    }
    Ok(())
}

/// A minimal /dev with a private devpts instance (the PTY slave we were given
/// is already fds 0-2 and keeps working).
fn make_dev(root: &Path, shm_bytes: u64) -> R {
    let dev = root.join("dev");
    mkdir(&dev)?;
    mount_tmpfs(&dev, "size=64k,mode=0755", MsFlags::MS_NOEXEC)?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let dst = dev.join(name);
        File::create(&dst).map_err(|e| err("create", &dst, e))?;
        // Device nodes need a mount without nodev: bind without our nodev remount.
        mount(
            Some(&host),
            &dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err("bind", &dst, e))?;
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| err("mount devpts", &pts, e))?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount_tmpfs(
        &shm,
        &format!("size={},mode=1777", shm_bytes.max(4096)),
        MsFlags::MS_NOEXEC,
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let p = dev.join(link);
        symlink(target, &p).map_err(|e| err("symlink", &p, e))?;
    }
    fs::set_permissions(&dev, fs::Permissions::from_mode(0o755))
        .map_err(|e| err("chmod", &dev, e))?;
    remount(
        &dev,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
    )
}
