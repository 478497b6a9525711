//! The names of the x86-64 system calls, by number: the SIGSYS handler names the call a
//! filter refused, and it may not allocate or format, so the names are a static table.
//!
//! Numbers 0–334 are contiguous; 335–423 are unused on x86-64 (the kernel keeps them free
//! to line up the newer calls with the other architectures), and 424 onwards follow.
//! Generated from seccompiler's x86-64 table (Linux 6.12), which agrees with
//! `/usr/include/x86_64-linux-gnu/asm/unistd_64.h` on every number both have.
//!
//! # Resources
//! - Linux `arch/x86/entry/syscalls/syscall_64.tbl`.

/// The calls numbered 0 to 334, in order.
#[rustfmt::skip]
const NAMES_FROM_0: [&str; 335] = [
    /*   0 */ "read", "write", "open", "close", "stat", "fstat",
    /*   6 */ "lstat", "poll", "lseek", "mmap", "mprotect", "munmap",
    /*  12 */ "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "pread64",
    /*  18 */ "pwrite64", "readv", "writev", "access", "pipe", "select",
    /*  24 */ "sched_yield", "mremap", "msync", "mincore", "madvise", "shmget",
    /*  30 */ "shmat", "shmctl", "dup", "dup2", "pause", "nanosleep",
    /*  36 */ "getitimer", "alarm", "setitimer", "getpid", "sendfile", "socket",
    /*  42 */ "connect", "accept", "sendto", "recvfrom", "sendmsg", "recvmsg",
    /*  48 */ "shutdown", "bind", "listen", "getsockname", "getpeername", "socketpair",
    /*  54 */ "setsockopt", "getsockopt", "clone", "fork", "vfork", "execve",
    /*  60 */ "exit", "wait4", "kill", "uname", "semget", "semop",
    /*  66 */ "semctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl",
    /*  72 */ "fcntl", "flock", "fsync", "fdatasync", "truncate", "ftruncate",
    /*  78 */ "getdents", "getcwd", "chdir", "fchdir", "rename", "mkdir",
    /*  84 */ "rmdir", "creat", "link", "unlink", "symlink", "readlink",
    /*  90 */ "chmod", "fchmod", "chown", "fchown", "lchown", "umask",
    /*  96 */ "gettimeofday", "getrlimit", "getrusage", "sysinfo", "times", "ptrace",
    /* 102 */ "getuid", "syslog", "getgid", "setuid", "setgid", "geteuid",
    /* 108 */ "getegid", "setpgid", "getppid", "getpgrp", "setsid", "setreuid",
    /* 114 */ "setregid", "getgroups", "setgroups", "setresuid", "getresuid", "setresgid",
    /* 120 */ "getresgid", "getpgid", "setfsuid", "setfsgid", "getsid", "capget",
    /* 126 */ "capset", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo", "rt_sigsuspend", "sigaltstack",
    /* 132 */ "utime", "mknod", "uselib", "personality", "ustat", "statfs",
    /* 138 */ "fstatfs", "sysfs", "getpriority", "setpriority", "sched_setparam", "sched_getparam",
    /* 144 */ "sched_setscheduler", "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval", "mlock",
    /* 150 */ "munlock", "mlockall", "munlockall", "vhangup", "modify_ldt", "pivot_root",
    /* 156 */ "_sysctl", "prctl", "arch_prctl", "adjtimex", "setrlimit", "chroot",
    /* 162 */ "sync", "acct", "settimeofday", "mount", "umount2", "swapon",
    /* 168 */ "swapoff", "reboot", "sethostname", "setdomainname", "iopl", "ioperm",
    /* 174 */ "create_module", "init_module", "delete_module", "get_kernel_syms", "query_module", "quotactl",
    /* 180 */ "nfsservctl", "getpmsg", "putpmsg", "afs_syscall", "tuxcall", "security",
    /* 186 */ "gettid", "readahead", "setxattr", "lsetxattr", "fsetxattr", "getxattr",
    /* 192 */ "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr",
    /* 198 */ "lremovexattr", "fremovexattr", "tkill", "time", "futex", "sched_setaffinity",
    /* 204 */ "sched_getaffinity", "set_thread_area", "io_setup", "io_destroy", "io_getevents", "io_submit",
    /* 210 */ "io_cancel", "get_thread_area", "lookup_dcookie", "epoll_create", "epoll_ctl_old", "epoll_wait_old",
    /* 216 */ "remap_file_pages", "getdents64", "set_tid_address", "restart_syscall", "semtimedop", "fadvise64",
    /* 222 */ "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete", "clock_settime",
    /* 228 */ "clock_gettime", "clock_getres", "clock_nanosleep", "exit_group", "epoll_wait", "epoll_ctl",
    /* 234 */ "tgkill", "utimes", "vserver", "mbind", "set_mempolicy", "get_mempolicy",
    /* 240 */ "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    /* 246 */ "kexec_load", "waitid", "add_key", "request_key", "keyctl", "ioprio_set",
    /* 252 */ "ioprio_get", "inotify_init", "inotify_add_watch", "inotify_rm_watch", "migrate_pages", "openat",
    /* 258 */ "mkdirat", "mknodat", "fchownat", "futimesat", "newfstatat", "unlinkat",
    /* 264 */ "renameat", "linkat", "symlinkat", "readlinkat", "fchmodat", "faccessat",
    /* 270 */ "pselect6", "ppoll", "unshare", "set_robust_list", "get_robust_list", "splice",
    /* 276 */ "tee", "sync_file_range", "vmsplice", "move_pages", "utimensat", "epoll_pwait",
    /* 282 */ "signalfd", "timerfd_create", "eventfd", "fallocate", "timerfd_settime", "timerfd_gettime",
    /* 288 */ "accept4", "signalfd4", "eventfd2", "epoll_create1", "dup3", "pipe2",
    /* 294 */ "inotify_init1", "preadv", "pwritev", "rt_tgsigqueueinfo", "perf_event_open", "recvmmsg",
    /* 300 */ "fanotify_init", "fanotify_mark", "prlimit64", "name_to_handle_at", "open_by_handle_at", "clock_adjtime",
    /* 306 */ "syncfs", "sendmmsg", "setns", "getcpu", "process_vm_readv", "process_vm_writev",
    /* 312 */ "kcmp", "finit_module", "sched_setattr", "sched_getattr", "renameat2", "seccomp",
    /* 318 */ "getrandom", "memfd_create", "kexec_file_load", "bpf", "execveat", "userfaultfd",
    /* 324 */ "membarrier", "mlock2", "copy_file_range", "preadv2", "pwritev2", "pkey_mprotect",
    /* 330 */ "pkey_alloc", "pkey_free", "statx", "io_pgetevents", "rseq",
];

/// The calls numbered 424 to 462, in order.
#[rustfmt::skip]
const NAMES_FROM_424: [&str; 39] = [
    /* 424 */ "pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register", "open_tree", "move_mount",
    /* 430 */ "fsopen", "fsconfig", "fsmount", "fspick", "pidfd_open", "clone3",
    /* 436 */ "close_range", "openat2", "pidfd_getfd", "faccessat2", "process_madvise", "epoll_pwait2",
    /* 442 */ "mount_setattr", "quotactl_fd", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "memfd_secret",
    /* 448 */ "process_mrelease", "futex_waitv", "set_mempolicy_home_node", "cachestat", "fchmodat2", "map_shadow_stack",
    /* 454 */ "futex_wake", "futex_wait", "futex_requeue", "statmount", "listmount", "lsm_get_self_attr",
    /* 460 */ "lsm_set_self_attr", "lsm_list_modules", "mseal",
];

/// The first number of the second block.
const SECOND_BLOCK_START: usize = 424;

/// The name of x86-64 system call `number`, if it has one.
pub fn syscall_name(number: i64) -> Option<&'static str> {
    let number = usize::try_from(number).ok()?;
    match number.checked_sub(SECOND_BLOCK_START) {
        Some(index) => NAMES_FROM_424.get(index).copied(),
        None => NAMES_FROM_0.get(number).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_numbers_libc_gives() {
        let calls = [
            (libc::SYS_read, "read"),
            (libc::SYS_write, "write"),
            (libc::SYS_ioctl, "ioctl"),
            (libc::SYS_execve, "execve"),
            (libc::SYS_openat, "openat"),
            (libc::SYS_exit_group, "exit_group"),
            (libc::SYS_epoll_pwait2, "epoll_pwait2"),
            (libc::SYS_pidfd_open, "pidfd_open"),
            (libc::SYS_clone3, "clone3"),
            (libc::SYS_futex_waitv, "futex_waitv"),
        ];
        for (number, name) in calls {
            assert_eq!(syscall_name(number), Some(name), "number {number}");
        }
    }

    #[test]
    fn numbers_without_a_call_have_no_name() {
        assert_eq!(syscall_name(-1), None);
        assert_eq!(syscall_name(335), None);
        assert_eq!(syscall_name(423), None);
        assert_eq!(syscall_name(10_000), None);
        assert_eq!(syscall_name(334), Some("rseq"));
    }
}
