//! Kernel disk quotas for the students' runs: filesystem user quotas keyed on
//! the per-student uid (runs execute as `uid_base + user id` and the server
//! chowns the workspace to that uid before each run, so the uid's usage on the
//! workspaces' filesystem is the student's workspace).
//!
//! Everything goes through `quotactl_fd(2)` (Linux 5.14) on a descriptor of
//! the workspaces root: no block-device lookup, no external binary. The start-up
//! probe asks the filesystem whether user quotas are *enforced*
//! (`Q_XGETQSTATV`, `FS_QUOTA_UDQ_ENFD`; ext4 mounted with `usrquota` on a
//! filesystem made with `-O quota`, or XFS with `uquota`). Each run then sets
//! its uid's hard limits (`Q_SETQUOTA`) and, when it ends, the runner reads the
//! usage back (`Q_GETQUOTA`) to tell a program that failed because its
//! workspace is full. The server itself runs as root (`CAP_SYS_RESOURCE`), so
//! its own writes, and the chown of API-written files, are bounded by
//! workspace-fs's accounting instead.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// `XQM_CMD(8)`: the versioned quota state query.
const Q_XGETQSTATV: u32 = (('X' as u32) << 8) + 8;
/// `fs_quota_statv.qs_version` we speak.
const FS_QSTATV_VERSION1: i8 = 1;
/// User quota accounting is on.
const FS_QUOTA_UDQ_ACCT: u16 = 1;
/// User quota limits are enforced.
const FS_QUOTA_UDQ_ENFD: u16 = 2;
/// `if_dqblk` block limits are in units of this many bytes (`QIF_DQBLKSIZE`).
const QIF_DQBLKSIZE: u64 = 1024;

/// `struct fs_qfilestatv` (linux/dqblk_xfs.h).
#[repr(C)]
#[derive(Default)]
struct FsQfilestatv {
    ino: u64,
    nblks: u64,
    nextents: u32,
    pad: u32,
}

/// `struct fs_quota_statv` (linux/dqblk_xfs.h).
#[repr(C)]
#[derive(Default)]
struct FsQuotaStatv {
    version: i8,
    pad1: u8,
    flags: u16,
    incoredqs: u32,
    uquota: FsQfilestatv,
    gquota: FsQfilestatv,
    pquota: FsQfilestatv,
    btimelimit: i32,
    itimelimit: i32,
    rtbtimelimit: i32,
    bwarnlimit: u16,
    iwarnlimit: u16,
    rtbwarnlimit: u16,
    pad3: u16,
    pad4: u32,
    pad2: [u64; 7],
}

/// `QCMD(cmd, USRQUOTA)`.
fn qcmd(cmd: u32) -> u32 {
    (cmd << 8) | (libc::USRQUOTA as u32 & 0xff)
}

/// `quotactl_fd(fd, cmd, id, addr)`.
fn quotactl_fd(fd: libc::c_int, cmd: u32, id: u32, addr: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: the kernel reads or writes at most the structure `cmd` names at
    // `addr`, which every caller passes as a pointer to that structure (or null
    // for the existence check, which fails on the fd first).
    let r = unsafe {
        libc::syscall(
            libc::SYS_quotactl_fd,
            fd as libc::c_uint,
            cmd as libc::c_uint,
            id as libc::c_int,
            addr,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What the start-up probe found about the workspaces' filesystem.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiskQuotaStatus {
    /// True when the kernel enforces per-student limits on the workspaces.
    pub enforced: bool,
    /// The filesystem type of the workspaces root (`ext4`, `xfs`, `tmpfs`, …).
    pub filesystem: String,
    /// What was found, in words (the `campus sandbox check` line).
    pub detail: String,
}

/// A uid's usage and hard limits on the workspaces' filesystem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Space used (including delayed-allocation reservations), bytes.
    pub bytes: u64,
    /// Inodes used.
    pub inodes: u64,
    /// Hard limit on space, bytes (0: none).
    pub bytes_limit: u64,
    /// Hard limit on inodes (0: none).
    pub inodes_limit: u64,
}

impl QuotaUsage {
    /// True when the next write or file creation would fail: the inodes are
    /// all used, or the space is within `margin` of its limit (a refused write
    /// leaves the usage just below the limit, by less than the write).
    pub fn at_limit(&self, margin: u64) -> bool {
        (self.inodes_limit > 0 && self.inodes >= self.inodes_limit)
            || (self.bytes_limit > 0 && self.bytes.saturating_add(margin) >= self.bytes_limit)
    }
}

/// The enforced user quotas of the workspaces' filesystem.
#[derive(Debug)]
pub struct DiskQuota {
    /// A descriptor of the workspaces root (any file of the filesystem names it).
    fd: OwnedFd,
    /// The filesystem's block size: the allocation unit of every file and directory.
    block_size: u64,
}

impl DiskQuota {
    /// The kernel limits for a workspace quota of `bytes` and `entries`: the
    /// on-disk size of the largest tree the API accepts (the API counts file
    /// sizes; the kernel counts allocated blocks, so every entry may round up
    /// by one block, directories included), and one inode per entry plus the
    /// workspace's own directory.
    pub fn kernel_limits(&self, bytes: u64, entries: u64) -> (u64, u64) {
        let space = bytes.saturating_add(entries.saturating_mul(self.block_size));
        // 0 entries: no entry quota, so no inode limit (0 is "none" to the kernel).
        let inodes = if entries == 0 {
            0
        } else {
            entries.saturating_add(1)
        };
        (space, inodes)
    }

    /// How close to the space limit counts as "full" (see [`QuotaUsage::at_limit`]).
    pub fn full_margin(&self) -> u64 {
        self.block_size.saturating_mul(16)
    }

    /// Set `uid`'s hard limits (no soft limits, no grace) from the workspace quota.
    pub fn set_limits(&self, uid: u32, bytes: u64, entries: u64) -> io::Result<()> {
        let (space, inodes) = self.kernel_limits(bytes, entries);
        let mut q = libc::dqblk {
            dqb_bhardlimit: space.div_ceil(QIF_DQBLKSIZE),
            dqb_bsoftlimit: 0,
            dqb_curspace: 0,
            dqb_ihardlimit: inodes,
            dqb_isoftlimit: 0,
            dqb_curinodes: 0,
            dqb_btime: 0,
            dqb_itime: 0,
            dqb_valid: libc::QIF_LIMITS,
        };
        quotactl_fd(
            self.fd.as_raw_fd(),
            qcmd(libc::Q_SETQUOTA as u32),
            uid,
            (&mut q as *mut libc::dqblk).cast(),
        )
    }

    /// `uid`'s usage and limits.
    pub fn usage(&self, uid: u32) -> io::Result<QuotaUsage> {
        // SAFETY: dqblk is plain integers; all-zero is a valid value.
        let mut q: libc::dqblk = unsafe { std::mem::zeroed() };
        quotactl_fd(
            self.fd.as_raw_fd(),
            qcmd(libc::Q_GETQUOTA as u32),
            uid,
            (&mut q as *mut libc::dqblk).cast(),
        )?;
        Ok(QuotaUsage {
            bytes: q.dqb_curspace,
            inodes: q.dqb_curinodes,
            bytes_limit: q.dqb_bhardlimit.saturating_mul(QIF_DQBLKSIZE),
            inodes_limit: q.dqb_ihardlimit,
        })
    }
}

/// The name of a filesystem type (`statfs.f_type`).
fn fs_name(magic: u64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlay".into(),
        0x6969 => "nfs".into(),
        0x6573_5546 => "fuse".into(),
        0x2FC1_2FC1 => "zfs".into(),
        other => format!("filesystem type {other:#x}"),
    }
}

/// How to turn quotas on, for the report.
const HOWTO: &str = "put the data dir on ext4 made with `mkfs.ext4 -O quota` (or \
                     `tune2fs -O quota` when unmounted) and mounted with `usrquota`, or on XFS \
                     mounted with `uquota` (see docs/security.md, \"Storage\")";

/// Probe the filesystem holding `root`: are user quotas enforced there?
pub(super) fn probe(root: &Path) -> (DiskQuotaStatus, Option<DiskQuota>) {
    let not = |filesystem: String, detail: String| {
        (
            DiskQuotaStatus {
                enforced: false,
                filesystem,
                detail,
            },
            None,
        )
    };
    let file = match std::fs::File::open(root) {
        Ok(f) => f,
        Err(e) => return not(String::new(), format!("{}: {e}", root.display())),
    };
    let fd = OwnedFd::from(file);
    let (fs, block_size) = match rustix::fs::fstatfs(&fd) {
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
        Ok(st) => (fs_name(st.f_type as u64), st.f_bsize.max(512) as u64),
        Err(e) => return not(String::new(), format!("statfs {}: {e}", root.display())),
    };
    // Does the system call exist at all? (A bad descriptor fails before anything else.)
    if let Err(e) = quotactl_fd(-1, qcmd(Q_XGETQSTATV), 0, std::ptr::null_mut()) {
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return not(
                fs,
                "the kernel has no quotactl_fd (Linux 5.14 or later is needed)".into(),
            );
        }
    }
    let mut st = FsQuotaStatv {
        version: FS_QSTATV_VERSION1,
        ..FsQuotaStatv::default()
    };
    let r = quotactl_fd(
        fd.as_raw_fd(),
        qcmd(Q_XGETQSTATV),
        0,
        (&mut st as *mut FsQuotaStatv).cast(),
    );
    let where_ = format!("{} ({fs})", root.display());
    match r {
        Err(e) => {
            let why = match e.raw_os_error() {
                Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) => {
                    format!("{fs} on this kernel supports no user quotas")
                }
                Some(libc::ESRCH) => "user quotas are not turned on".to_string(),
                _ => format!("quota state unreadable: {e}"),
            };
            not(
                fs.clone(),
                format!("not enforced on {where_}: {why}; {HOWTO}"),
            )
        }
        Ok(()) if st.flags & FS_QUOTA_UDQ_ENFD != 0 => (
            DiskQuotaStatus {
                enforced: true,
                filesystem: fs,
                detail: format!(
                    "user quotas enforced on {where_}: each run's uid is limited to the \
                     workspace quota in bytes and inodes"
                ),
            },
            Some(DiskQuota { fd, block_size }),
        ),
        Ok(()) if st.flags & FS_QUOTA_UDQ_ACCT != 0 => not(
            fs,
            format!(
                "not enforced on {where_}: user quotas are accounted but not enforced \
                 (mount with usrquota)"
            ),
        ),
        Ok(()) => not(
            fs,
            format!("not enforced on {where_}: user quotas are off; {HOWTO}"),
        ),
    }
}

/// Where the database sits relative to the workspaces (a start-up check: a
/// full workspace filesystem must not stop logins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageLayout {
    /// The SQLite database is on the workspaces' filesystem.
    pub shared: bool,
    /// Space only root may use on the workspaces' filesystem (ext4's reserved
    /// blocks: student uids cannot fill it, the root-run server can write there).
    pub reserved_bytes: u64,
    /// Free space on the workspaces' filesystem, bytes.
    pub free_bytes: u64,
}

/// Compare the filesystems of `workspaces` and of the SQLite database file
/// `database` (None: PostgreSQL or in memory, which is never on it).
pub fn storage_layout(workspaces: &Path, database: Option<&Path>) -> io::Result<StorageLayout> {
    use std::os::unix::fs::MetadataExt;
    let st = rustix::fs::statvfs(workspaces)?;
    let unit = st.f_frsize.max(1);
    let dev = std::fs::metadata(workspaces)?.dev();
    let shared = match database {
        Some(db) => {
            // The file, or (not created yet) its directory.
            let m = std::fs::metadata(db)
                .or_else(|_| std::fs::metadata(db.parent().unwrap_or_else(|| Path::new("/"))))?;
            m.dev() == dev
        }
        None => false,
    };
    Ok(StorageLayout {
        shared,
        reserved_bytes: st.f_bfree.saturating_sub(st.f_bavail).saturating_mul(unit),
        free_bytes: st.f_bavail.saturating_mul(unit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_query_matches_the_kernel_layout() {
        // linux/dqblk_xfs.h: fs_quota_statv is 160 bytes, fs_qfilestatv 24.
        assert_eq!(std::mem::size_of::<FsQfilestatv>(), 24);
        assert_eq!(std::mem::size_of::<FsQuotaStatv>(), 160);
        assert_eq!(qcmd(libc::Q_SETQUOTA as u32), 0x8000_0800);
        assert_eq!(qcmd(Q_XGETQSTATV), 0x0058_0800);
    }

    #[test]
    fn full_means_no_inode_left_or_space_within_the_margin() {
        let u = QuotaUsage {
            bytes: 1000,
            inodes: 9,
            bytes_limit: 2000,
            inodes_limit: 10,
        };
        assert!(!u.at_limit(100));
        assert!(u.at_limit(1000));
        assert!(QuotaUsage { inodes: 10, ..u }.at_limit(0));
        assert!(
            !QuotaUsage::default().at_limit(1 << 20),
            "no limits: never full"
        );
    }
}
