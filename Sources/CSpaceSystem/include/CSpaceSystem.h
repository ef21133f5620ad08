// CSpaceSystem: thin OS shims shared by the client (Space) and the host (space-host).
//
// Why each shim exists:
// - cs_spawn: posix_spawn with `posix_spawn_file_actions_addclosefrom_np` (a GNU extension that
//   needs _GNU_SOURCE, invisible to Swift's Glibc module) and sigset macros; it puts the channel
//   on fd 3 and closes every other inherited fd in one place, without fork from a big parent.
// - cs_pidfd_open / cs_pidfd_send_signal: raw syscalls glibc 2.36 wraps but Swift's Glibc does not import.
// - cs_set_pdeathsig: prctl is variadic in C, so Swift cannot call it.
// - cs_set_cloexec, cs_set_nonblocking: fcntl is variadic in C, so Swift cannot call it.
// - cs_eventfd: <sys/eventfd.h> is not part of Swift's Glibc module.
// - cs_pin_to_cpu: CPU_ZERO/CPU_SET are macros over cpu_set_t, which Swift cannot expand
//   (space-bench pins its floor processes so the floor does not depend on scheduler placement).
#ifndef CSPACE_SYSTEM_H
#define CSPACE_SYSTEM_H

#include <sys/types.h>

/// Spawns `path` with `argv`/`envp`. In the child, `channel_fd` becomes fd 3, `stderr_fd` (if >= 0)
/// becomes fd 2, stdin/stdout become /dev/null when `quiet_stdio` is set, and every fd above 3 is
/// closed. Signal mask and dispositions are reset. Returns 0 and sets `*pid`, or an errno value.
int cs_spawn(const char *path, char *const argv[], char *const envp[], int channel_fd,
             int stderr_fd, int quiet_stdio, pid_t *pid);

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

#endif
