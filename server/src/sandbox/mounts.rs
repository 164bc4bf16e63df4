//! The run's filesystem view, built inside the new mount namespace by the
//! reaper (PID 1 of the new pid namespace) before it forks the program:
//!
//! ```text
//! /                 tmpfs, read-only after setup
//! /usr /bin /lib…   only what Python needs, read-only binds of the host's
//!                   ([`PYTHON_VIEW`] + the interpreter; symlinks recreated)
//! /etc              generated passwd/group/hosts + read-only ld.so.cache, localtime, python3.*
//! /home/student     the workspace, read-write, or read-only (a snapshot) (nosuid, nodev)
//! /course/NAME      course material, read-only (bind remounted MS_RDONLY, no submounts)
//! /scratch          a per-execution host directory, read-write, when asked for
//! /tmp, /dev/shm    size-limited tmpfs, mode 1777
//! /dev              null zero full random urandom tty, a private devpts
//! /proc             fresh procfs of the new pid namespace (hidepid=2), host
//!                   files masked ([`PROC_MASKED_FILES`]), /proc/sys read-only
//! ```
//!
//! The new root is a tmpfs mounted over the host's /tmp (hidden from the
//! sandbox); sources under /tmp stay reachable because we open them (O_PATH)
//! first and bind from /proc/self/fd/N.
//!
//! What `/proc/self/mountinfo` still shows of the host (docs/security.md,
//! "What a run can see"): for each bind, the device number and name of the
//! host filesystem and the bound directory's path *inside that filesystem*
//! (its "root" field, e.g. `/workspaces/42` when the data dir is its own
//! filesystem). Binding through a staging directory or an opaque name does
//! not change that field: the kernel prints the dentry's path from its
//! superblock's root, not the path it was bound from.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Where the new root is assembled (any existing directory works; see module doc).
const STAGING: &str = "/tmp";
/// Top-level host system directories: a symlink (merged /usr) is recreated,
/// a directory becomes an empty one that [`PYTHON_VIEW`] fills.
const SYSTEM_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// What of the host's system directories a Python run sees, besides the
/// interpreter itself (see [`python_paths`]): a `*` in the last component
/// matches any run of characters. Symlinks are recreated and followed, so
/// `/bin/sh` on a merged-/usr host becomes `/bin -> usr/bin`, `/usr/bin/sh ->
/// dash` and a bind of `/usr/bin/dash`. Not here, on purpose: `/usr/local`,
/// the rest of `/usr/bin` and `/usr/sbin`, compilers (`/usr/lib/gcc`,
/// `/usr/libexec`), `/usr/include`, `/usr/share` beyond time zones and
/// terminfo.
const PYTHON_VIEW: &[&str] = &[
    // os.system and subprocess(shell=True).
    "/bin/sh",
    "/usr/bin/sh",
    // The dynamic loader, libc, libpython and what extension modules link
    // (readline, sqlite, ssl, ffi, BLAS for numpy…), found via ld.so.cache.
    "/lib64",
    "/lib32",
    "/libx32",
    "/lib/*-linux-gnu*",
    "/usr/lib64",
    "/usr/lib/*-linux-gnu*",
    // Debian's dist-packages (numpy, …) and the stdlib of every python3.X.
    "/usr/lib/python3",
    "/usr/lib/python3.*",
    // Locales, terminal descriptions for the REPL's readline, time zones.
    "/usr/lib/locale",
    "/lib/terminfo",
    "/usr/lib/terminfo",
    "/usr/share/terminfo",
    "/usr/share/zoneinfo",
];
/// /proc files about the host rather than the run (runc's maskedPaths and
/// more): the kernel's build configuration, symbols, command line, devices,
/// disks, memory layout, locks and interrupts of the whole machine.
/// `/dev/null` is bound over each (reads are empty). Not masked: `keys` and
/// `key-users` (a run has a private keyring and cannot add keys, see
/// `seccomp`), and what programs use — cpuinfo, meminfo, stat, loadavg,
/// uptime, version (also uname(2)), the per-process and per-namespace files.
const PROC_MASKED_FILES: &[&str] = &[
    "config.gz",
    "kallsyms",
    "kcore",
    "cmdline",
    "bootconfig",
    "modules",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "vmallocinfo",
    "iomem",
    "ioports",
    "slabinfo",
    "pagetypeinfo",
    "kpagecount",
    "kpageflags",
    "kpagecgroup",
    "partitions",
    "diskstats",
    "swaps",
    "devices",
    "misc",
    "mtrr",
    "dma",
    "consoles",
    "locks",
    "interrupts",
    "softirqs",
    "sysrq-trigger",
];
/// /proc directories about the host's hardware and drivers: an empty
/// read-only tmpfs is mounted over each.
const PROC_MASKED_DIRS: &[&str] = &[
    "acpi",
    "asound",
    "bus",
    "driver",
    "dynamic_debug",
    "fs",
    "irq",
    "pressure",
    "scsi",
    "tty",
];
/// Top-level directories the run's root makes itself: never taken from the host.
const SANDBOX_OWNED: [&str; 7] = ["home", "course", "scratch", "tmp", "dev", "proc", "etc"];
/// How many symlinks one path of the view may pass through.
const MAX_LINKS: usize = 16;
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
    /// The program as the run names it (e.g. `/usr/bin/python3`): it and its
    /// installation's `lib/python3*` are added to the system view.
    pub program: Option<&'a Path>,
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
        }
    }
    let mut view = SystemView::new(root);
    for p in python_paths(plan.program) {
        view.add(&p, 0)?;
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
        // `course/section` names need their course folder (in the staging tmpfs).
        if let Some(parent) = dst.parent().filter(|p| *p != course_root) {
            fs::create_dir_all(parent).map_err(|e| err("mkdir", parent, e))?;
        }
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
    mask_proc()?;

    remount(
        Path::new("/"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
}

/// The host paths of the system view: [`PYTHON_VIEW`] plus the program and,
/// for an interpreter at `PREFIX/bin/…`, `PREFIX/lib/python3*` and
/// `PREFIX/lib/libpython3*` (so a CAMPUS_PYTHON outside /usr brings its own
/// stdlib, and nothing else of its prefix).
fn python_paths(program: Option<&Path>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = PYTHON_VIEW.iter().map(PathBuf::from).collect();
    // A program inside the run's own trees (the workspace, /tmp…) is not the host's.
    let own = |p: &Path| {
        SANDBOX_OWNED
            .iter()
            .any(|d| p.starts_with(Path::new("/").join(d)))
    };
    let Some(program) = program.filter(|p| p.is_absolute() && !own(p)) else {
        return paths;
    };
    paths.push(program.to_path_buf());
    let resolved = fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    for exe in [program, resolved.as_path()] {
        let Some(bin) = exe.parent().filter(|b| b.ends_with("bin")) else {
            continue;
        };
        if let Some(prefix) = bin.parent() {
            paths.push(prefix.join("lib/python3*"));
            paths.push(prefix.join("lib/libpython3*"));
        }
    }
    paths
}

/// Builds the read-only system view inside the new root: directories on the
/// way are created on the root tmpfs, symlinks recreated (and followed), and
/// each wanted file or directory bound read-only from the host.
struct SystemView<'a> {
    root: &'a Path,
    /// Host entries already handled (the view's paths overlap).
    seen: std::collections::HashSet<PathBuf>,
    /// Host trees bound so far: what lies below them is in the view already.
    bound: Vec<PathBuf>,
}

impl<'a> SystemView<'a> {
    fn new(root: &'a Path) -> Self {
        SystemView {
            root,
            seen: std::collections::HashSet::new(),
            bound: Vec::new(),
        }
    }

    /// Add `host` (absolute; a `*` in its last component is a pattern).
    fn add(&mut self, host: &Path, links: usize) -> R {
        if links > MAX_LINKS {
            return Err(err("system view", host, "too many symlinks"));
        }
        let (Some(parent), Some(name)) = (host.parent(), host.file_name()) else {
            return Ok(());
        };
        let name = name.to_string_lossy();
        // Resolve the parent first: a symlinked ancestor (merged /usr) is
        // recreated, and the path continues through its target.
        let Some(parent) = self.add_ancestors(parent, links)? else {
            return Ok(());
        };
        if !name.contains('*') {
            return self.add_entry(&parent.join(&*name), links);
        }
        let Ok(entries) = fs::read_dir(&parent) else {
            return Ok(());
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| glob_match(&name, n))
            .collect();
        names.sort();
        for n in names {
            self.add_entry(&parent.join(n), links)?;
        }
        Ok(())
    }

    /// Make every directory of `dir` exist in the view; returns `dir` with
    /// symlinked components resolved (None when it does not exist on the host).
    fn add_ancestors(&mut self, dir: &Path, links: usize) -> Result<Option<PathBuf>, String> {
        if links > MAX_LINKS {
            return Err(err("system view", dir, "too many symlinks"));
        }
        let mut real = PathBuf::from("/");
        for c in dir.components().skip(1) {
            let next = real.join(c);
            let Ok(meta) = fs::symlink_metadata(&next) else {
                return Ok(None);
            };
            if meta.file_type().is_symlink() {
                self.link(&next)?;
                let target = fs::read_link(&next).map_err(|e| err("readlink", &next, e))?;
                let rest = dir.strip_prefix(&next).unwrap_or(Path::new(""));
                let through = real.join(target).join(rest);
                return self.add_ancestors(&normalize(&through), links + 1);
            }
            if !meta.is_dir() {
                return Ok(None);
            }
            let dst = self.dst(&next);
            if !dst.exists() {
                mkdir(&dst)?;
            }
            real = next;
        }
        Ok(Some(real))
    }

    /// Add one existing host entry whose parent is already in the view.
    fn add_entry(&mut self, host: &Path, links: usize) -> R {
        let Ok(meta) = fs::symlink_metadata(host) else {
            return Ok(());
        };
        if self.bound.iter().any(|b| host.starts_with(b)) || !self.seen.insert(host.to_path_buf()) {
            return Ok(());
        }
        let dst = self.dst(host);
        if meta.file_type().is_symlink() {
            self.link(host)?;
            let target = fs::read_link(host).map_err(|e| err("readlink", host, e))?;
            let parent = host.parent().unwrap_or(Path::new("/"));
            // Targets under /etc are the generated /etc's business (alternatives).
            let next = normalize(&parent.join(&target));
            if !next.starts_with("/etc") {
                self.add(&next, links + 1)?;
            }
            return Ok(());
        }
        if meta.is_dir() {
            if !dst.exists() {
                mkdir(&dst)?;
            }
        } else if meta.is_file() {
            File::create(&dst).map_err(|e| err("create", &dst, e))?;
        } else {
            return Ok(());
        }
        bind(host, &dst, true)?;
        self.bound.push(host.to_path_buf());
        Ok(())
    }

    /// Recreate a host symlink in the view (unless it is there already).
    fn link(&mut self, host: &Path) -> R {
        let dst = self.dst(host);
        if fs::symlink_metadata(&dst).is_ok() {
            return Ok(());
        }
        let target = fs::read_link(host).map_err(|e| err("readlink", host, e))?;
        symlink(&target, &dst).map_err(|e| err("symlink", &dst, e))
    }

    fn dst(&self, host: &Path) -> PathBuf {
        self.root.join(host.strip_prefix("/").unwrap_or(host))
    }
}

/// `.` and `..` removed lexically (symlink targets such as `../lib`).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Does `name` match `pattern`, where each `*` matches any run of characters?
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.len() >= part.len() && rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Mask the host-revealing parts of the fresh /proc and make /proc/sys
/// read-only (the program is not root, but a mount flag does not depend on
/// that). Runs after pivot_root: /dev/null is the run's own node.
///
/// Only the first mask of each kind is made read-only by a remount: a bind
/// of a read-only mount copies its flags (read-only, nosuid, noexec), so the
/// others are bound from it, one syscall each instead of two (the masks were
/// ~60 of a run's ~200 mount calls).
fn mask_proc() -> R {
    let proc = Path::new("/proc");
    let mut null_mask: Option<PathBuf> = None;
    for name in PROC_MASKED_FILES {
        let dst = proc.join(name);
        if fs::symlink_metadata(&dst).is_err() {
            continue;
        }
        // A device must stay usable through this mount: no nodev here.
        let src = null_mask.as_deref().unwrap_or(Path::new("/dev/null"));
        mount(
            Some(src),
            &dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err("mask", &dst, e))?;
        if null_mask.is_none() {
            remount(
                &dst,
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            )?;
            null_mask = Some(dst);
        }
    }
    let mut empty_dir: Option<PathBuf> = None;
    for name in PROC_MASKED_DIRS {
        let dst = proc.join(name);
        if !fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        match &empty_dir {
            Some(src) => mount(
                Some(src),
                &dst,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| err("mask", &dst, e))?,
            None => {
                mount_tmpfs(
                    &dst,
                    "size=4k,mode=0555",
                    MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC,
                )?;
                empty_dir = Some(dst);
            }
        }
    }
    let sys = proc.join("sys");
    bind(&sys, &sys, true)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_match("python3.*", "python3.11"));
        assert!(!glob_match("python3.*", "python3"));
        assert!(glob_match("*-linux-gnu*", "x86_64-linux-gnu"));
        assert!(!glob_match("*-linux-gnu*", "gcc"));
        assert!(glob_match("libpython3*", "libpython3.11.so.1.0"));
        assert!(glob_match("a*b*c", "abc") && glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("a*b*c", "a-c-b"));
        assert!(glob_match("sh", "sh") && !glob_match("sh", "shx"));
    }

    #[test]
    fn symlink_targets_are_normalized_lexically() {
        assert_eq!(
            normalize(Path::new("/usr/bin/../lib/x")),
            Path::new("/usr/lib/x")
        );
        assert_eq!(normalize(Path::new("/bin/./dash")), Path::new("/bin/dash"));
        assert_eq!(normalize(Path::new("/../../etc")), Path::new("/etc"));
    }

    #[test]
    fn the_interpreter_brings_its_own_stdlib_only() {
        let paths = python_paths(Some(Path::new("/opt/py/bin/python3.12")));
        assert!(paths.contains(&PathBuf::from("/opt/py/bin/python3.12")));
        assert!(paths.contains(&PathBuf::from("/opt/py/lib/python3*")));
        assert!(paths.contains(&PathBuf::from("/opt/py/lib/libpython3*")));
        assert!(!paths.iter().any(|p| p.starts_with("/usr/local")));
        assert!(!paths.iter().any(|p| p == Path::new("/opt/py")));
        // A relative program, or one in the run's own trees, adds nothing.
        for p in ["python3", "/home/student/python3", "/tmp/x/bin/python3"] {
            assert_eq!(python_paths(Some(Path::new(p))).len(), PYTHON_VIEW.len());
        }
    }
}
