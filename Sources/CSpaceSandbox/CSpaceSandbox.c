#define _GNU_SOURCE
#include "CSpaceSandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// MARK: - Landlock (the ABI, spelled out: Debian 12's headers stop at ABI 1)

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1

#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REMOVE_DIR (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR (1ULL << 6)
#define LL_FS_MAKE_DIR (1ULL << 7)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_FS_MAKE_SOCK (1ULL << 9)
#define LL_FS_MAKE_FIFO (1ULL << 10)
#define LL_FS_MAKE_BLOCK (1ULL << 11)
#define LL_FS_MAKE_SYM (1ULL << 12)
#define LL_FS_REFER (1ULL << 13)      // ABI 2
#define LL_FS_TRUNCATE (1ULL << 14)   // ABI 3
#define LL_FS_IOCTL_DEV (1ULL << 15)  // ABI 5
#define LL_NET_BIND_TCP (1ULL << 0)   // ABI 4
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)  // ABI 6
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;  // ABI 4
    uint64_t scoped;              // ABI 6
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int csb_landlock_abi(void) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return abi < 0 ? -errno : (int)abi;
}

/// Rights that apply to a file (as opposed to a directory): a rule on a file may hold only these.
static const uint64_t file_rights = LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV;

static int add_paths(int ruleset, const char *const *paths, size_t count, uint64_t rights, uint64_t handled,
                     char *message, size_t message_size) {
    for (size_t i = 0; i < count; i++) {
        int fd = open(paths[i], O_PATH | O_CLOEXEC);
        if (fd < 0) continue;  // a path that does not exist grants nothing
        struct stat st;
        uint64_t allowed = rights & handled;
        if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) allowed &= file_rights;
        struct ll_path_beneath_attr rule = { .allowed_access = allowed, .parent_fd = fd };
        long rc = syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0);
        int e = errno;
        close(fd);
        if (rc != 0) {
            snprintf(message, message_size, "landlock_add_rule(%s) failed: %s", paths[i], strerror(e));
            return -e;
        }
    }
    return 0;
}

int csb_landlock_apply(const char *const *read_paths, size_t read_count,
                       const char *const *write_paths, size_t write_count,
                       int strict, char *message, size_t message_size) {
    int abi = csb_landlock_abi();
    if (abi < 0) {
        snprintf(message, message_size, "the kernel offers no Landlock (%s)", strerror(-abi));
        return abi;
    }
    struct ll_ruleset_attr attr = { 0 };
    attr.handled_access_fs = LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR |
        LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR | LL_FS_MAKE_REG |
        LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK | LL_FS_MAKE_SYM;
    if (abi >= 2) attr.handled_access_fs |= LL_FS_REFER;
    if (abi >= 3) attr.handled_access_fs |= LL_FS_TRUNCATE;
    if (abi >= 5) attr.handled_access_fs |= LL_FS_IOCTL_DEV;
    size_t size = offsetof(struct ll_ruleset_attr, handled_access_net);
    if (abi >= 4) {
        size = offsetof(struct ll_ruleset_attr, scoped);
        if (strict) attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
    }
    if (abi >= 6) {
        size = sizeof attr;
        // Signals are scoped in every profile: nothing in the sandbox may signal a process outside.
        attr.scoped = LL_SCOPE_SIGNAL | (strict ? LL_SCOPE_ABSTRACT_UNIX_SOCKET : 0);
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0) {
        int e = errno;
        snprintf(message, message_size, "landlock_create_ruleset failed: %s", strerror(e));
        return -e;
    }
    const uint64_t read = LL_FS_READ_FILE | LL_FS_READ_DIR;
    const uint64_t write = read | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_DIR |
        LL_FS_MAKE_REG | LL_FS_MAKE_SYM | LL_FS_REFER | LL_FS_TRUNCATE;
    int rc = add_paths(ruleset, read_paths, read_count, read, attr.handled_access_fs, message, message_size);
    if (rc == 0) rc = add_paths(ruleset, write_paths, write_count, write, attr.handled_access_fs, message, message_size);
    if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
        rc = -errno;
        snprintf(message, message_size, "landlock_restrict_self failed: %s", strerror(-rc));
    }
    close(ruleset);
    return rc == 0 ? abi : rc;
}

// MARK: - seccomp

int csb_seccomp_load(const void *program, size_t length) {
    struct sock_fprog prog = { .len = (unsigned short)(length / sizeof(struct sock_filter)),
                               .filter = (struct sock_filter *)program };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0) return 0;
    if (errno == ENOSYS || errno == EINVAL) {
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0) return 0;
    }
    return -errno;
}

#if defined(__x86_64__)
#define CSB_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CSB_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

int csb_seccomp_signals(pid_t self, int trap) {
#ifdef CSB_AUDIT_ARCH
    const uint32_t deny = trap ? SECCOMP_RET_TRAP : (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
    const uint32_t pid = (uint32_t)self;
    // The low word of args[0] (both architectures are little-endian; pid_t is an int).
    const uint32_t arg0 = offsetof(struct seccomp_data, args[0]);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CSB_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_kill, 4, 0),                // → 9
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_tgkill, 6, 0),              // → 12
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_sigqueueinfo, 5, 0),     // → 12
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_tgsigqueueinfo, 4, 0),   // → 12
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        // 9. kill: 0 (its own group: the host leads a session alone) or itself.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 4, 0),                       // → 15
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, pid, 3, 2),                     // → 15 or 14
        // 12. tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo: itself.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, pid, 1, 0),                     // → 15 or 14
        BPF_STMT(BPF_RET | BPF_K, deny),                                    // 14
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                       // 15
    };
    return csb_seccomp_load(f, sizeof f);
#else
    (void)self; (void)trap;
    return -ENOSYS;
#endif
}

// MARK: - Capabilities, descriptors, signals

int csb_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno; }

int csb_drop_capabilities(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) return -errno;
    int held = __builtin_popcount(data[0].permitted) + __builtin_popcount(data[1].permitted);
    if (held == 0) return 0;
    // The bounding set first (dropping it needs CAP_SETPCAP, which goes last). It only bounds what
    // an execve could grant, and with no_new_privs in force an execve grants nothing the process
    // lacks (the kernel intersects the new permitted set with the old one, emptied below); the
    // host sets no_new_privs first, which saves 41 drops, each a credentials copy (~60 µs in all).
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
        for (int cap = 0; cap <= 63; cap++) {
            int present = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
            if (present < 0) break;  // past the kernel's last capability
            if (present == 1) (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
    }
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) return -errno;
    return held;
}

int csb_close_fds_except(int keep) {
    if (keep > 3 && syscall(SYS_close_range, 3, keep - 1, 0) != 0) return -errno;
    unsigned first = keep >= 3 ? (unsigned)keep + 1 : 3;
    if (syscall(SYS_close_range, first, ~0U, 0) != 0) return -errno;
    return 0;
}

extern char **environ;

void csb_scrub_environment(const char *const *keep, size_t keep_count) {
    if (!environ) return;
    size_t out = 0;
    for (size_t i = 0; environ[i]; i++) {
        const char *entry = environ[i];
        const char *eq = strchr(entry, '=');
        size_t name_length = eq ? (size_t)(eq - entry) : strlen(entry);
        for (size_t k = 0; k < keep_count; k++) {
            if (strlen(keep[k]) == name_length && memcmp(keep[k], entry, name_length) == 0) {
                environ[out++] = environ[i];
                break;
            }
        }
    }
    environ[out] = NULL;
}

static void exit_with_signal_status(int sig) { _exit(128 + sig); }

void csb_install_init_signal_handlers(void) {
    static const int fatal[] = { SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE,
                                 SIGUSR1, SIGSEGV, SIGUSR2, SIGALRM, SIGTERM, SIGXCPU, SIGXFSZ,
                                 SIGVTALRM, SIGPROF, SIGSYS };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = exit_with_signal_status;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) (void)sigaction(fatal[i], &sa, NULL);
}

static int violation_die_syscall;

static void on_violation(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)context;
    char line[96] = "space-host: sandbox violation: system call ";
    size_t n = strlen(line);
    char digits[16];
    int d = 0;
    unsigned v = info->si_syscall < 0 ? 0 : (unsigned)info->si_syscall;
    do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v && d < 15);
    while (d > 0) line[n++] = digits[--d];
    line[n++] = '\n';
    (void)!write(2, line, n);
    syscall(violation_die_syscall, -1, -1, 0, 0, 0);
    _exit(128 + SIGSYS);  // not reached: the filter kills the process on that call
}

void csb_install_violation_handler(int die_syscall) {
    violation_die_syscall = die_syscall;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_violation;
    sa.sa_flags = SA_SIGINFO;
    sigfillset(&sa.sa_mask);
    (void)sigaction(SIGSYS, &sa, NULL);
}

pid_t csb_outer_pid(void) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return getpid();
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return getpid();
    buf[n] = 0;
    char *line = strstr(buf, "\nNSpid:");
    if (!line) return getpid();
    line += 7;
    while (*line == ' ' || *line == '\t') line++;
    long pid = 0;
    while (*line >= '0' && *line <= '9') pid = pid * 10 + (*line++ - '0');
    return pid > 0 ? (pid_t)pid : getpid();
}
