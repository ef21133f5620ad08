// CSpaceSeccomp: the client's seccomp compiler, a thin shim over libseccomp.
//
// Why this shim exists:
// - The child's seccomp policy is compiled once, in the client (parent), into a classic BPF program;
//   the host only loads those bytes with prctl(PR_SET_SECCOMP) (see CSpaceSandbox.h), so it neither
//   links libseccomp nor pays for rule compilation at every start.
// - libseccomp's API is macro-heavy (SCMP_SYS, SCMP_A0, SCMP_ACT_ERRNO) and exports to a file
//   descriptor; this header keeps plain types only, so Swift imports it without <seccomp.h>.
#ifndef CSPACE_SECCOMP_H
#define CSPACE_SECCOMP_H

#include <stddef.h>

/// What the child may do. Every call not denied below is allowed.
typedef struct css_policy {
    /// 1: sockets of any family allowed (profile "network"); 0: strict.
    int allow_network;
    /// 1 (strict only): socket(AF_UNIX, …) and socketpair(AF_UNIX, …) allowed.
    int allow_unix;
    /// 1: denied calls return SECCOMP_RET_TRAP (the child's SIGSYS handler reports the call, then
    /// ends itself with `css_kill_syscall()`); 0: they fail with EPERM.
    int kill_on_violation;
    /// Extra system call names to deny, unconditionally, with the same action as the defaults.
    const char *const *deny;
    size_t deny_count;
    /// Names taken out of the default deny set (no rule at all for them). A name also in `deny` is denied.
    const char *const *allow;
    size_t allow_count;
} css_policy;

/// Compiles `policy` for this machine's architecture. 0 on success: `*program` is malloc'd (caller frees)
/// and holds `*length` bytes of `struct sock_filter` instructions. On failure a negative errno, and
/// `message` (always NUL-terminated, at most message_size bytes) names the problem, e.g.
/// "unknown system call 'sokcet' in sandbox.deny". In kill mode the rule for `css_kill_syscall()`
/// (kill the process) is always present, whatever `allow` says.
int css_build(const css_policy *policy, void **program, size_t *length, char *message, size_t message_size);

/// The number of system call `name` on this architecture, or -1 if there is none.
int css_syscall_number(const char *name);

/// Writes the name of system call `number` into `buffer` (NUL-terminated); 0, or -1 if unknown or
/// if the name does not fit in `size` bytes.
int css_syscall_name(int number, char *buffer, size_t size);

/// The call the child's SIGSYS handler makes to end itself in kill mode (kexec_file_load): its rule
/// kills the process with SIGSYS, where every other denied call only traps.
int css_kill_syscall(void);

#endif
