// CSpaceSystem: thin OS shims shared by the client (Space) and the host (space-host).
//
// Why each shim exists:
// - cs_spawn: posix_spawn with `posix_spawn_file_actions_addclosefrom_np` (a GNU extension that
//   needs _GNU_SOURCE, invisible to Swift's Glibc module) and sigset macros; it puts the channel
//   on fd 3 and closes every other inherited fd in one place, without fork from a big parent.
// - cs_spawn_in: namespaces need clone(2) with a stack of our own, and the child's work between clone
//   and exec (uid maps, mounts, descriptors) must be async-signal-safe C.
// - cs_pidfd_open / cs_pidfd_send_signal: raw syscalls glibc 2.36 wraps but Swift's Glibc does not import.
// - cs_set_pdeathsig: prctl is variadic in C, so Swift cannot call it.
// - cs_set_cloexec, cs_set_nonblocking: fcntl is variadic in C, so Swift cannot call it.
// - cs_eventfd: <sys/eventfd.h> is not part of Swift's Glibc module.
// - cs_pin_to_cpu: CPU_ZERO/CPU_SET are macros over cpu_set_t, which Swift cannot expand
//   (space-bench pins its floor processes so the floor does not depend on scheduler placement).
// - cs_spawn_detached: the CLI starts the daemon in its own session (POSIX_SPAWN_SETSID), with its
//   output in a log file; the same closefrom/sigset reasons as cs_spawn.
// - cs_unix_listen / cs_unix_connect: filling sockaddr_un's fixed char array is a tuple in Swift.
// - cs_peer_credentials: struct ucred needs _GNU_SOURCE, invisible to Swift's Glibc module.
// - cs_epoll_*, cs_accept, cs_pipe: sys/epoll.h, accept4 and pipe2 are not visible to Swift's
//   Glibc module; and struct epoll_event is packed on x86-64; Swift's import of it is unreliable, so the
//   daemon's event loop passes (events, 64-bit tag) pairs through these instead.
// - cs_signal_to_pipe: a signal handler must be a C function (async-signal-safe write to a pipe);
//   the daemon's loop and the CLI's `--follow` read the pipe instead of handling signals in Swift.
#ifndef CSPACE_SYSTEM_H
#define CSPACE_SYSTEM_H

#include <sys/types.h>

/// Spawns `path` with `argv`/`envp`. In the child, `channel_fd` becomes fd 3, `stderr_fd` (if >= 0)
/// becomes fd 2, stdin/stdout become /dev/null when `quiet_stdio` is set, and every fd above 3 is
/// closed. Signal mask and dispositions are reset. Returns 0 and sets `*pid`, or an errno value.
/// The child is created by a thread that lives until the child exits, so its PR_SET_PDEATHSIG
/// means "the parent process died", not "the calling thread exited".
int cs_spawn(const char *path, char *const argv[], char *const envp[], int channel_fd,
             int stderr_fd, int quiet_stdio, pid_t *pid);

/// Namespaces cs_spawn_in can give the child.
enum {
    CS_NS_USER = 1,
    CS_NS_MOUNT = 2,
    CS_NS_PID = 4,
    CS_NS_NET = 8,
};

/// cs_spawn, in new namespaces (`CS_NS_*` bits) where the kernel allows them. The child is made with
/// clone(CLONE_VM | CLONE_VFORK | CLONE_NEW…), maps its own uid and gid (a user namespace needs no
/// privilege for that), makes its mounts private, then execs. If the kernel refuses, it tries without a user namespace (root needs none), then without
/// namespaces. `*made` gets the namespaces the child has; `*refusal` the errno of the first refusal
/// (0 when every namespace asked for was made). `made_digit`, if not NULL, is one character of an
/// argv string: before each attempt it is set to the hex digit of that attempt's `CS_NS_*` bits, so
/// the child reads on its command line which namespaces it is in.
int cs_spawn_in(const char *path, char *const argv[], char *const envp[], int channel_fd,
                int stderr_fd, int quiet_stdio, int namespaces, char *made_digit, int *made, int *refusal,
                pid_t *pid);

/// A pidfd for `pid`, or -1 with errno set.
int cs_pidfd_open(pid_t pid);

/// Sends `sig` through a pidfd (no pid-reuse race). Returns 0 or -1 with errno set.
int cs_pidfd_send_signal(int pidfd, int sig);

/// Asks the kernel to send `sig` to this process when its parent dies. Returns 0 or -1.
int cs_set_pdeathsig(int sig);

/// Sets or clears FD_CLOEXEC. Returns 0 or -1.
int cs_set_cloexec(int fd, int on);

/// A close-on-exec eventfd (a wake-up counter), or -1 with errno set.
int cs_eventfd(void);

/// Sets or clears O_NONBLOCK. Returns 0 or -1.
int cs_set_nonblocking(int fd, int on);

/// Pins the calling thread to CPU `cpu` (sched_setaffinity). Returns 0 or an errno value.
int cs_pin_to_cpu(int cpu);

/// Raises the soft RLIMIT_NOFILE to the hard limit (a server of many clients needs more than the
/// usual 1,024 descriptors). Returns 0 or -1 (errno).
int cs_raise_open_file_limit(void);

/// Like cs_spawn, but no channel: the child gets a new session (setsid), stdin from /dev/null,
/// stdout and stderr on `log_fd`, and every other fd closed. Returns 0 or an errno value.
int cs_spawn_detached(const char *path, char *const argv[], char *const envp[], int log_fd, pid_t *pid);

/// A close-on-exec unix stream socket bound to `path` and listening. Returns the fd or -1 (errno).
/// Fails with ENAMETOOLONG when `path` does not fit sockaddr_un.
int cs_unix_listen(const char *path, int backlog);

/// A close-on-exec unix stream socket connected to `path`. Returns the fd or -1 (errno).
int cs_unix_connect(const char *path);

/// The peer's uid and pid of a connected unix socket (SO_PEERCRED). Returns 0 or -1 (errno).
int cs_peer_credentials(int fd, uid_t *uid, pid_t *pid);

/// The epoll event bits (sys/epoll.h is not in Swift's Glibc module).
#define CS_EPOLLIN 0x001u
#define CS_EPOLLOUT 0x004u
#define CS_EPOLLERR 0x008u
#define CS_EPOLLHUP 0x010u

/// A close-on-exec epoll instance, or -1 (errno).
int cs_epoll_create(void);

/// Removes `fd` from the set. Returns 0 or -1 (errno).
int cs_epoll_del(int epfd, int fd);

/// accept4 with SOCK_CLOEXEC | SOCK_NONBLOCK (accept4 needs _GNU_SOURCE). Returns the fd or -1.
int cs_accept(int listen_fd);

/// pipe2 with O_CLOEXEC | O_NONBLOCK (pipe2 needs _GNU_SOURCE). Returns 0 or -1.
int cs_pipe(int fds[2]);

/// epoll_ctl(ADD or MOD) of `fd` for `events`, tagged `tag`. Returns 0 or -1 (errno).
int cs_epoll_add(int epfd, int fd, unsigned events, unsigned long long tag);
int cs_epoll_mod(int epfd, int fd, unsigned events, unsigned long long tag);

/// epoll_wait into parallel arrays of events and tags. Returns the count, or -1 (errno).
int cs_epoll_wait(int epfd, unsigned *events, unsigned long long *tags, int max, int timeout_ms);

/// From now on `sig` writes its number (one byte) to `fd` instead of its default action (SA_RESTART).
/// One fd for all signals routed this way. Returns 0 or -1 (errno).
int cs_signal_to_pipe(int sig, int fd);

#endif
