// CSpaceSandbox: the system calls the host makes to wall itself in (docs/sandbox.md). They live in C
// because Swift cannot see what they need: Landlock has no libc wrapper and the distribution's
// headers predate its later ABIs; seccomp programs and capability sets are arrays of kernel structs
// built with macros; and signal handlers that end a process must be async-signal-safe C.
#ifndef CSPACE_SANDBOX_H
#define CSPACE_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/// The Landlock ABI version the kernel offers, or a negative errno (-ENOSYS, -EOPNOTSUPP when it
/// is built in but disabled).
int csb_landlock_abi(void);

/// Restricts the calling process with Landlock: reading (and executing nothing) beneath
/// `read_paths`, reading and writing beneath `write_paths`, nothing else. `strict` also denies every
/// TCP bind and connect (ABI 4) and scopes abstract unix sockets and signals to the sandbox (ABI 6).
/// Paths that do not exist are skipped. Returns the ABI used, or a negative errno with `message` naming
/// the step that failed. Call it single-threaded: the domain binds the calling thread and its future
/// threads.
int csb_landlock_apply(const char *const *read_paths, size_t read_count,
                       const char *const *write_paths, size_t write_count,
                       int strict, char *message, size_t message_size);

/// Loads a seccomp program (an array of `struct sock_filter`, `length` bytes) for every thread.
/// 0, or a negative errno. no_new_privs must be set first.
int csb_seccomp_load(const void *program, size_t length);

/// Adds a filter no prebuilt program can hold, because it names this process: kill, tgkill,
/// rt_sigqueueinfo and rt_tgsigqueueinfo may only target `self` (kill also 0, its own group).
/// Anything else gets EPERM, or SIGSYS when `trap`. 0, or a negative errno.
int csb_seccomp_signals(pid_t self, int trap);

/// Sets no_new_privs (no exec can gain privileges; seccomp needs it). 0, or a negative errno.
int csb_no_new_privs(void);

/// Drops every capability: the bounding set (unless no_new_privs is in force, which makes it moot),
/// the ambient set, then effective, permitted and inheritable. Returns how many capabilities were
/// held before (0 when none), or a negative errno.
int csb_drop_capabilities(void);

/// Drops every environment variable whose name is not in `keep`, in place (no allocation).
void csb_scrub_environment(const char *const *keep, size_t keep_count);

/// Closes every file descriptor from 3 up except `keep`. 0, or a negative errno.
int csb_close_fds_except(int keep);

/// Makes the signals a plugin may raise on itself end the process: the host runs as pid 1 of its
/// pid namespace, and the kernel ignores such signals there when they have no handler. Each handler
/// exits with status 128 + the signal, which the client reports as that signal.
void csb_install_init_signal_handlers(void);

/// In kill mode, the SIGSYS handler: it writes "space-host: sandbox violation: system call N" to
/// stderr, then makes system call `die_syscall`, which the filter answers by killing the process.
void csb_install_violation_handler(int die_syscall);

/// This process's pid in the outermost pid namespace it can see (from /proc/self/status NSpid),
/// or getpid() when there is no such line.
pid_t csb_outer_pid(void);

#endif
