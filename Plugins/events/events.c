// events: an example plugin of callbacks. A function-pointer parameter is a callback slot: the caller
// passes `cb:N` and the plugin gets a real C function pointer that relays each call to the caller, from
// any thread. This plugin shows every lifetime a callback can have:
//
// - scoped (SPACE_SCOPED): called only before the entry returns, from the calling thread (probe.*) or
//   from many threads at once (storm.run, storm.ask); the host frees it when the call returns;
// - released by the plugin: called from a background thread, before the entry returns (timer.every)
//   or after it (timer.start, storm.spawn, feed.open), then handed back with space_callback_release;
// - kept: stored across calls (later.keep) and fired from later calls, on the caller's thread or on a
//   new one, until later.release or a new later.keep gives it back.
//
// It also shows callbacks with every kind of argument (probe.types), callbacks that answer a value
// (probe.ask_*, storm.ask), an unprototyped callback typed by the caller's `cb:N` (later.unprototyped),
// and an opaque handle that owns a callback (feed.*). The deinit hook stops every background thread it
// started and releases every callback it still holds, so removing the plugin is clean.
//
// Every entry is safe to call from several threads at once, though the manifest's flags are 0. The
// deinit hook assumes no call is running, as the host guarantees.
#define _POSIX_C_SOURCE 200809L

#include <space_plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/// Releases a callback the plugin was given (NULL, which the host never passes, is ignored).
static void release(const void *fn) {
    if (fn) space_callback_release(fn);
}

// MARK: - Sleeping

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/// Sleeps `ms` milliseconds with nanosleep, in slices of at most 10 ms so that `stop` (if given) is
/// noticed quickly. Returns false if `stop` was set before the time was up.
static bool nap(int32_t ms, const atomic_bool *stop) {
    const int64_t slice = 10 * 1000000;
    int64_t deadline = now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        if (stop && atomic_load(stop)) return false;
        int64_t left = deadline - now_ns();
        if (left <= 0) return true;
        if (left > slice) left = slice;
        struct timespec t = { .tv_sec = 0, .tv_nsec = (long)left };
        while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
    }
}

// MARK: - Timers: a callback fired from a background thread

typedef void (*tick_fn)(int32_t n);

/// One timer thread. Timers made by timer.start sit in a list until they are joined.
struct timer {
    int32_t ms, count;
    tick_fn tick;
    pthread_t thread;
    atomic_bool stop;   // set by the deinit hook: fire no more ticks
    atomic_bool done;   // set by the thread as its last action: it can be joined without waiting
    struct timer *next;
};

static pthread_mutex_t timers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timer *timers;   // started by timer.start, not joined yet

/// Fires tick(1) … tick(count), sleeping `ms` before each, then releases tick.
static void *timer_main(void *arg) {
    struct timer *t = arg;
    for (int32_t n = 1; n <= t->count; n++) {
        if (t->ms > 0 && !nap(t->ms, &t->stop)) break;
        if (atomic_load(&t->stop)) break;
        t->tick(n);
    }
    release((const void *)t->tick);
    atomic_store(&t->done, true);
    return NULL;
}

static struct timer *timer_new(int32_t ms, int32_t count, tick_fn tick) {
    struct timer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ms = ms;
    t->count = count;
    t->tick = tick;
    atomic_init(&t->stop, false);
    atomic_init(&t->done, false);
    return t;
}

/// Joins and frees the timers of the list that are done (all of them if `all`, after asking them all to
/// stop). Call with timers_lock held.
static void timers_reap(bool all) {
    if (all)
        for (struct timer *t = timers; t; t = t->next) atomic_store(&t->stop, true);
    for (struct timer **p = &timers; *p;) {
        struct timer *t = *p;
        if (all || atomic_load(&t->done)) {
            pthread_join(t->thread, NULL);
            *p = t->next;
            free(t);
        } else {
            p = &t->next;
        }
    }
}

/// timer.every: the ticks fire from a background thread, all before the call returns.
static int32_t timer_every(int32_t ms, int32_t count, tick_fn tick) {
    struct timer *t = (ms < 0 || count < 0 || !tick) ? NULL : timer_new(ms, count, tick);
    if (!t || pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        free(t);
        release((const void *)tick);
        return -1;
    }
    pthread_join(t->thread, NULL);
    free(t);
    return count;
}

/// timer.start: the ticks fire after the call returned. The thread is joined by a later timer.start
/// once it is done, or by the deinit hook.
static int32_t timer_start(int32_t ms, int32_t count, tick_fn tick) {
    struct timer *t = (ms < 0 || count < 0 || !tick) ? NULL : timer_new(ms, count, tick);
    if (!t) {
        release((const void *)tick);
        return -1;
    }
    pthread_mutex_lock(&timers_lock);
    timers_reap(false);
    if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        pthread_mutex_unlock(&timers_lock);
        free(t);
        release((const void *)tick);
        return -1;
    }
    t->next = timers;
    timers = t;
    pthread_mutex_unlock(&timers_lock);
    return 0;
}

// MARK: - Feeds: a websocket-like handle that owns a callback

typedef void (*event_fn)(const char *type, const char *data);

/// An open feed. Opaque to the host (its definition is not in the manifest's types), so callers hold it
/// as a handle.
struct feed {
    char *name;
    event_fn on_event;
    pthread_t thread;
    atomic_bool closed;
    atomic_int messages;                  // "message" events sent so far
    struct feed *prev, *next;             // in the list of open feeds (for the deinit hook)
};

static pthread_mutex_t feeds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct feed *feeds;

/// Sends "open", then a "message" every 5 ms until the feed is closed.
static void *feed_main(void *arg) {
    struct feed *f = arg;
    f->on_event("open", f->name);
    size_t size = strlen(f->name) + sizeof " #-2147483648";
    char *text = malloc(size);
    for (int k = 1; text && nap(5, &f->closed); k++) {
        snprintf(text, size, "%s #%d", f->name, k);
        f->on_event("message", text);
        atomic_fetch_add(&f->messages, 1);
    }
    free(text);
    return NULL;
}

/// Stops the feed's thread and waits for it: no event is sent from it afterwards.
static void feed_stop(struct feed *f) {
    atomic_store(&f->closed, true);
    pthread_join(f->thread, NULL);
}

static void feed_free(struct feed *f) {
    release((const void *)f->on_event);
    free(f->name);
    free(f);
}

static struct feed *feed_open(const char *name, event_fn on_event) {
    struct feed *f = (name && on_event) ? calloc(1, sizeof *f) : NULL;
    if (f) {
        f->name = strdup(name);
        f->on_event = on_event;
        atomic_init(&f->closed, false);
        atomic_init(&f->messages, 0);
    }
    if (!f || !f->name || pthread_create(&f->thread, NULL, feed_main, f) != 0) {
        if (f) free(f->name);
        free(f);
        release((const void *)on_event);
        return NULL;
    }
    pthread_mutex_lock(&feeds_lock);
    f->next = feeds;
    if (feeds) feeds->prev = f;
    feeds = f;
    pthread_mutex_unlock(&feeds_lock);
    return f;
}

/// feed.send: the "echo" event comes from the calling thread, before the call returns.
static int32_t feed_send(struct feed *f, const char *text) {
    if (!f || !text) return -1;
    f->on_event("echo", text);
    return (int32_t)strlen(text);
}

static int32_t feed_close(struct feed *f) {
    if (!f) return -1;
    pthread_mutex_lock(&feeds_lock);
    if (f->prev) f->prev->next = f->next; else feeds = f->next;
    if (f->next) f->next->prev = f->prev;
    pthread_mutex_unlock(&feeds_lock);

    feed_stop(f);
    f->on_event("close", f->name);
    int32_t sent = atomic_load(&f->messages);
    feed_free(f);
    return sent;
}

// MARK: - Storms: one callback called from many threads at once

#define STORM_MAX_THREADS 64

typedef void (*hit_fn)(int32_t thread, int32_t i);
typedef int32_t (*ask_fn)(int32_t thread, int32_t i);

/// What one storm thread does: call `hit` or sum the answers of `ask` into `*sum`.
struct storm_job {
    int32_t thread, per_thread;
    hit_fn hit;
    ask_fn ask;
    atomic_llong *sum;
    const atomic_bool *stop;   // storm.spawn only: stop early (deinit)
    void (*finished)(void);    // storm.spawn only: called as the thread's last action
};

static void *storm_main(void *arg) {
    const struct storm_job *job = arg;
    int64_t local = 0;
    for (int32_t i = 0; i < job->per_thread; i++) {
        if (job->stop && atomic_load(job->stop)) break;
        if (job->hit) job->hit(job->thread, i);
        else local += job->ask(job->thread, i);
    }
    if (job->sum) atomic_fetch_add(job->sum, local);
    if (job->finished) job->finished();
    return NULL;
}

/// Runs `threads` storm threads to completion; returns false if one could not be started (the ones
/// that were are joined all the same).
static bool storm(int32_t threads, int32_t per_thread, hit_fn hit, ask_fn ask, atomic_llong *sum) {
    pthread_t ids[STORM_MAX_THREADS];
    struct storm_job jobs[STORM_MAX_THREADS];
    int32_t started = 0;
    for (; started < threads; started++) {
        jobs[started] = (struct storm_job){ .thread = started, .per_thread = per_thread,
                                            .hit = hit, .ask = ask, .sum = sum };
        if (pthread_create(&ids[started], NULL, storm_main, &jobs[started]) != 0) break;
    }
    for (int32_t t = 0; t < started; t++) pthread_join(ids[t], NULL);
    return started == threads;
}

static bool storm_counts_ok(int32_t threads, int32_t per_thread) {
    return threads >= 1 && threads <= STORM_MAX_THREADS && per_thread >= 0;
}

static int64_t storm_run(int32_t threads, int32_t per_thread, hit_fn hit) {
    if (!storm_counts_ok(threads, per_thread) || !hit) return -1;
    if (!storm(threads, per_thread, hit, NULL, NULL)) return -1;
    return (int64_t)threads * per_thread;
}

static int64_t storm_ask(int32_t threads, int32_t per_thread, ask_fn ask) {
    if (!storm_counts_ok(threads, per_thread) || !ask) return -1;
    atomic_llong sum;
    atomic_init(&sum, 0);
    if (!storm(threads, per_thread, NULL, ask, &sum)) return -1;
    return atomic_load(&sum);
}

/// The one storm.spawn that may be running: started by storm.spawn, joined by storm.wait or deinit.
static struct {
    pthread_mutex_t lock;        // serializes spawn / wait / deinit
    bool active;                 // spawned and not joined yet
    int32_t threads;
    ask_fn ask;
    pthread_t ids[STORM_MAX_THREADS];
    struct storm_job jobs[STORM_MAX_THREADS];
    atomic_llong sum;
    atomic_int running;          // threads not finished yet; the one that brings it to 0 releases ask
    atomic_bool stop;
} spawned = { .lock = PTHREAD_MUTEX_INITIALIZER };

/// Counts `n` storm.spawn threads as finished; whoever finishes the last one releases the callback.
static void spawn_finished_n(int n) {
    if (atomic_fetch_sub(&spawned.running, n) == n) release((const void *)spawned.ask);
}

static void spawn_finished(void) { spawn_finished_n(1); }

/// Joins the spawned threads, if any; returns their sum and forgets them. Call with spawned.lock held.
static int64_t spawn_join(void) {
    if (!spawned.active) return 0;
    for (int32_t t = 0; t < spawned.threads; t++) pthread_join(spawned.ids[t], NULL);
    spawned.active = false;
    return atomic_load(&spawned.sum);
}

static int32_t storm_spawn(int32_t threads, int32_t per_thread, ask_fn ask) {
    if (!ask) return -1;
    pthread_mutex_lock(&spawned.lock);
    if (spawned.active || !storm_counts_ok(threads, per_thread)) {
        pthread_mutex_unlock(&spawned.lock);
        release((const void *)ask);
        return -1;
    }
    spawned.ask = ask;
    atomic_store(&spawned.sum, 0);
    atomic_store(&spawned.stop, false);
    atomic_store(&spawned.running, threads);   // counts the threads not started yet too
    int32_t started = 0;
    for (; started < threads; started++) {
        spawned.jobs[started] = (struct storm_job){
            .thread = started, .per_thread = per_thread, .ask = ask, .sum = &spawned.sum,
            .stop = &spawned.stop, .finished = spawn_finished };
        if (pthread_create(&spawned.ids[started], NULL, storm_main, &spawned.jobs[started]) != 0) break;
    }
    spawned.threads = started;
    spawned.active = true;
    if (started < threads) {
        // Out of threads: stop the ones that run, count the missing ones as finished, clean up.
        atomic_store(&spawned.stop, true);
        spawn_finished_n(threads - started);
        spawn_join();
        pthread_mutex_unlock(&spawned.lock);
        return -1;
    }
    pthread_mutex_unlock(&spawned.lock);
    return 0;
}

static int64_t storm_wait(void) {
    pthread_mutex_lock(&spawned.lock);
    int64_t sum = spawn_join();
    pthread_mutex_unlock(&spawned.lock);
    return sum;
}

// MARK: - Probes: callbacks with every kind of argument and result

struct pair { int32_t a; double b; };
#define EVENTS_TYPES "struct pair { int32_t a; double b; };"

typedef void (*probe_fn)(int8_t a, uint64_t b, float f, double d, bool t, const char *s, struct pair p,
                         const struct pair *pp, const uint8_t *data, size_t len);

static int32_t probe_types(probe_fn cb) {
    static const uint8_t data[] = { 0, 1, 2, 255 };
    const struct pair p = { 7, 0.5 }, pp = { -1, 3.0 };
    cb(-5, UINT64_MAX, 1.5f, -2.25, true, "h\xc3\xa9llo", p, &pp, data, sizeof data);   // "héllo"
    cb(-5, UINT64_MAX, 1.5f, -2.25, true, NULL, p, NULL, NULL, 0);
    return 2;
}

static double probe_ask_double(double x, double (*f)(double)) { return f(x); }
static bool probe_ask_bool(int32_t x, bool (*f)(int32_t)) { return f(x); }
static uint8_t probe_ask_u8(uint8_t (*f)(void)) { return f(); }
/// f(x, x + 1); x + 1 wraps around at INT64_MAX rather than overflowing.
static int64_t probe_ask_i64(int64_t x, int64_t (*f)(int64_t, int64_t)) { return f(x, (int64_t)((uint64_t)x + 1)); }

static int32_t probe_twice(void (*first)(int32_t), void (*second)(int32_t)) {
    first(1);
    second(2);
    first(3);
    return 3;
}

// MARK: - Later: a callback kept across calls

typedef int32_t (*later_fn)(int32_t x);

/// The kept callback, reference-counted: later.fire holds a reference while it calls, so a concurrent
/// later.release or later.keep never releases the callback under a running call; the last reference
/// releases it.
struct kept {
    later_fn f;
    atomic_int refs;
};

static pthread_mutex_t later_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kept *later;

static void kept_drop(struct kept *k) {
    if (k && atomic_fetch_sub(&k->refs, 1) == 1) {
        release((const void *)k->f);
        free(k);
    }
}

/// Returns the kept callback with a reference the caller must drop, or NULL.
static struct kept *kept_get(void) {
    pthread_mutex_lock(&later_lock);
    struct kept *k = later;
    if (k) atomic_fetch_add(&k->refs, 1);
    pthread_mutex_unlock(&later_lock);
    return k;
}

/// Replaces the kept callback with `k` (may be NULL); returns the old one, whose reference the caller
/// must drop.
static struct kept *kept_swap(struct kept *k) {
    pthread_mutex_lock(&later_lock);
    struct kept *old = later;
    later = k;
    pthread_mutex_unlock(&later_lock);
    return old;
}

static int32_t later_keep(later_fn f) {
    struct kept *k = f ? malloc(sizeof *k) : NULL;
    if (!k) {
        release((const void *)f);
        return -1;
    }
    k->f = f;
    atomic_init(&k->refs, 1);
    kept_drop(kept_swap(k));
    return 0;
}

static int32_t later_fire(int32_t x) {
    struct kept *k = kept_get();
    if (!k) return -1;
    int32_t r = k->f(x);
    kept_drop(k);
    return r;
}

struct fire_job { later_fn f; int32_t x, result; };

static void *fire_main(void *arg) {
    struct fire_job *job = arg;
    job->result = job->f(job->x);
    return NULL;
}

static int32_t later_fire_thread(int32_t x) {
    struct kept *k = kept_get();
    if (!k) return -1;
    struct fire_job job = { k->f, x, -1 };
    pthread_t thread;
    if (pthread_create(&thread, NULL, fire_main, &job) == 0) pthread_join(thread, NULL);
    kept_drop(k);
    return job.result;
}

static int32_t later_release(void) {
    struct kept *old = kept_swap(NULL);
    kept_drop(old);
    return old ? 1 : 0;
}

/// later.unprototyped: `f` is declared `void (*f)()`, without a prototype, so the host types it from the
/// caller's `cb:N` as taking N intptr_t arguments. This entry assumes the caller passed `cb:2`. (The C
/// parameter is a plain `space_fn`; only the manifest's declaration leaves the parameters open.)
static int32_t later_unprototyped(int32_t x, space_fn f) {
    if (!f) return -1;
    ((void (*)(intptr_t, intptr_t))f)(x, (intptr_t)x * 2);
    release((const void *)f);
    return 2;
}

// MARK: - Deinit

/// Stops and joins every thread the plugin started, and releases every callback it still holds. Feeds
/// still open are closed without a "close" event.
static void deinit(void) {
    pthread_mutex_lock(&timers_lock);
    timers_reap(true);
    pthread_mutex_unlock(&timers_lock);

    pthread_mutex_lock(&spawned.lock);
    atomic_store(&spawned.stop, true);
    spawn_join();
    pthread_mutex_unlock(&spawned.lock);

    pthread_mutex_lock(&feeds_lock);
    struct feed *open = feeds;
    feeds = NULL;
    pthread_mutex_unlock(&feeds_lock);
    for (struct feed *f = open; f; f = f->next) atomic_store(&f->closed, true);   // stop them all at once
    while (open) {
        struct feed *next = open->next;
        feed_stop(open);
        feed_free(open);
        open = next;
    }

    later_release();
}

static const space_entry entries[] = {
    { "timer.every", SPACE_FN(timer_every), "int32_t (int32_t ms, int32_t count, void (*tick)(int32_t n))" },
    { "timer.start", SPACE_FN(timer_start), "int32_t (int32_t ms, int32_t count, void (*tick)(int32_t n))" },
    { "feed.open", SPACE_FN(feed_open),
      "struct feed *(const char *name, void (*on_event)(const char *type, const char *data))" },
    { "feed.send", SPACE_FN(feed_send), "int32_t (struct feed *f, const char *text)" },
    { "feed.close", SPACE_FN(feed_close), "int32_t (SPACE_RELEASE struct feed *f)" },
    { "storm.run", SPACE_FN(storm_run),
      "int64_t (int32_t threads, int32_t per_thread, SPACE_SCOPED void (*hit)(int32_t thread, int32_t i))" },
    { "storm.ask", SPACE_FN(storm_ask),
      "int64_t (int32_t threads, int32_t per_thread, SPACE_SCOPED int32_t (*ask)(int32_t thread, int32_t i))" },
    { "storm.spawn", SPACE_FN(storm_spawn),
      "int32_t (int32_t threads, int32_t per_thread, int32_t (*ask)(int32_t thread, int32_t i))" },
    { "storm.wait", SPACE_FN(storm_wait), "int64_t (void)" },
    { "probe.types", SPACE_FN(probe_types),
      "int32_t (SPACE_SCOPED void (*cb)(int8_t a, uint64_t b, float f, double d, bool t, const char *s, "
      "struct pair p, const struct pair *pp, const uint8_t *data, size_t len))" },
    { "probe.ask_double", SPACE_FN(probe_ask_double), "double (double x, SPACE_SCOPED double (*f)(double))" },
    { "probe.ask_bool", SPACE_FN(probe_ask_bool), "bool (int32_t x, SPACE_SCOPED bool (*f)(int32_t))" },
    { "probe.ask_u8", SPACE_FN(probe_ask_u8), "uint8_t (SPACE_SCOPED uint8_t (*f)(void))" },
    { "probe.ask_i64", SPACE_FN(probe_ask_i64), "int64_t (int64_t x, SPACE_SCOPED int64_t (*f)(int64_t, int64_t))" },
    { "probe.twice", SPACE_FN(probe_twice),
      "int32_t (SPACE_SCOPED void (*first)(int32_t), SPACE_SCOPED void (*second)(int32_t))" },
    { "later.keep", SPACE_FN(later_keep), "int32_t (int32_t (*f)(int32_t x))" },
    { "later.fire", SPACE_FN(later_fire), "int32_t (int32_t x)" },
    { "later.fire_thread", SPACE_FN(later_fire_thread), "int32_t (int32_t x)" },
    { "later.release", SPACE_FN(later_release), "int32_t (void)" },
    { "later.unprototyped", SPACE_FN(later_unprototyped), "int32_t (int32_t x, void (*f)())" },
    SPACE_END
};

SPACE_PLUGIN(.name = "events", .version = "1.0.0", .entries = entries, .flags = 0,
             .deinit = deinit, .types = EVENTS_TYPES)
