// text: an example plugin of string and byte-buffer functions. Most returned strings point into a
// per-thread buffer that stays valid until the next call on the same thread (the host copies them at
// once and leaves them alone); `text.dup` returns malloc'd memory the host releases with `text_free`.
#include <space_plugin.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char *buffer;
static _Thread_local size_t buffer_size;

static char *scratch(size_t n) {
    if (n > buffer_size) {
        char *p = realloc(buffer, n);
        if (!p) return NULL;
        buffer = p;
        buffer_size = n;
    }
    return buffer;
}

static const char *upper(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *out = scratch(n + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) out[i] = (char)toupper((unsigned char)s[i]);
    out[n] = '\0';
    return out;
}

static size_t length(const char *s) { return s ? strlen(s) : 0; }

static const char *concat(const char *a, const char *b) {
    if (!a || !b) return NULL;
    size_t na = strlen(a), nb = strlen(b);
    char *out = scratch(na + nb + 1);
    if (!out) return NULL;
    memcpy(out, a, na);
    memcpy(out + na, b, nb + 1);
    return out;
}

static const char *repeat(const char *s, uint32_t times) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *out = scratch(n * times + 1);
    if (!out) return NULL;
    for (uint32_t i = 0; i < times; i++) memcpy(out + i * n, s, n);
    out[n * times] = '\0';
    return out;
}

static const char *nonempty(const char *s) { return (s && *s) ? s : NULL; }

static bool is_null(const char *s) { return s == NULL; }

// Ownership: a string the caller's copy of which the host releases through text_free.
static atomic_long live_strings;
static char *dup_upper(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    for (size_t i = 0; i <= n; i++) out[i] = (char)toupper((unsigned char)s[i]);
    atomic_fetch_add(&live_strings, 1);
    return out;
}
// Exported so the host finds it by name for SPACE_FREE(text_free).
SPACE_EXPORT void text_free(char *s) {
    if (!s) return;
    free(s);
    atomic_fetch_sub(&live_strings, 1);
}
static int64_t live(void) { return atomic_load(&live_strings); }

// Byte buffers.
static void reverse(uint8_t *data, size_t len) {
    for (size_t i = 0, j = len ? len - 1 : 0; i < j; i++, j--) {
        uint8_t t = data[i];
        data[i] = data[j];
        data[j] = t;
    }
}
static uint32_t checksum(const uint8_t *data, size_t len) {  // FNV-1a
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ data[i]) * 16777619u;
    return h;
}
static size_t fill(uint8_t *out, size_t cap, uint8_t value) {
    memset(out, value, cap);
    return cap;
}
static size_t copy(const uint8_t *in, size_t n, uint8_t *out) {
    memcpy(out, in, n);
    return n;
}

// Variadic formatting into a caller-sized buffer, and an array of strings in.
static int format(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n;
}
static const char *join(const char *const *parts, size_t n, const char *sep) {
    size_t total = 1, ns = sep ? strlen(sep) : 0;
    for (size_t i = 0; i < n; i++) total += (parts[i] ? strlen(parts[i]) : 0) + ns;
    char *out = scratch(total);
    if (!out) return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && sep) strcat(out, sep);
        if (parts[i]) strcat(out, parts[i]);
    }
    return out;
}

static const space_entry entries[] = {
    { "text.dup", SPACE_FN(dup_upper), "SPACE_FREE(text_free) char *(const char *s)" },
    { "text.live", SPACE_FN(live), "int64_t (void)" },
    { "text.format", SPACE_FN(format), "int (SPACE_LEN(cap) char *out, size_t cap, const char *fmt, ...)" },
    { "text.join", SPACE_FN(join), "const char *(const char *const *parts, size_t n, const char *sep)" },
    { "bytes.reverse", SPACE_FN(reverse), "void (SPACE_INOUT uint8_t *data, size_t len)" },
    { "bytes.checksum", SPACE_FN(checksum), "uint32_t (const uint8_t *data, size_t len)" },
    { "bytes.fill", SPACE_FN(fill), "size_t (uint8_t *out, size_t cap, uint8_t value)" },
    { "bytes.copy", SPACE_FN(copy), "size_t (const uint8_t *in, size_t n, SPACE_OUT SPACE_LEN(n) uint8_t *out)" },
    { "upper", SPACE_FN(upper), "const char *(const char *s)" },
    { "length", SPACE_FN(length), "size_t (const char *s)" },
    { "concat", SPACE_FN(concat), "const char *(const char *a, const char *b)" },
    { "repeat", SPACE_FN(repeat), "const char *(const char *s, uint32_t times)" },
    { "nonempty", SPACE_FN(nonempty), "const char *(const char *s)" },
    { "is_null", SPACE_FN(is_null), "bool (const char *s)" },
    SPACE_END
};

SPACE_PLUGIN(.name = "text", .version = "1.0.0", .entries = entries)
