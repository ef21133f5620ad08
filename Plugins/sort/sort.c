// sort: an example plugin of scoped callbacks over arrays — the classic C pattern of a library that
// calls back into its caller for each element. The caller passes `cb:N`; the host hands the plugin a
// real C function pointer, valid until the entry returns (SPACE_SCOPED), that relays each call to the
// caller and blocks until the caller answers.
//
// array.sort shows why that pointer must be a genuine C function: the caller's comparator goes straight
// to libc's qsort, which knows nothing of the space. The others visit (array.each), map (array.map, with
// an out array sized by the input's length) and fold (array.reduce).
//
// The plugin has no state, so every entry is safe on several threads at once.
#include <space_plugin.h>

#include <stdlib.h>

typedef int (*cmp_fn)(const int32_t *a, const int32_t *b);

/// array.sort: sorts `xs` in place with the caller's comparator, called by qsort itself.
static void array_sort(int32_t *xs, size_t n, cmp_fn cmp) {
    if (!xs || n < 2 || !cmp) return;
    // qsort passes `const void *`; the comparator takes `const int32_t *`. Both are plain pointers in
    // the C calling convention, so handing it over as is is the usual C idiom.
    qsort(xs, n, sizeof(int32_t), (int (*)(const void *, const void *))cmp);
}

/// array.map: out[i] = fn(xs[i]). `out` has room for `n` elements (SPACE_LEN(n)).
static void array_map(const double *xs, size_t n, double *out, double (*fn)(double x)) {
    if (!xs || !out || !fn) return;
    for (size_t i = 0; i < n; i++) out[i] = fn(xs[i]);
}

/// array.each: calls visit(i, words[i]) for each word, in order; returns the count.
static int32_t array_each(const char *const *words, size_t n, void (*visit)(int32_t index, const char *word)) {
    if (!words || !visit) return 0;
    for (size_t i = 0; i < n; i++) visit((int32_t)i, words[i]);
    return (int32_t)n;
}

/// array.reduce: fn(…fn(fn(start, xs[0]), xs[1])…, xs[n-1]); `start` when `xs` is empty.
static int64_t array_reduce(const int64_t *xs, size_t n, int64_t start, int64_t (*fn)(int64_t acc, int64_t x)) {
    int64_t acc = start;
    if (!xs || !fn) return acc;
    for (size_t i = 0; i < n; i++) acc = fn(acc, xs[i]);
    return acc;
}

static const space_entry entries[] = {
    { "array.sort", SPACE_FN(array_sort),
      "void (SPACE_INOUT int32_t *xs, size_t n, SPACE_SCOPED int (*cmp)(const int32_t *a, const int32_t *b))" },
    { "array.map", SPACE_FN(array_map),
      "void (const double *xs, size_t n, SPACE_OUT SPACE_LEN(n) double *out, SPACE_SCOPED double (*fn)(double x))" },
    { "array.each", SPACE_FN(array_each),
      "int32_t (const char *const *words, size_t n, SPACE_SCOPED void (*visit)(int32_t index, const char *word))" },
    { "array.reduce", SPACE_FN(array_reduce),
      "int64_t (const int64_t *xs, size_t n, int64_t start, SPACE_SCOPED int64_t (*fn)(int64_t acc, int64_t x))" },
    SPACE_END
};

SPACE_PLUGIN(.name = "sort", .version = "1.0.0", .entries = entries, .flags = SPACE_PLUGIN_THREAD_SAFE)
