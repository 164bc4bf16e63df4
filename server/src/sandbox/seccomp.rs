//! The system-call filter of every run (seccomp-bpf, built with seccompiler)
//! and the run's private keyring. Both are set up by the helper in the
//! program's process (C) just before it execs the program, after
//! no_new_privs and the switch to the student's uid; every process the
//! program starts inherits them.
//!
//! The filter is an allowlist: every system call is in exactly one of
//! [`ALLOWED`], [`DENIED`] or [`CONDITIONAL`] (per architecture), and anything
//! else — a call this table does not know (a newer kernel's, an x32 number,
//! `clone3`) — fails with ENOSYS, which is what libc expects of an older
//! kernel and falls back from (glibc retries `clone3` as `clone`, whose
//! flags, unlike clone3's, are registers the filter can inspect). Denied
//! calls fail with EPERM; no call kills the program, except a system call of
//! another ABI (32-bit `int 0x80` on x86_64), which kills the process.
//!
//! Two filters are stacked because seccompiler gives one filter one action
//! for matches and one for the rest; the kernel takes the strictest answer:
//!
//! 1. "known": the calls of the table pass, everything else → ENOSYS;
//! 2. "deny": [`DENIED`] and the matching [`CONDITIONAL`] cases → EPERM.
//!
//! Cost: the kernel caches, per system call, filters whose answer does not
//! depend on the arguments ("always allow"), so only the few conditional
//! calls (clone, socket, socketpair, personality) run BPF at all.
//! docs/architecture.md ("Syscall filter") lists what is denied and why.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Namespace flags of clone(2) (CLONE_NEWTIME shares its bit with the exit
/// signal there and exists only for unshare/clone3, which are denied).
const CLONE_NAMESPACES: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// Socket families a run may open: local, IPv4/IPv6 (loopback only: the run
/// has its own network namespace) and netlink for routing queries only.
const SOCKET_FAMILIES: [u64; 4] = [
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_NETLINK as u64,
];

/// glibc's getaddrinfo(AI_ADDRCONFIG) and if_nameindex read interfaces over
/// NETLINK_ROUTE; unprivileged, it can only read (changes need CAP_NET_ADMIN).
const NETLINK_ROUTE: u64 = libc::NETLINK_ROUTE as u64;

/// personality(2) values allowed: PER_LINUX, PER_LINUX32 (`linux32`), their
/// UNAME26 variants, and the 0xffffffff query. Flags such as
/// ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC (weaker ASLR / W^X) are refused.
const PERSONALITIES: [u64; 5] = [0, 0x0008, 0x0002_0000, 0x0002_0008, 0xffff_ffff];

// Calls newer than the libc crate's tables (numbers shared by every
// architecture since 5.1's unified numbering).
const SYS_CACHESTAT: i64 = 451;
const SYS_FCHMODAT2: i64 = 452;
const SYS_MAP_SHADOW_STACK: i64 = 453;
const SYS_FUTEX_WAKE: i64 = 454;
const SYS_FUTEX_WAIT: i64 = 455;
const SYS_FUTEX_REQUEUE: i64 = 456;
const SYS_STATMOUNT: i64 = 457;
const SYS_LISTMOUNT: i64 = 458;
const SYS_SETXATTRAT: i64 = 463;
const SYS_GETXATTRAT: i64 = 464;
const SYS_LISTXATTRAT: i64 = 465;
const SYS_REMOVEXATTRAT: i64 = 466;
const SYS_OPEN_TREE_ATTR: i64 = 467;

/// What CPython, its standard library and ordinary C extensions use: files,
/// memory, threads, processes (fork/exec/wait), signals, timers, pipes,
/// sockets, polling, SysV/POSIX IPC (the run has its own IPC namespace),
/// xattrs, scheduling of its own threads, and self-restriction (seccomp,
/// landlock, prctl). The list follows Docker's default profile, minus what
/// [`DENIED`] names.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const ALLOWED: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_lseek,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_brk,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_ioctl,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_sched_yield,
    libc::SYS_mremap,
    libc::SYS_msync,
    libc::SYS_mincore,
    libc::SYS_madvise,
    libc::SYS_shmget,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_nanosleep,
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_getpid,
    libc::SYS_sendfile,
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_shutdown,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_kill,
    libc::SYS_tkill,
    libc::SYS_tgkill,
    libc::SYS_uname,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semctl,
    libc::SYS_semtimedop,
    libc::SYS_msgget,
    libc::SYS_msgsnd,
    libc::SYS_msgrcv,
    libc::SYS_msgctl,
    libc::SYS_mq_open,
    libc::SYS_mq_unlink,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_notify,
    libc::SYS_mq_getsetattr,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_sync,
    libc::SYS_syncfs,
    libc::SYS_truncate,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fadvise64,
    libc::SYS_readahead,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchown,
    libc::SYS_umask,
    libc::SYS_gettimeofday,
    libc::SYS_getrusage,
    libc::SYS_sysinfo,
    libc::SYS_times,
    libc::SYS_getuid,
    libc::SYS_getgid,
    libc::SYS_geteuid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getgroups,
    // The set*id calls only succeed within the ids the process already has
    // (no capabilities, no_new_privs); subprocess and os call them.
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_setgroups,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_getppid,
    libc::SYS_getpgid,
    libc::SYS_setpgid,
    libc::SYS_getsid,
    libc::SYS_setsid,
    libc::SYS_gettid,
    libc::SYS_set_tid_address,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_rt_sigsuspend,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_getpriority,
    libc::SYS_setpriority,
    libc::SYS_sched_setparam,
    libc::SYS_sched_getparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_getattr,
    libc::SYS_getcpu,
    libc::SYS_ioprio_set,
    libc::SYS_ioprio_get,
    // Bounded by RLIMIT_MEMLOCK.
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_munlock,
    libc::SYS_mlockall,
    libc::SYS_munlockall,
    // The caller's own NUMA policy (OpenBLAS and friends ask).
    libc::SYS_mbind,
    libc::SYS_set_mempolicy,
    libc::SYS_get_mempolicy,
    libc::SYS_set_mempolicy_home_node,
    libc::SYS_prctl,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_getxattr,
    libc::SYS_lgetxattr,
    libc::SYS_fgetxattr,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_flistxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_fremovexattr,
    SYS_SETXATTRAT,
    SYS_GETXATTRAT,
    SYS_LISTXATTRAT,
    SYS_REMOVEXATTRAT,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    SYS_FUTEX_WAKE,
    SYS_FUTEX_WAIT,
    SYS_FUTEX_REQUEUE,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_membarrier,
    // Linux AIO (not io_uring): the classic, well-audited interface.
    libc::SYS_io_setup,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    libc::SYS_io_submit,
    libc::SYS_io_cancel,
    libc::SYS_getdents64,
    libc::SYS_timer_create,
    libc::SYS_timer_settime,
    libc::SYS_timer_gettime,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_delete,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_timerfd_gettime,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_pselect6,
    libc::SYS_ppoll,
    libc::SYS_eventfd2,
    libc::SYS_signalfd4,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_rm_watch,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_mkdirat,
    // FIFOs (os.mkfifo); device nodes need CAP_MKNOD.
    libc::SYS_mknodat,
    libc::SYS_fchownat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_unlinkat,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_readlinkat,
    libc::SYS_fchmodat,
    SYS_FCHMODAT2,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_renameat2,
    libc::SYS_utimensat,
    libc::SYS_splice,
    libc::SYS_tee,
    libc::SYS_vmsplice,
    libc::SYS_copy_file_range,
    SYS_CACHESTAT,
    libc::SYS_pipe2,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_prlimit64,
    libc::SYS_getrandom,
    libc::SYS_memfd_create,
    libc::SYS_pkey_mprotect,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_mseal,
    libc::SYS_close_range,
    // asyncio's child watcher, os.pidfd_open: signals within the run only.
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    // A program may restrict itself further.
    libc::SYS_seccomp,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_restrict_self,
];

/// The x86_64 legacy calls (aarch64 only has their *at / generic forms).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[i64] = &[
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_poll,
    libc::SYS_select,
    libc::SYS_pipe,
    libc::SYS_pause,
    libc::SYS_alarm,
    libc::SYS_dup2,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_getdents,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_mkdir,
    libc::SYS_rmdir,
    libc::SYS_link,
    libc::SYS_unlink,
    libc::SYS_symlink,
    libc::SYS_readlink,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_mknod,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_futimesat,
    libc::SYS_getrlimit,
    libc::SYS_setrlimit,
    libc::SYS_getpgrp,
    libc::SYS_time,
    libc::SYS_epoll_create,
    libc::SYS_epoll_wait,
    libc::SYS_eventfd,
    libc::SYS_signalfd,
    libc::SYS_inotify_init,
    libc::SYS_sync_file_range,
    // Thread-local storage set-up by the dynamic loader.
    libc::SYS_arch_prctl,
    // CET shadow stacks of newer glibc.
    SYS_MAP_SHADOW_STACK,
    // Only valid from the kernel's uretprobe trampoline.
    335,
];
/// sync_file_range is 84 on aarch64 (LP64); the libc crate leaves it unnamed.
#[cfg(target_arch = "aarch64")]
const ALLOWED_ARCH: &[i64] = &[84];

/// Denied with EPERM: each is either a way out of the sandbox's walls or a
/// large kernel attack surface, and none has a use in a teaching run.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const DENIED: &[i64] = &[
    // New namespaces (a user namespace gives a full capability set inside
    // it, and with it mounts, netfilter, raw sockets) and entering others'.
    libc::SYS_unshare,
    libc::SYS_setns,
    // The mount family: a run's filesystem view is fixed by the helper.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    SYS_OPEN_TREE_ATTR,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    SYS_STATMOUNT,
    SYS_LISTMOUNT,
    // Keys are per uid and outlive processes: a channel between runs.
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    // Large, often-exploited kernel interfaces.
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_userfaultfd,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_fanotify_init,
    libc::SYS_fanotify_mark,
    libc::SYS_memfd_secret,
    // Reaching into other processes (a run has no business tracing).
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_process_madvise,
    libc::SYS_process_mrelease,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_move_pages,
    libc::SYS_migrate_pages,
    // Host administration: kernel, modules, clock, swap, accounting, quota.
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_lookup_dcookie,
    // File handles bypass path permissions (CAP_DAC_READ_SEARCH) and leak inode ids.
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
];

/// The x86_64-only administration and legacy calls.
#[cfg(target_arch = "x86_64")]
const DENIED_ARCH: &[i64] = &[
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_modify_ldt,
    libc::SYS_uselib,
    libc::SYS_ustat,
    libc::SYS_sysfs,
    libc::SYS__sysctl,
];
#[cfg(target_arch = "aarch64")]
const DENIED_ARCH: &[i64] = &[];

/// Calls allowed except for some arguments.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const CONDITIONAL: &[i64] = &[
    libc::SYS_clone,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_personality,
];

/// One condition on argument `index` (32-bit compare: every argument
/// inspected here is an int or flags whose inspected bits are the low 32).
fn cond(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string())
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

/// The argument patterns of [`CONDITIONAL`] calls that are denied (any one rule matching).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied_arguments(nr: i64) -> Result<Vec<SeccompRule>, String> {
    if nr == libc::SYS_clone {
        // clone(flags, …) with any namespace flag.
        return CLONE_NAMESPACES
            .iter()
            .map(|&f| rule(vec![cond(0, SeccompCmpOp::MaskedEq(f), f)?]))
            .collect();
    }
    if nr == libc::SYS_socketpair {
        // Only local pairs exist (the kernel refuses the others anyway).
        return Ok(vec![rule(vec![cond(
            0,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )?])?]);
    }
    if nr == libc::SYS_socket {
        // (domain, type, protocol): a family outside the list, or netlink other than routing.
        let other_family = SOCKET_FAMILIES
            .iter()
            .map(|&f| cond(0, SeccompCmpOp::Ne, f))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(vec![
            rule(other_family)?,
            rule(vec![
                cond(0, SeccompCmpOp::Eq, libc::AF_NETLINK as u64)?,
                cond(2, SeccompCmpOp::Ne, NETLINK_ROUTE)?,
            ])?,
        ]);
    }
    if nr == libc::SYS_personality {
        let other = PERSONALITIES
            .iter()
            .map(|&p| cond(0, SeccompCmpOp::Ne, p))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(vec![rule(other)?]);
    }
    Err(format!("no argument rules for system call {nr}"))
}

/// The architecture the filter is built for (the one this binary runs on).
fn target_arch() -> Result<TargetArch, String> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        other => Err(format!(
            "no system-call filter for the {other} architecture, so no run can start \
             (Campus has filters for x86_64 and aarch64)"
        )),
    }
}

/// The two stacked programs, in the order they are loaded.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn programs() -> Result<[BpfProgram; 2], String> {
    let arch = target_arch()?;
    let known: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .chain(DENIED)
        .chain(DENIED_ARCH)
        .chain(CONDITIONAL)
        .map(|&nr| (nr, Vec::new()))
        .collect();
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .chain(DENIED_ARCH)
        .map(|&nr| (nr, Vec::new()))
        .collect();
    for &nr in CONDITIONAL {
        deny.insert(nr, denied_arguments(nr)?);
    }
    let errno = |e: i32| SeccompAction::Errno(e as u32);
    let build = |rules, mismatch, matched| -> Result<BpfProgram, String> {
        SeccompFilter::new(rules, mismatch, matched, arch)
            .and_then(BpfProgram::try_from)
            .map_err(|e| format!("building the system-call filter: {e}"))
    };
    Ok([
        build(known, errno(libc::ENOSYS), SeccompAction::Allow)?,
        build(deny, SeccompAction::Allow, errno(libc::EPERM))?,
    ])
}

/// Without a table for this architecture there is no filter, and no run.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn programs() -> Result<[BpfProgram; 2], String> {
    Err(target_arch()
        .err()
        .unwrap_or_else(|| "no system-call table for this architecture".into()))
}

/// Load the filter into the calling process (sets no_new_privs too). Every
/// later thread and child inherits it; it cannot be removed.
pub(crate) fn install() -> Result<(), String> {
    for program in programs()? {
        seccompiler::apply_filter(&program)
            .map_err(|e| format!("loading the system-call filter: {e}"))?;
    }
    Ok(())
}

/// Give the process a new, empty, anonymous session keyring, so that no key
/// of the server's session (or of an earlier run) is possessed by the run.
/// Call it as the student (the keyring is then the student's, on their
/// quota) and before [`install`] (which denies keyctl). A kernel without
/// key support (ENOSYS) has nothing to share.
pub(crate) fn join_private_keyring() -> Result<(), String> {
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a NULL name asks for
    // an anonymous keyring; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r >= 0 || nix::errno::Errno::last() == nix::errno::Errno::ENOSYS {
        return Ok(());
    }
    Err(format!(
        "private session keyring: {}",
        std::io::Error::last_os_error()
    ))
}

/// Probe lines from inside a run (after [`install`]): the kernel reports
/// mode 2 for this process, and a new user namespace is refused with EPERM.
pub(crate) fn probe() -> Vec<(&'static str, bool, String)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim)
        .unwrap_or("absent")
        .to_string();
    let userns = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER);
    let ok = mode == "2" && userns == Err(nix::errno::Errno::EPERM);
    vec![(
        "seccomp filter",
        ok,
        format!(
            "Seccomp: {mode}; unshare(CLONE_NEWUSER): {}",
            match userns {
                Ok(()) => "allowed!".to_string(),
                Err(e) => e.to_string(),
            }
        ),
    )]
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_in_exactly_one_list() {
        let mut seen = std::collections::BTreeSet::new();
        for list in [ALLOWED, ALLOWED_ARCH, DENIED, DENIED_ARCH, CONDITIONAL] {
            for nr in list {
                assert!(seen.insert(*nr), "system call {nr} listed twice");
            }
        }
        // clone3 must fall through to ENOSYS (glibc then uses clone).
        assert!(!seen.contains(&libc::SYS_clone3));
    }

    #[test]
    fn the_programs_build_and_fit() {
        let [known, deny] = programs().unwrap();
        // BPF_MAXINSNS is 4096.
        assert!(known.len() < 4096 && deny.len() < 4096);
        assert!(deny.len() < known.len());
    }

    #[test]
    fn conditional_calls_have_rules() {
        for &nr in CONDITIONAL {
            assert!(!denied_arguments(nr).unwrap().is_empty());
        }
        assert!(denied_arguments(libc::SYS_read).is_err());
    }
}
