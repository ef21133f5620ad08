// calc: an example plugin: scalar arithmetic (one entry per kind of C scalar), structs by value and
// by pointer, arrays with out-parameters, errno, a variadic function and opaque handles.
#include <space_plugin.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t scale = 1;

static int32_t add(int32_t a, int32_t b) { return a + b; }
static int32_t sub(int32_t a, int32_t b) { return a - b; }
static int64_t mul(int64_t a, int64_t b) { return a * b; }
static double divide(double a, double b) { return a / b; }
static double hyp(double a, double b) { return hypot(a, b); }
static float avgf(float a, float b) { return (a + b) / 2.0f; }
static int8_t negate8(int8_t v) { return (int8_t)-v; }
static uint8_t shl8(uint8_t v, uint8_t n) { return (uint8_t)(v << n); }
static int16_t clamp16(int32_t v) { return v > INT16_MAX ? INT16_MAX : v < INT16_MIN ? INT16_MIN : (int16_t)v; }
static uint16_t swap16(uint16_t v) { return (uint16_t)((v << 8) | (v >> 8)); }
static uint32_t umax32(uint32_t a, uint32_t b) { return a > b ? a : b; }
static uint64_t umax64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static bool is_even(long long v) { return v % 2 == 0; }
static bool both(bool a, bool b) { return a && b; }
static unsigned long ulong_id(unsigned long v) { return v; }
static size_t count_bits(size_t v) { return (size_t)__builtin_popcountll(v); }
static intptr_t ptr_diff(intptr_t a, intptr_t b) { return a - b; }
static void noop(void) {}
static int32_t scaled(int32_t v) { return v * scale; }
static int sum6(int a, int b, int c, int d, int e, int f) { return a + b + c + d + e + f; }
static double mix(int8_t a, uint16_t b, int32_t c, uint64_t d, float e, double f, short g, unsigned char h) {
    return a + b + c + (double)d + e + f + g + h;
}

// Structs: by value, by pointer, nested, in arrays.
struct point { double x; double y; };
struct rect { struct point min; struct point max; };
struct sample { int8_t tag; double value; uint16_t weight; bool ok; float ratio; };
struct deep { struct rect box; struct sample s; int64_t id; };
#define CALC_TYPES                                                                               \
    "struct point { double x; double y; };"                                                    \
    "struct rect { struct point min; struct point max; };"                                      \
    "struct sample { int8_t tag; double value; uint16_t weight; bool ok; float ratio; };"       \
    "struct deep { struct rect box; struct sample s; int64_t id; };"

static struct point midpoint(struct point a, struct point b) {
    return (struct point){ (a.x + b.x) / 2, (a.y + b.y) / 2 };
}
static double length(const struct point *p) { return p ? hypot(p->x, p->y) : -1; }
static void scale_point(struct point *p, double k) { p->x *= k; p->y *= k; }
static struct rect bounds(const struct point *pts, size_t n) {
    struct rect r = { { 0, 0 }, { 0, 0 } };
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || pts[i].x < r.min.x) r.min.x = pts[i].x;
        if (i == 0 || pts[i].y < r.min.y) r.min.y = pts[i].y;
        if (i == 0 || pts[i].x > r.max.x) r.max.x = pts[i].x;
        if (i == 0 || pts[i].y > r.max.y) r.max.y = pts[i].y;
    }
    return r;
}
static const struct point *origin(void) {
    static const struct point o = { 0, 0 };
    return &o;
}
static struct sample sample_echo(struct sample s) { return s; }
static struct deep deep_echo(struct deep d) { return d; }

// Arrays and out-parameters.
static int minmax(const double *xs, size_t n, double *min, double *max) {
    if (n == 0) return -1;
    *min = *max = xs[0];
    for (size_t i = 1; i < n; i++) {
        if (xs[i] < *min) *min = xs[i];
        if (xs[i] > *max) *max = xs[i];
    }
    return 0;
}
static double sum(const double *xs, size_t n) {
    double t = 0;
    for (size_t i = 0; i < n; i++) t += xs[i];
    return t;
}
static int64_t isum(const int32_t *xs, size_t n) {
    int64_t t = 0;
    for (size_t i = 0; i < n; i++) t += xs[i];
    return t;
}
static void divmod(int64_t a, int64_t b, int64_t *quotient, int64_t *remainder) {
    *quotient = b ? a / b : 0;
    *remainder = b ? a % b : 0;
}

// errno and variadics.
static double safe_div(double a, double b) {
    if (b == 0) { errno = EDOM; return 0; }
    return a / b;
}
static int64_t sum_ints(int count, ...) {
    va_list ap;
    va_start(ap, count);
    int64_t t = 0;
    for (int i = 0; i < count; i++) t += va_arg(ap, int);
    va_end(ap);
    return t;
}

// Opaque handles: counters the caller holds by id.
struct counter { int64_t value; };
static atomic_long live_counters;
static struct counter *counter_new(int64_t start) {
    struct counter *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->value = start;
    atomic_fetch_add(&live_counters, 1);
    return c;
}
static int64_t counter_add(struct counter *c, int64_t n) { return c->value += n; }
// Exported so the host finds it by name for SPACE_FREE(counter_free).
SPACE_EXPORT void counter_free(struct counter *c) {
    if (!c) return;
    free(c);
    atomic_fetch_sub(&live_counters, 1);
}
static int64_t counter_live(void) { return atomic_load(&live_counters); }

// CPU work for benchmarks of worker pools: `iterations` steps of an xorshift64 mixed with the step
// number, all in registers (no sleeping, no memory traffic). Returning the result keeps the compiler
// from dropping the loop.
static uint64_t spin(uint64_t iterations) {
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (uint64_t i = 0; i < iterations; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x += i;
    }
    return x;
}

static int init(int argc, const char *const argv[], char *error, size_t error_size) {
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "scale=", 6) == 0) {
            char *end = NULL;
            long v = strtol(argv[i] + 6, &end, 10);
            if (*end != '\0' || end == argv[i] + 6) {
                snprintf(error, error_size, "calc: scale must be an integer, got '%s'", argv[i] + 6);
                return 1;
            }
            scale = (int32_t)v;
        } else {
            snprintf(error, error_size, "calc: unknown init argument '%s' (expected scale=N)", argv[i]);
            return 1;
        }
    }
    return 0;
}

static const space_entry entries[] = {
    { "math.add", SPACE_FN(add), "int32_t (int32_t a, int32_t b)" },
    { "math.sub", SPACE_FN(sub), "int32_t (int32_t a, int32_t b)" },
    { "math.mul", SPACE_FN(mul), "int64_t (int64_t a, int64_t b)" },
    { "math.div", SPACE_FN(divide), "double (double a, double b)" },
    { "math.hypot", SPACE_FN(hyp), "double (double a, double b)" },
    { "math.avgf", SPACE_FN(avgf), "float (float a, float b)" },
    { "math.negate8", SPACE_FN(negate8), "int8_t (int8_t v)" },
    { "math.shl8", SPACE_FN(shl8), "uint8_t (uint8_t v, uint8_t n)" },
    { "math.clamp16", SPACE_FN(clamp16), "int16_t (int32_t v)" },
    { "math.swap16", SPACE_FN(swap16), "uint16_t (uint16_t v)" },
    { "math.umax32", SPACE_FN(umax32), "uint32_t (uint32_t a, uint32_t b)" },
    { "math.umax64", SPACE_FN(umax64), "uint64_t (uint64_t a, uint64_t b)" },
    { "math.is_even", SPACE_FN(is_even), "bool (long long v)" },
    { "math.both", SPACE_FN(both), "bool (bool a, bool b)" },
    { "math.ulong_id", SPACE_FN(ulong_id), "unsigned long (unsigned long v)" },
    { "math.count_bits", SPACE_FN(count_bits), "size_t (size_t v)" },
    { "math.ptr_diff", SPACE_FN(ptr_diff), "intptr_t (intptr_t a, intptr_t b)" },
    { "math.noop", SPACE_FN(noop), "void (void)" },
    { "math.scaled", SPACE_FN(scaled), "int32_t (int32_t v)" },
    { "math.sum6", SPACE_FN(sum6), "int (int a, int b, int c, int d, int e, int f)" },
    { "math.mix", SPACE_FN(mix), "double (int8_t a, uint16_t b, int32_t c, uint64_t d, float e, double f, short g, unsigned char h)" },
    { "geo.midpoint", SPACE_FN(midpoint), "struct point (struct point a, struct point b)" },
    { "geo.length", SPACE_FN(length), "double (const struct point *p)" },
    { "geo.scale", SPACE_FN(scale_point), "void (SPACE_INOUT struct point *p, double k)" },
    { "geo.bounds", SPACE_FN(bounds), "struct rect (const struct point *pts, size_t n)" },
    { "geo.origin", SPACE_FN(origin), "const struct point *(void)" },
    { "types.sample", SPACE_FN(sample_echo), "struct sample (struct sample s)" },
    { "types.deep", SPACE_FN(deep_echo), "struct deep (struct deep d)" },
    { "stats.minmax", SPACE_FN(minmax), "int (const double *xs, size_t n, double *min, double *max)" },
    { "stats.sum", SPACE_FN(sum), "double (const double *xs, size_t n)" },
    { "stats.isum", SPACE_FN(isum), "int64_t (const int32_t *xs, size_t n)" },
    { "math.divmod", SPACE_FN(divmod), "void (int64_t a, int64_t b, int64_t *quotient, int64_t *remainder)" },
    { "math.safe_div", SPACE_FN(safe_div), "SPACE_ERRNO double (double a, double b)" },
    { "math.sum_ints", SPACE_FN(sum_ints), "int64_t (int count, ...)" },
    { "counter.new", SPACE_FN(counter_new), "SPACE_FREE(counter_free) struct counter *(int64_t start)" },
    { "counter.add", SPACE_FN(counter_add), "int64_t (struct counter *c, int64_t n)" },
    { "counter.free", SPACE_FN(counter_free), "void (SPACE_RELEASE struct counter *c)" },
    { "counter.live", SPACE_FN(counter_live), "int64_t (void)" },
    { "math.spin", SPACE_FN(spin), "uint64_t (uint64_t iterations)" },
    SPACE_END
};

SPACE_PLUGIN(.name = "calc", .version = "1.0.0", .entries = entries,
             .flags = SPACE_PLUGIN_THREAD_SAFE, .init = init, .types = CALC_TYPES)
