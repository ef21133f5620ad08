#define _GNU_SOURCE
#include "CSpaceSystem.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

int cs_spawn(const char *path, char *const argv[], char *const envp[], int channel_fd,
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

    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    if ((rc = posix_spawnattr_setsigmask(&attr, &none))) goto out;
    if ((rc = posix_spawnattr_setsigdefault(&attr, &all))) goto out;
    if ((rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))) goto out;

    rc = posix_spawn(pid, path, &fa, &attr, argv, envp);
out:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
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
