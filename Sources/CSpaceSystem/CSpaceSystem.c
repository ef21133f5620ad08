#define _GNU_SOURCE
#include "CSpaceSystem.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <spawn.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

/// The child starts with no signal blocked and every disposition at its default (the parent may
/// ignore SIGPIPE or route SIGINT to a pipe); `extra` adds spawn flags.
static int reset_signals(posix_spawnattr_t *attr, short extra) {
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    int rc = posix_spawnattr_setsigmask(attr, &none);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(attr, &all);
    if (rc == 0) rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | extra);
    return rc;
}

static int spawn_now(const char *path, char *const argv[], char *const envp[], int channel_fd,
                     int stderr_fd, int quiet_stdio, pid_t *pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&fa); return rc; }

    if (quiet_stdio) {
        if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0))) goto out;
        if ((rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0))) goto out;
    }
    if (stderr_fd >= 0 && stderr_fd != 2) {
        if ((rc = posix_spawn_file_actions_adddup2(&fa, stderr_fd, 2))) goto out;
    }
    if (channel_fd != 3) {
        if ((rc = posix_spawn_file_actions_adddup2(&fa, channel_fd, 3))) goto out;
    } else {
        // dup2 onto itself would keep FD_CLOEXEC; the host must inherit fd 3.
        if (cs_set_cloexec(3, 0) != 0) { rc = errno; goto out; }
    }
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&fa, 4))) goto out;

    if ((rc = reset_signals(&attr, 0))) goto out;

    rc = posix_spawn(pid, path, &fa, &attr, argv, envp);
out:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}


// MARK: - Spawning into namespaces

/// What the clone child needs; it runs on its own stack in the parent's memory until it execs, so
/// everything here is prepared by the parent and the child only makes system calls.
struct clone_job {
    const char *path;
    char *const *argv;
    char *const *envp;
    int channel_fd, stderr_fd, quiet_stdio;
    int flags;            // the CLONE_NEW* flags
    uid_t uid;
    gid_t gid;
    int error_fd;         // write end (O_CLOEXEC): the child writes its errno here if it cannot exec
};

/// Formats "ID ID 1" (an identity map of one id) into `buf`; returns the length.
static size_t identity_map(char *buf, unsigned id) {
    char digits[12];
    int d = 0;
    do { digits[d++] = (char)('0' + id % 10); id /= 10; } while (id);
    size_t n = 0;
    for (int twice = 0; twice < 2; twice++) {
        for (int i = d - 1; i >= 0; i--) buf[n++] = digits[i];
        buf[n++] = ' ';
    }
    buf[n++] = '1';
    buf[n++] = '\n';
    return n;
}

static int write_file(const char *path, const char *text, size_t n) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t w = write(fd, text, n);
    int e = w == (ssize_t)n ? 0 : (w < 0 ? errno : EIO);
    close(fd);
    return e;
}

static int clone_child(void *arg) {
    struct clone_job *job = arg;
    int e = 0;
    // Every disposition back to default (the parent's handlers are not the host's), as posix_spawn's
    // POSIX_SPAWN_SETSIGDEF; every signal stays blocked until just before exec.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) (void)sigaction(sig, &dfl, NULL);
    }
    if (job->flags & CLONE_NEWUSER) {
        // Map our own uid and gid only: no privilege outside is needed for that, and none is gained.
        char map[32];
        if ((e = write_file("/proc/self/setgroups", "deny", 4)) != 0 && e != ENOENT) goto fail;
        if ((e = write_file("/proc/self/uid_map", map, identity_map(map, job->uid))) != 0) goto fail;
        if ((e = write_file("/proc/self/gid_map", map, identity_map(map, job->gid))) != 0) goto fail;
    }
    if (job->flags & CLONE_NEWNS) {
        // Nothing mounted inside propagates out, nor the other way. (/proc stays the outer one, so
        // the host can read its pid as the client knows it; Landlock lets it read only /proc/self.)
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) { e = errno; goto fail; }
    }
    if (job->quiet_stdio) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0) { e = errno; goto fail; }
        if (dup2(null, 0) < 0 || dup2(null, 1) < 0) { e = errno; goto fail; }
        if (null > 2) close(null);
    }
    if (job->stderr_fd >= 0 && job->stderr_fd != 2 && dup2(job->stderr_fd, 2) < 0) { e = errno; goto fail; }
    if (job->channel_fd != 3) {
        if (dup2(job->channel_fd, 3) < 0) { e = errno; goto fail; }
    } else if (cs_set_cloexec(3, 0) != 0) {
        e = errno;
        goto fail;
    }
    // Everything else closes at exec (not now: error_fd must live until then).
    if (syscall(SYS_close_range, 4, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) != 0) { e = errno; goto fail; }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(job->path, job->argv, job->envp);
    e = errno;
fail:
    (void)!write(job->error_fd, &e, sizeof e);
    _exit(127);
}

/// One clone attempt with `flags`; 0 with *pid set, or the errno of the refusal.
static int clone_spawn(struct clone_job *job, pid_t *pid) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return errno;
    job->error_fd = p[1];
    const size_t stack_size = 64 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    // No handler of ours may run in the child before it resets them.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t child = clone(clone_child, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD | job->flags, job);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);
    close(p[1]);
    if (child < 0) {
        close(p[0]);
        return clone_errno;
    }
    // CLONE_VFORK: the child has exec'd (its copy of the pipe closed) or failed (and wrote why).
    int e = 0;
    ssize_t n;
    while ((n = read(p[0], &e, sizeof e)) < 0 && errno == EINTR) {}
    close(p[0]);
    if (n == (ssize_t)sizeof e) {
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {}
        return e ? e : EIO;
    }
    *pid = child;
    return 0;
}

static int ns_bits(int flags) {
    return ((flags & CLONE_NEWUSER) ? CS_NS_USER : 0) | ((flags & CLONE_NEWNS) ? CS_NS_MOUNT : 0) |
           ((flags & CLONE_NEWPID) ? CS_NS_PID : 0) | ((flags & CLONE_NEWNET) ? CS_NS_NET : 0);
}

static int spawn_in_now(const char *path, char *const argv[], char *const envp[], int channel_fd,
                        int stderr_fd, int quiet_stdio, int namespaces, char *made_digit, int *made,
                        int *refusal, pid_t *pid) {
    int flags = 0;
    if (namespaces & CS_NS_USER) flags |= CLONE_NEWUSER;
    if (namespaces & CS_NS_MOUNT) flags |= CLONE_NEWNS;
    if (namespaces & CS_NS_PID) flags |= CLONE_NEWPID;
    if (namespaces & CS_NS_NET) flags |= CLONE_NEWNET;
    *refusal = 0;
    *made = 0;
    struct clone_job job = { path, argv, envp, channel_fd, stderr_fd, quiet_stdio, flags, geteuid(), getegid(), -1 };
    // As asked; then without a user namespace (a privileged parent needs none for the others).
    int attempts[2] = { flags, flags & ~CLONE_NEWUSER };
    for (int i = 0; i < 2; i++) {
        if (attempts[i] == 0 || (i == 1 && attempts[1] == attempts[0])) continue;
        job.flags = attempts[i];
        if (made_digit) *made_digit = "0123456789abcdef"[ns_bits(job.flags)];
        int e = clone_spawn(&job, pid);
        if (e == 0) {
            *made = ns_bits(job.flags);
            return 0;
        }
        if (*refusal == 0) *refusal = e;
        if (e == ENOENT || e == EACCES || e == ENOEXEC) return e;  // the executable itself is the problem
    }
    if (made_digit) *made_digit = '0';
    return spawn_now(path, argv, envp, channel_fd, stderr_fd, quiet_stdio, pid);
}

/// A spawn request handed to its own thread, and the answer handed back through `done`.
struct spawn_job {
    const char *path;
    char *const *argv;
    char *const *envp;
    int channel_fd, stderr_fd, quiet_stdio;
    int namespaces;
    char *made_digit;
    int made, refusal;
    pid_t pid;
    int rc;
    int done;  // write end of a pipe: one byte when rc and pid are set
};

/// Spawns, reports, then stays until the child exits: PR_SET_PDEATHSIG fires when the *thread* that
/// created the child exits, and the Swift runtime retires idle pool threads after a few seconds,
/// which would kill every host spawned from one. This thread lives exactly as long as its child.
static void *spawn_thread(void *arg) {
    struct spawn_job *job = arg;
    if (job->namespaces) {
        job->rc = spawn_in_now(job->path, job->argv, job->envp, job->channel_fd, job->stderr_fd,
                               job->quiet_stdio, job->namespaces, job->made_digit, &job->made, &job->refusal,
                               &job->pid);
    } else {
        job->rc = spawn_now(job->path, job->argv, job->envp, job->channel_fd, job->stderr_fd,
                            job->quiet_stdio, &job->pid);
    }
    pid_t pid = job->rc == 0 ? job->pid : 0;
    int done = job->done;
    char one = 1;
    (void)!write(done, &one, 1);  // after this, `job` belongs to the caller again
    if (pid > 0) {
        siginfo_t info;
        // Wait for the exit without reaping it: the client reaps (and may get there first: ECHILD).
        while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {}
    }
    return NULL;
}

int cs_spawn(const char *path, char *const argv[], char *const envp[], int channel_fd,
             int stderr_fd, int quiet_stdio, pid_t *pid) {
    int made, refusal;
    return cs_spawn_in(path, argv, envp, channel_fd, stderr_fd, quiet_stdio, 0, NULL, &made, &refusal, pid);
}

int cs_spawn_in(const char *path, char *const argv[], char *const envp[], int channel_fd,
                int stderr_fd, int quiet_stdio, int namespaces, char *made_digit, int *made, int *refusal,
                pid_t *pid) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return errno;
    struct spawn_job job = { path, argv, envp, channel_fd, stderr_fd, quiet_stdio, namespaces, made_digit, 0, 0, 0, 0, p[1] };
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t tid;
    int rc = pthread_create(&tid, &attr, spawn_thread, &job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(p[0]);
        close(p[1]);
        return rc;
    }
    char b;
    while (read(p[0], &b, 1) < 0 && errno == EINTR) {}
    close(p[0]);
    close(p[1]);
    *pid = job.pid;
    *made = job.made;
    *refusal = job.refusal;
    return job.rc;
}

int cs_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int cs_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int cs_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

int cs_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, flags);
}

int cs_set_nonblocking(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags);
}

int cs_eventfd(void) { return eventfd(0, EFD_CLOEXEC); }

int cs_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

int cs_spawn_detached(const char *path, char *const argv[], char *const envp[], int log_fd, pid_t *pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&fa); return rc; }
    if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0))) goto out;
    if (log_fd >= 0) {
        if ((rc = posix_spawn_file_actions_adddup2(&fa, log_fd, 1))) goto out;
        if ((rc = posix_spawn_file_actions_adddup2(&fa, log_fd, 2))) goto out;
    } else {
        if ((rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0))) goto out;
        if ((rc = posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0))) goto out;
    }
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3))) goto out;
    if ((rc = reset_signals(&attr, POSIX_SPAWN_SETSID))) goto out;
    rc = posix_spawn(pid, path, &fa, &attr, argv, envp);
out:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static int unix_address(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof addr->sun_path) { errno = ENAMETOOLONG; return -1; }
    memcpy(addr->sun_path, path, n + 1);
    return 0;
}

int cs_unix_listen(const char *path, int backlog) {
    struct sockaddr_un addr;
    if (unix_address(path, &addr) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int cs_unix_connect(const char *path) {
    struct sockaddr_un addr;
    if (unix_address(path, &addr) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int rc;
    do { rc = connect(fd, (struct sockaddr *)&addr, sizeof addr); } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int cs_peer_credentials(int fd, uid_t *uid, pid_t *pid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    *pid = cred.pid;
    return 0;
}

static int epoll_control(int epfd, int op, int fd, unsigned events, unsigned long long tag) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = tag;
    return epoll_ctl(epfd, op, fd, &ev);
}

int cs_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cs_epoll_del(int epfd, int fd) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
}

int cs_accept(int listen_fd) { return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

int cs_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC | O_NONBLOCK); }

int cs_epoll_add(int epfd, int fd, unsigned events, unsigned long long tag) {
    return epoll_control(epfd, EPOLL_CTL_ADD, fd, events, tag);
}

int cs_epoll_mod(int epfd, int fd, unsigned events, unsigned long long tag) {
    return epoll_control(epfd, EPOLL_CTL_MOD, fd, events, tag);
}

int cs_epoll_wait(int epfd, unsigned *events, unsigned long long *tags, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        events[i] = evs[i].events;
        tags[i] = evs[i].data.u64;
    }
    return n;
}

static atomic_int signal_pipe_fd = -1;

static void signal_to_pipe(int sig) {
    int saved = errno;
    int fd = atomic_load(&signal_pipe_fd);
    if (fd >= 0) {
        unsigned char b = (unsigned char)sig;
        (void)!write(fd, &b, 1);
    }
    errno = saved;
}

int cs_signal_to_pipe(int sig, int fd) {
    atomic_store(&signal_pipe_fd, fd);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = signal_to_pipe;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int cs_raise_open_file_limit(void) {
    struct rlimit l;
    if (getrlimit(RLIMIT_NOFILE, &l) != 0) return -1;
    if (l.rlim_cur >= l.rlim_max) return 0;
    l.rlim_cur = l.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &l);
}
