// calc: an example plugin of scalar arithmetic, one entry per kind of C scalar.
#include <space_plugin.h>

#include <math.h>
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
    SPACE_END
};

SPACE_PLUGIN(.name = "calc", .version = "1.0.0", .entries = entries,
             .flags = SPACE_PLUGIN_THREAD_SAFE, .init = init)
