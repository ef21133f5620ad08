// faults: a plugin that misbehaves on purpose, for the fault-matrix tests of the host. Each fault.*
// entry makes the calling process fail in one way: a crash by signal (fault.segv, fault.abort, the
// memory bomb once malloc fails), an exit (fault.exit), a call that never returns (fault.hang) or takes
// long (fault.sleep), exhaustion of a resource (fault.memory, fault.threads), an output flood
// (fault.flood), or a callback called after the plugin released it (fault.late_callback). Before it
// misbehaves, every fault writes one line starting with "faults: " to stderr and flushes it, so tests
// can check that the host captured it into the crash error. fault.stderr writes a given text, and
// fault.alive proves the next call works.
//
// The init hook fails on request too: `initDelay=MS` sleeps before accepting, `initFail=MESSAGE`
// refuses with MESSAGE, `initCrash` aborts.
#define _POSIX_C_SOURCE 200809L

#include <space_plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/// Writes "faults: <what>\n" to stderr and flushes it.
static void say(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    fputs("faults: ", stderr);
    vfprintf(stderr, format, ap);
    fputc('\n', stderr);
    fflush(stderr);
    va_end(ap);
}

/// Sleeps `ms` milliseconds (nothing if ms <= 0), resuming after signals.
static void sleep_ms(int64_t ms) {
    if (ms <= 0) return;
    struct timespec t = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

/// Blocks the calling thread forever.
static _Noreturn void block_forever(void) {
    for (;;) pause();
}

// MARK: - Crashes and exits

static void fault_segv(void) {
    say("dereferencing NULL");
    volatile int *volatile p = NULL;   // volatile: the compiler can neither see it is NULL nor drop the store
    *p = 42;
}

static void fault_abort(void) {
    say("calling abort()");
    abort();
}

static void fault_exit(int32_t code) {
    say("calling _exit(%d)", code);
    _exit(code);
}

static void fault_hang(void) {
    say("hanging forever");
    block_forever();
}

static int32_t fault_sleep(int32_t ms) {
    say("sleeping %d ms", ms);
    sleep_ms(ms);
    return ms;
}

// MARK: - Resource exhaustion

/// Allocates and touches 1 MiB chunks, never freed, until `mib` of them (no cap if mib <= 0). When
/// malloc fails it writes through the NULL it got, as careless code would, and so dies of SIGSEGV.
static int64_t fault_memory(int64_t mib) {
    if (mib > 0) say("allocating %lld MiB, 1 MiB at a time", (long long)mib);
    else say("allocating 1 MiB chunks until malloc fails");
    const size_t chunk = 1u << 20;
    int64_t n = 0;
    while (mib <= 0 || n < mib) {
        char *volatile p = malloc(chunk);
        if (!p) {
            say("out of memory after %lld MiB", (long long)n);
            *(volatile char *)p = 1;   // the careless use of the NULL: SIGSEGV
            abort();                   // not reached
        }
        memset(p, (int)(n & 0xff) | 1, chunk);   // touch every page
        n++;
    }
    return n;
}

static void *blocker_main(void *arg) {
    (void)arg;
    block_forever();
}

/// Starts up to `n` detached threads that block forever; returns how many it started.
static int32_t fault_threads(int32_t n) {
    say("creating up to %d threads that block forever", n);
    int32_t created = 0;
    for (; created < n; created++) {
        pthread_t thread;
        int rc = pthread_create(&thread, NULL, blocker_main, NULL);
        if (rc != 0) {
            say("pthread_create failed after %d threads: %s", created, strerror(rc));
            break;
        }
        pthread_detach(thread);
    }
    return created;
}

/// What fault.flood writes: lines of 63 'x' and a newline; its size is a whole number of lines.
static char flood_block[64 * 1024];
static pthread_once_t flood_once = PTHREAD_ONCE_INIT;

static void flood_fill(void) {
    for (size_t i = 0; i < sizeof flood_block; i++) flood_block[i] = i % 64 == 63 ? '\n' : 'x';
}

/// Writes `bytes` bytes of flood_block's lines to fd 1 or 2; returns the bytes written, fewer if a
/// write fails, or -1 for another fd (the host's other descriptors are not the plugin's to flood).
static int64_t fault_flood(int32_t fd, int64_t bytes) {
    if (fd != 1 && fd != 2) {
        say("flood refused: fd %d is neither 1 nor 2", fd);
        return -1;
    }
    say("flooding fd %d with %lld bytes", fd, (long long)bytes);
    pthread_once(&flood_once, flood_fill);
    int64_t written = 0;
    while (written < bytes) {
        // Continue the pattern where the last write stopped, even after a partial write.
        size_t offset = (size_t)(written % 64);
        size_t size = sizeof flood_block - offset;
        if ((int64_t)size > bytes - written) size = (size_t)(bytes - written);
        ssize_t w = write(fd, flood_block + offset, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        written += w;
    }
    return written;
}

// MARK: - Output and liveness

static int32_t fault_stderr(const char *text) {
    if (!text) text = "";
    size_t len = strlen(text);
    fwrite(text, 1, len, stderr);
    fputc('\n', stderr);
    fflush(stderr);
    return (int32_t)len;
}

static int32_t fault_alive(int32_t v) { return v + 1; }

// MARK: - A callback called after its release

typedef void (*late_fn)(int32_t n);

/// Threads started by fault.late_callback that have not finished; the deinit hook waits for them so
/// the plugin's code is not unloaded under them.
static atomic_int late_running;

static void *late_main(void *arg) {
    late_fn cb = (late_fn)(uintptr_t)arg;
    cb(1);
    space_callback_release((const void *)cb);
    sleep_ms(50);
    say("calling a callback after releasing it");
    cb(2);   // a use-after-free on purpose: the host must survive it
    atomic_fetch_sub(&late_running, 1);
    return NULL;
}

/// Starts a thread that calls cb(1), releases cb, and 50 ms later calls cb(2); returns 0 at once, or
/// -1 if it could not start the thread (cb is then released).
static int32_t fault_late_callback(late_fn cb) {
    if (!cb) return -1;
    say("starting a thread that calls a callback after releasing it");
    atomic_fetch_add(&late_running, 1);
    pthread_t thread;
    if (pthread_create(&thread, NULL, late_main, (void *)(uintptr_t)cb) != 0) {
        atomic_fetch_sub(&late_running, 1);
        space_callback_release((const void *)cb);
        return -1;
    }
    pthread_detach(thread);
    return 0;
}

// MARK: - Init and deinit

static int init(int argc, const char *const argv[], char *error, size_t error_size) {
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "initDelay=", 10) == 0) {
            char *end = NULL;
            errno = 0;
            long ms = strtol(arg + 10, &end, 10);
            if (end == arg + 10 || *end != '\0' || errno != 0 || ms < 0) {
                snprintf(error, error_size, "faults: initDelay must be a number of milliseconds, got '%s'",
                         arg + 10);
                return 1;
            }
            say("init: sleeping %ld ms", ms);
            sleep_ms(ms);
        } else if (strncmp(arg, "initFail=", 9) == 0) {
            snprintf(error, error_size, "%s", arg + 9);
            return 1;
        } else if (strcmp(arg, "initCrash") == 0) {
            say("init: calling abort()");
            abort();
        } else {
            snprintf(error, error_size,
                     "faults: unknown init argument '%s' (expected initDelay=MS, initFail=MESSAGE or initCrash)",
                     arg);
            return 1;
        }
    }
    return 0;
}

/// Waits (up to 1 s) for the fault.late_callback threads to finish. Threads of fault.threads and
/// fault.hang block in pause() forever and are left alone.
static void deinit(void) {
    for (int i = 0; i < 100 && atomic_load(&late_running) > 0; i++) sleep_ms(10);
}

static const space_entry entries[] = {
    { "fault.segv", SPACE_FN(fault_segv), "void (void)" },
    { "fault.abort", SPACE_FN(fault_abort), "void (void)" },
    { "fault.exit", SPACE_FN(fault_exit), "void (int32_t code)" },
    { "fault.hang", SPACE_FN(fault_hang), "void (void)" },
    { "fault.sleep", SPACE_FN(fault_sleep), "int32_t (int32_t ms)" },
    { "fault.memory", SPACE_FN(fault_memory), "int64_t (int64_t mib)" },
    { "fault.threads", SPACE_FN(fault_threads), "int32_t (int32_t n)" },
    { "fault.flood", SPACE_FN(fault_flood), "int64_t (int32_t fd, int64_t bytes)" },
    { "fault.stderr", SPACE_FN(fault_stderr), "int32_t (const char *text)" },
    { "fault.late_callback", SPACE_FN(fault_late_callback), "int32_t (void (*cb)(int32_t n))" },
    { "fault.alive", SPACE_FN(fault_alive), "int32_t (int32_t v)" },
    SPACE_END
};

SPACE_PLUGIN(.name = "faults", .version = "1.0.0", .entries = entries,
             .flags = SPACE_PLUGIN_THREAD_SAFE, .init = init, .deinit = deinit)
