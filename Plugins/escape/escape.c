// escape: an adversary plugin, for the sandbox tests of the host. Each escape.* entry named after an
// attempt tries to get through one wall of the sandbox (open a socket, fork, exec, read or write a
// file, trace or signal another process, enter or make a namespace, mount, chroot, raise a resource
// limit, use bpf, perf, keys or io_uring) and returns 0 if the attempt SUCCEEDED (the wall did not
// hold) or the positive errno of the failure (the wall held), so a test asserts each wall with one call
// and checks that normal things (a thread, reading an allowed file) still work.
//
// Never harm the machine when a wall does not hold: whatever succeeded is undone at once (fds are
// closed, a created file is unlinked, a traced process is detached, a forked child _exit(0)s, a mount is
// detached, a chroot or a namespace is left again where possible, a raised limit is put back).
//
// The remaining entries report the state of the process as the sandbox left it: ids, environment,
// open fds, no_new_privs, seccomp mode, effective capabilities, resource limits, and how much memory
// malloc can really get.
//
// Only libc and Linux UAPI headers are used (no libseccomp); raw syscalls go through syscall(2).
#define _GNU_SOURCE

#include <space_plugin.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>

#ifndef NS_GET_NSTYPE
#define NS_GET_NSTYPE _IO(0xb7, 0x3)   // linux/nsfs.h
#endif

/// The errno of the last failure, never 0 (a failure that left errno 0 reports EIO).
static int32_t failure(void) {
    return errno > 0 ? errno : EIO;
}

/// Closes `fd` keeping errno as it was.
static void close_quietly(int fd) {
    if (fd < 0) return;
    int saved = errno;
    close(fd);
    errno = saved;
}

/// Waits for the child `pid`, resuming after signals; a failure (ECHILD when SIGCHLD is ignored) is
/// ignored: the child has gone either way.
static void reap(pid_t pid) {
    while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {}
}

// MARK: - Namespaces: saving and going back

/// The namespaces setns and unshare may move this thread out of, and their names in /proc/…/ns.
static const struct { int type; const char *name; } namespace_kinds[] = {
    { CLONE_NEWNS, "mnt" },
    { CLONE_NEWNET, "net" },
    { CLONE_NEWUTS, "uts" },
    { CLONE_NEWIPC, "ipc" },
    { CLONE_NEWCGROUP, "cgroup" },
    { CLONE_NEWPID, "pid_for_children" },
#ifdef CLONE_NEWTIME
    { CLONE_NEWTIME, "time_for_children" },
#endif
    { CLONE_NEWUSER, "user" },   // last: leaving a user namespace first would cost the rights to go back
};
enum { namespace_kind_count = sizeof namespace_kinds / sizeof namespace_kinds[0] };

/// Opens this thread's current namespace of every kind in `types` into `fds` (-1 where it cannot), so
/// a namespace left by a successful setns or unshare can be entered again. Best effort: without /proc
/// nothing can be saved, and the attempt goes ahead anyway.
static void save_namespaces(int types, int fds[namespace_kind_count]) {
    int saved = errno;
    for (int i = 0; i < namespace_kind_count; i++) {
        fds[i] = -1;
        if (!(types & namespace_kinds[i].type)) continue;
        char path[64];
        strcpy(path, "/proc/thread-self/ns/");
        strcat(path, namespace_kinds[i].name);
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    }
    errno = saved;
}

/// Enters the saved namespaces again (best effort) and closes them.
static void restore_namespaces(int fds[namespace_kind_count]) {
    int saved = errno;
    for (int i = 0; i < namespace_kind_count; i++) {
        if (fds[i] < 0) continue;
        setns(fds[i], namespace_kinds[i].type);
        close(fds[i]);
        fds[i] = -1;
    }
    errno = saved;
}

/// Closes the saved namespaces without entering them.
static void drop_namespaces(int fds[namespace_kind_count]) {
    for (int i = 0; i < namespace_kind_count; i++) close_quietly(fds[i]);
}

// MARK: - Network

/// socket(domain, SOCK_STREAM, 0), for AF_UNIX too; closed at once.
static int32_t escape_socket(int32_t domain) {
    int fd = socket(domain, SOCK_STREAM, 0);
    if (fd < 0) return failure();
    close(fd);
    return 0;
}

/// socketpair(AF_UNIX, SOCK_STREAM, 0); both ends closed at once.
static int32_t escape_socketpair(void) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return failure();
    close(fds[0]);
    close(fds[1]);
    return 0;
}

/// A TCP connection to ip:port (IPv4 dotted quad): the errno of whichever step failed (EINVAL for a
/// bad address or port). The connect gives up after 5 s (then EINPROGRESS) so a black-holed address
/// cannot hang the host.
static int32_t escape_connect(const char *ip, int32_t port) {
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    if (!ip || port < 0 || port > 65535 || inet_pton(AF_INET, ip, &address.sin_addr) != 1) return EINVAL;
    address.sin_port = htons((uint16_t)port);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return failure();
    struct timeval timeout = { .tv_sec = 5, .tv_usec = 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);   // best effort
    int rc;
    while ((rc = connect(fd, (const struct sockaddr *)&address, sizeof address)) != 0 && errno == EINTR) {}
    int32_t result = rc == 0 ? 0 : failure();
    close(fd);
    return result;
}

// MARK: - Processes and threads

/// fork(): the child _exit(0)s at once, the parent reaps it.
static int32_t escape_fork(void) {
    pid_t pid = fork();
    if (pid < 0) return failure();
    if (pid == 0) _exit(0);
    reap(pid);
    return 0;
}

/// execve(path, {path, NULL}, {NULL}) in this very process. It only returns when it failed: success
/// replaces the host, which is what the test detects.
static int32_t escape_exec(const char *path) {
    if (!path) return EFAULT;
    char *const argv[] = { (char *)path, NULL };
    char *const envp[] = { NULL };
    execve(path, argv, envp);
    return failure();
}

static void *thread_main(void *arg) {
    return arg;
}

/// pthread_create of a thread that returns at once, then pthread_join: 0 or the pthread error code.
static int32_t escape_thread(void) {
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, thread_main, NULL);
    if (rc != 0) return rc;
    rc = pthread_join(thread, NULL);
    return rc;
}

/// struct clone_args of linux/sched.h, spelled out here (that header clashes with <sched.h>).
struct escape_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

/// A raw clone3 with nothing but exit_signal = SIGCHLD (a fork, really): the child _exit(0)s at once,
/// the parent reaps it.
static int32_t escape_clone3(void) {
    struct escape_clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0) return failure();
    if (pid == 0) _exit(0);
    reap((pid_t)pid);
    return 0;
}

// MARK: - Files

/// open(path, O_RDONLY) and a read of one byte; an empty file counts as success.
static int32_t escape_read(const char *path) {
    if (!path) return EFAULT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failure();
    char byte;
    ssize_t n;
    while ((n = read(fd, &byte, 1)) < 0 && errno == EINTR) {}
    int32_t result = n < 0 ? failure() : 0;
    close(fd);
    return result;
}

/// opendir and one readdir.
static int32_t escape_list(const char *dir) {
    if (!dir) return EFAULT;
    DIR *d = opendir(dir);
    if (!d) return failure();
    errno = 0;
    struct dirent *entry = readdir(d);
    int32_t result = !entry && errno != 0 ? failure() : 0;
    closedir(d);
    return result;
}

/// Creates `path` (O_CREAT|O_EXCL, so an existing file is never touched: EEXIST), writes one byte,
/// closes and unlinks it. A failed write is reported by its errno (the file is removed all the same);
/// with RLIMIT_FSIZE at 0 the write is skipped and EFBIG reported, as the write would raise SIGXFSZ.
static int32_t escape_write(const char *path) {
    if (!path) return EFAULT;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return failure();
    int32_t result = 0;
    struct rlimit fsize;
    if (getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur == 0) {
        result = EFBIG;
    } else {
        ssize_t n;
        while ((n = write(fd, "x", 1)) < 0 && errno == EINTR) {}
        if (n < 0) result = failure();
    }
    close(fd);
    unlink(path);
    return result;
}

// MARK: - Other processes

/// PTRACE_ATTACH to `pid`; on success waits for the attach stop and detaches again (signals that
/// arrive first are passed on).
static int32_t escape_ptrace(int32_t pid) {
    if (ptrace(PTRACE_ATTACH, (pid_t)pid, NULL, NULL) != 0) return failure();
    for (int i = 0; i < 64; i++) {
        int status = 0;
        pid_t w = waitpid((pid_t)pid, &status, __WALL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 || !WIFSTOPPED(status)) break;   // gone (or not ours to wait for): nothing to detach
        int sig = WSTOPSIG(status);
        if (sig == SIGSTOP) break;                  // the attach stop: detach below
        ptrace(PTRACE_CONT, (pid_t)pid, NULL, (void *)(intptr_t)sig);
    }
    ptrace(PTRACE_DETACH, (pid_t)pid, NULL, NULL);
    return 0;
}

/// kill(pid, sig).
static int32_t escape_kill(int32_t pid, int32_t sig) {
    return kill((pid_t)pid, sig) == 0 ? 0 : failure();
}

/// process_vm_readv of one byte from `pid`, at the address of a local variable here (after a fork or
/// in the same binary it is mapped there too; EFAULT says the call was allowed but the address not).
static int32_t escape_vm_read(int32_t pid) {
    volatile char here = 1;
    char byte = 0;
    struct iovec local = { .iov_base = &byte, .iov_len = 1 };
    struct iovec remote = { .iov_base = (void *)&here, .iov_len = 1 };
    ssize_t n = process_vm_readv((pid_t)pid, &local, 1, &remote, 1, 0);
    if (n < 0) return failure();
    return n == 1 ? 0 : EFAULT;
}

// MARK: - Namespaces, mounts, chroot

/// unshare(flags). On success the namespaces left are entered again where possible (best effort: a
/// new user namespace cannot be left).
static int32_t escape_unshare(int32_t flags) {
    int saved[namespace_kind_count];
    save_namespaces(flags, saved);
    if (unshare(flags) != 0) {
        int32_t result = failure();
        drop_namespaces(saved);
        return result;
    }
    restore_namespaces(saved);
    return 0;
}

/// open(path, O_RDONLY) and setns(fd, 0): the errno of whichever failed. On success the namespace left
/// is entered again where possible.
static int32_t escape_setns(const char *path) {
    if (!path) return EFAULT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failure();
    int type = ioctl(fd, NS_GET_NSTYPE);
    int saved[namespace_kind_count];
    save_namespaces(type > 0 ? type : 0, saved);
    int rc = setns(fd, 0);
    int32_t result = rc == 0 ? 0 : failure();
    if (rc == 0) restore_namespaces(saved);
    else drop_namespaces(saved);
    close(fd);
    return result;
}

/// mount("none", target, "tmpfs", 0, NULL); on success detached again at once.
static int32_t escape_mount(const char *target) {
    if (!target) return EFAULT;
    if (mount("none", target, "tmpfs", 0, NULL) != 0) return failure();
    umount2(target, MNT_DETACH);
    return 0;
}

/// chroot(path). On success the old root and working directory are entered again (with the same
/// right that let chroot succeed).
static int32_t escape_chroot(const char *path) {
    if (!path) return EFAULT;
    int old_root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int old_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int32_t result = 0;
    if (chroot(path) != 0) {
        result = failure();
    } else if (old_root >= 0) {
        if (fchdir(old_root) == 0) {
            if (chroot(".") != 0) { /* nothing more to try */ }
        }
        if (old_cwd >= 0 && fchdir(old_cwd) != 0) { /* best effort */ }
    }
    close_quietly(old_root);
    close_quietly(old_cwd);
    return result;
}

// MARK: - Resource limits

/// Tries to raise `resource` to soft = hard = RLIM_INFINITY (when the hard limit is already infinite
/// this is setting the soft limit to the hard one, which succeeds). On success the old limits are put
/// back.
static int32_t escape_raise_rlimit(int32_t resource) {
    struct rlimit old;
    if (getrlimit((__rlimit_resource_t)resource, &old) != 0) return failure();
    struct rlimit raised = { .rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY };
    if (setrlimit((__rlimit_resource_t)resource, &raised) != 0) return failure();
    setrlimit((__rlimit_resource_t)resource, &old);   // lowering back is always allowed
    return 0;
}

/// The current soft limit of `resource`: -1 for RLIM_INFINITY, -errno on failure.
static int64_t escape_rlimit(int32_t resource) {
    struct rlimit limit;
    if (getrlimit((__rlimit_resource_t)resource, &limit) != 0) return -(int64_t)failure();
    if (limit.rlim_cur == RLIM_INFINITY) return -1;
    return (int64_t)limit.rlim_cur;
}

// MARK: - Kernel facilities

/// bpf(BPF_MAP_CREATE) of a one-entry hash map of 4-byte keys and values; closed at once.
static int32_t escape_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_HASH;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    if (fd < 0) return failure();
    close((int)fd);
    return 0;
}

/// perf_event_open of a software cpu-clock counter on this process (user space only, disabled);
/// closed at once.
static int32_t escape_perf(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    if (fd < 0) return failure();
    close((int)fd);
    return 0;
}

/// add_key("user", "space-escape", "x") to the process keyring; on success the key is unlinked again.
static int32_t escape_keyctl(void) {
    long key = syscall(SYS_add_key, "user", "space-escape", "x", (size_t)1, KEY_SPEC_PROCESS_KEYRING);
    if (key < 0) return failure();
    syscall(SYS_keyctl, KEYCTL_UNLINK, key, KEY_SPEC_PROCESS_KEYRING);
    return 0;
}

/// struct io_uring_params of linux/io_uring.h (120 bytes), spelled out here: that header pulls in
/// linux/mount.h, which clashes with <sys/mount.h>. io_uring_setup only needs it zeroed.
struct escape_io_uring_params {
    uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd, resv[3];
    uint64_t sq_off[5];
    uint64_t cq_off[5];
};
_Static_assert(sizeof(struct escape_io_uring_params) == 120, "struct io_uring_params is 120 bytes");

/// io_uring_setup(1, zeroed params); the ring is closed at once.
static int32_t escape_io_uring(void) {
    struct escape_io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(SYS_io_uring_setup, 1u, &params);
    if (fd < 0) return failure();
    close((int)fd);
    return 0;
}

// MARK: - What the process looks like

static int32_t escape_getpid(void) { return (int32_t)getpid(); }
static int32_t escape_getppid(void) { return (int32_t)getppid(); }

/// getsid(0), or -errno.
static int32_t escape_getsid(void) {
    pid_t sid = getsid(0);
    return sid < 0 ? -failure() : (int32_t)sid;
}

static int32_t escape_getuid(void) { return (int32_t)getuid(); }

/// 1 if the environment variable `name` is set (even empty), else 0.
static int32_t escape_env(const char *name) {
    return name && getenv(name) ? 1 : 0;
}

/// How many of the fds 0…4095 are open.
static int32_t escape_open_fds(void) {
    int32_t count = 0;
    for (int fd = 0; fd < 4096; fd++) {
        if (fcntl(fd, F_GETFD) != -1) count++;
    }
    return count;
}

/// prctl(PR_GET_NO_NEW_PRIVS): 1 if set; -errno on failure.
static int32_t escape_no_new_privs(void) {
    int rc = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    return rc < 0 ? -failure() : rc;
}

/// prctl(PR_GET_SECCOMP): 0 none, 2 filter; -errno on failure.
static int32_t escape_seccomp(void) {
    int rc = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
    return rc < 0 ? -failure() : rc;
}

/// The effective capability set as a 64-bit mask (capget, version 3), or -errno.
static int64_t escape_capabilities(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) return -(int64_t)failure();
    return (int64_t)(((uint64_t)data[1].effective << 32) | (uint64_t)data[0].effective);
}

/// Allocates up to `mib` MiB, 1 MiB at a time, touching every page, and returns how many MiB it got
/// before malloc returned NULL. Everything is freed before returning; NULL is never used.
static int64_t escape_memory(int64_t mib) {
    const size_t chunk = (size_t)1 << 20;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    // The chunks form a list: the first bytes of each hold the previous one.
    void *last = NULL;
    int64_t got = 0;
    while (got < mib) {
        char *p = malloc(chunk);
        if (!p) break;
        for (size_t offset = 0; offset < chunk; offset += (size_t)page) {
            ((volatile char *)p)[offset] = (char)(offset | 1);   // volatile: really touch the page
        }
        memcpy(p, &last, sizeof last);
        last = p;
        got++;
    }
    while (last) {
        void *previous;
        memcpy(&previous, last, sizeof previous);
        free(last);
        last = previous;
    }
    return got;
}

static const space_entry entries[] = {
    { "escape.socket", SPACE_FN(escape_socket), "int32_t (int32_t domain)" },
    { "escape.socketpair", SPACE_FN(escape_socketpair), "int32_t (void)" },
    { "escape.connect", SPACE_FN(escape_connect), "int32_t (const char *ip, int32_t port)" },
    { "escape.fork", SPACE_FN(escape_fork), "int32_t (void)" },
    { "escape.exec", SPACE_FN(escape_exec), "int32_t (const char *path)" },
    { "escape.thread", SPACE_FN(escape_thread), "int32_t (void)" },
    { "escape.clone3", SPACE_FN(escape_clone3), "int32_t (void)" },
    { "escape.read", SPACE_FN(escape_read), "int32_t (const char *path)" },
    { "escape.list", SPACE_FN(escape_list), "int32_t (const char *dir)" },
    { "escape.write", SPACE_FN(escape_write), "int32_t (const char *path)" },
    { "escape.ptrace", SPACE_FN(escape_ptrace), "int32_t (int32_t pid)" },
    { "escape.kill", SPACE_FN(escape_kill), "int32_t (int32_t pid, int32_t sig)" },
    { "escape.vm_read", SPACE_FN(escape_vm_read), "int32_t (int32_t pid)" },
    { "escape.unshare", SPACE_FN(escape_unshare), "int32_t (int32_t flags)" },
    { "escape.setns", SPACE_FN(escape_setns), "int32_t (const char *path)" },
    { "escape.mount", SPACE_FN(escape_mount), "int32_t (const char *target)" },
    { "escape.chroot", SPACE_FN(escape_chroot), "int32_t (const char *path)" },
    { "escape.raise_rlimit", SPACE_FN(escape_raise_rlimit), "int32_t (int32_t resource)" },
    { "escape.rlimit", SPACE_FN(escape_rlimit), "int64_t (int32_t resource)" },
    { "escape.bpf", SPACE_FN(escape_bpf), "int32_t (void)" },
    { "escape.perf", SPACE_FN(escape_perf), "int32_t (void)" },
    { "escape.keyctl", SPACE_FN(escape_keyctl), "int32_t (void)" },
    { "escape.io_uring", SPACE_FN(escape_io_uring), "int32_t (void)" },
    { "escape.getpid", SPACE_FN(escape_getpid), "int32_t (void)" },
    { "escape.getppid", SPACE_FN(escape_getppid), "int32_t (void)" },
    { "escape.getsid", SPACE_FN(escape_getsid), "int32_t (void)" },
    { "escape.getuid", SPACE_FN(escape_getuid), "int32_t (void)" },
    { "escape.env", SPACE_FN(escape_env), "int32_t (const char *name)" },
    { "escape.open_fds", SPACE_FN(escape_open_fds), "int32_t (void)" },
    { "escape.no_new_privs", SPACE_FN(escape_no_new_privs), "int32_t (void)" },
    { "escape.seccomp", SPACE_FN(escape_seccomp), "int32_t (void)" },
    { "escape.capabilities", SPACE_FN(escape_capabilities), "int64_t (void)" },
    { "escape.memory", SPACE_FN(escape_memory), "int64_t (int64_t mib)" },
    SPACE_END
};

// Not SPACE_PLUGIN_THREAD_SAFE: unshare, setns and chroot change the whole process and undo it after.
SPACE_PLUGIN(.name = "escape", .version = "1.0.0", .entries = entries)
