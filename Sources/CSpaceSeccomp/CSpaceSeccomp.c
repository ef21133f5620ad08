// CSpaceSeccomp: compiles the child's policy to classic BPF with libseccomp (see CSpaceSeccomp.h).
#define _GNU_SOURCE
#include "CSpaceSeccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/filter.h>

/// Denied unconditionally unless allowed; names unknown on this architecture are skipped.
static const char *const plain_denied[] = {
    "fork", "vfork", "execve", "execveat",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr", "unshare", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
    "setrlimit", "tkill", "acct", "swapon", "swapoff", "reboot", "quotactl",
    "name_to_handle_at", "open_by_handle_at", "lookup_dcookie",
};

/// Namespace flags clone may not carry, even for a thread.
static const uint64_t namespace_flags[] = {
    CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
};

typedef struct builder {
    scmp_filter_ctx ctx;
    uint32_t deny;          // the policy's action for denied calls
    int *allowed, *denied;  // resolved numbers of policy->allow / policy->deny
    size_t allowed_count, denied_count;
    char *message;
    size_t message_size;
} builder;

static int fail(builder *b, int error, const char *format, ...) {
    if (b->message && b->message_size > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(b->message, b->message_size, format, args);
        va_end(args);
    }
    return error;
}

static bool contains(const int *numbers, size_t count, int number) {
    for (size_t i = 0; i < count; i++)
        if (numbers[i] == number) return true;
    return false;
}

/// Resolves `count` names into `*out`; a name unknown on this architecture fails the build.
static int resolve(builder *b, const char *const *names, size_t count, const char *field, int **out) {
    if (count == 0) return 0;
    if (!names) return fail(b, -EINVAL, "sandbox.%s is missing", field);
    if (!(*out = malloc(count * sizeof(int)))) return fail(b, -ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        int number = css_syscall_number(names[i]);
        if (number < 0)
            return fail(b, -EINVAL, "unknown system call '%s' in sandbox.%s", names[i] ? names[i] : "", field);
        (*out)[i] = number;
    }
    return 0;
}

static int add(builder *b, int number, uint32_t action, unsigned count, const struct scmp_arg_cmp *args) {
    int rc = seccomp_rule_add_array(b->ctx, action, number, count, args);
    if (rc < 0) {
        char name[64];
        if (css_syscall_name(number, name, sizeof name) < 0) snprintf(name, sizeof name, "#%d", number);
        return fail(b, rc, "cannot add the seccomp rule for '%s': %s", name, strerror(-rc));
    }
    return 0;
}

/// A default rule: skipped when libseccomp does not know `name` here, when `allow` lists it, or when
/// `deny` lists it (its unconditional rule replaces this one).
static int add_default(builder *b, const char *name, uint32_t action, unsigned count, const struct scmp_arg_cmp *args) {
    int number = css_syscall_number(name);
    if (number < 0 || contains(b->allowed, b->allowed_count, number) || contains(b->denied, b->denied_count, number))
        return 0;
    return add(b, number, action, count, args);
}

static int add_rules(builder *b, const css_policy *policy) {
    int rc;
    int kill = css_kill_syscall();
    bool kill_mode = policy->kill_on_violation != 0;

    // In kill mode the handler's way out: always present, never trapped.
    if (kill_mode && kill >= 0 && (rc = add(b, kill, SCMP_ACT_KILL_PROCESS, 0, NULL))) return rc;

    // Threads only: clone without CLONE_THREAD is a new process; no new namespaces either.
    struct scmp_arg_cmp no_thread = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0);
    if ((rc = add_default(b, "clone", b->deny, 1, &no_thread))) return rc;
    for (size_t i = 0; i < sizeof namespace_flags / sizeof *namespace_flags; i++) {
        struct scmp_arg_cmp bit = SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]);
        if ((rc = add_default(b, "clone", b->deny, 1, &bit))) return rc;
    }
    // clone3 passes its flags in memory, out of the filter's reach: ENOSYS makes glibc fall back to clone.
    if ((rc = add_default(b, "clone3", SCMP_ACT_ERRNO(ENOSYS), 0, NULL))) return rc;

    for (size_t i = 0; i < sizeof plain_denied / sizeof *plain_denied; i++) {
        if (kill_mode && css_syscall_number(plain_denied[i]) == kill) continue;
        if ((rc = add_default(b, plain_denied[i], b->deny, 0, NULL))) return rc;
    }

    // Setting limits stays denied; reading them (new limit NULL) does not.
    struct scmp_arg_cmp sets_limit = SCMP_A2(SCMP_CMP_NE, 0);
    if ((rc = add_default(b, "prlimit64", b->deny, 1, &sets_limit))) return rc;

    if (!policy->allow_network) {
        struct scmp_arg_cmp not_unix = SCMP_A0(SCMP_CMP_NE, AF_UNIX);
        unsigned count = policy->allow_unix ? 1 : 0;
        if ((rc = add_default(b, "socket", b->deny, count, &not_unix))) return rc;
        if ((rc = add_default(b, "socketpair", b->deny, count, &not_unix))) return rc;
    }

    for (size_t i = 0; i < b->denied_count; i++) {
        int number = b->denied[i];
        if ((kill_mode && number == kill) || contains(b->denied, i, number)) continue;
        if ((rc = add(b, number, b->deny, 0, NULL))) return rc;
    }
    return 0;
}

/// Reads the whole memfd back into a malloc'd buffer.
static int read_back(builder *b, int fd, void **program, size_t *length) {
    off_t size = lseek(fd, 0, SEEK_CUR);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 || lseek(fd, 0, SEEK_SET) != 0)
        return fail(b, size < 0 ? -errno : -EIO, "cannot read the exported filter back");
    unsigned char *bytes = malloc((size_t)size);
    if (!bytes) return fail(b, -ENOMEM, "out of memory");
    for (size_t got = 0; got < (size_t)size;) {
        ssize_t n = read(fd, bytes + got, (size_t)size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int rc = fail(b, n < 0 ? -errno : -EIO, "cannot read the exported filter back");
            free(bytes);
            return rc;
        }
        got += (size_t)n;
    }
    *program = bytes;
    *length = (size_t)size;
    return 0;
}

/// Exports the filter through a memfd (libseccomp 2.5 writes BPF only to a descriptor).
static int export_program(builder *b, void **program, size_t *length) {
    int fd = memfd_create("space-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        int error = errno;
        return fail(b, -error, "memfd_create: %s", strerror(error));
    }
    int rc = seccomp_export_bpf(b->ctx, fd);
    rc = rc < 0 ? fail(b, rc, "seccomp_export_bpf: %s", strerror(-rc)) : read_back(b, fd, program, length);
    close(fd);
    return rc;
}

int css_build(const css_policy *policy, void **program, size_t *length, char *message, size_t message_size) {
    builder b = {.message = message, .message_size = message_size};
    if (message && message_size > 0) message[0] = '\0';
    if (!policy || !program || !length) return fail(&b, -EINVAL, "invalid arguments");
    b.deny = policy->kill_on_violation ? SCMP_ACT_TRAP : SCMP_ACT_ERRNO(EPERM);

    int rc = resolve(&b, policy->allow, policy->allow_count, "allow", &b.allowed);
    if (rc) goto done;
    b.allowed_count = policy->allow_count;
    if ((rc = resolve(&b, policy->deny, policy->deny_count, "deny", &b.denied))) goto done;
    b.denied_count = policy->deny_count;

    if (!(b.ctx = seccomp_init(SCMP_ACT_ALLOW))) {
        rc = fail(&b, -ENOMEM, "seccomp_init failed");
        goto done;
    }
    if ((rc = seccomp_attr_set(b.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0) {
        rc = fail(&b, rc, "cannot set the bad-architecture action: %s", strerror(-rc));
        goto done;
    }
    // The child sets no_new_privs itself; we only export.
    if ((rc = seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0) {
        rc = fail(&b, rc, "cannot clear SCMP_FLTATR_CTL_NNP: %s", strerror(-rc));
        goto done;
    }
    (void)seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);  // binary tree where supported

    if ((rc = add_rules(&b, policy)) == 0) rc = export_program(&b, program, length);
done:
    if (b.ctx) seccomp_release(b.ctx);
    free(b.allowed);
    free(b.denied);
    return rc;
}

int css_syscall_number(const char *name) {
    if (!name || !*name) return -1;
    int number = seccomp_syscall_resolve_name(name);
    return number >= 0 ? number : -1;
}

int css_syscall_name(int number, char *buffer, size_t size) {
    if (number < 0 || !buffer || size == 0) return -1;
    char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, number);
    if (!name) return -1;
    size_t n = strlen(name);
    int rc = -1;
    if (n < size) {
        memcpy(buffer, name, n + 1);
        rc = 0;
    }
    free(name);
    return rc;
}

int css_kill_syscall(void) {
    return SCMP_SYS(kexec_file_load);
}
