// text: an example plugin of string functions. Returned strings point into a per-thread buffer
// that stays valid until the next call on the same thread; the host copies them at once.
#include <space_plugin.h>

#include <ctype.h>
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

static const space_entry entries[] = {
    { "upper", SPACE_FN(upper), "const char *(const char *s)" },
    { "length", SPACE_FN(length), "size_t (const char *s)" },
    { "concat", SPACE_FN(concat), "const char *(const char *a, const char *b)" },
    { "repeat", SPACE_FN(repeat), "const char *(const char *s, uint32_t times)" },
    { "nonempty", SPACE_FN(nonempty), "const char *(const char *s)" },
    { "is_null", SPACE_FN(is_null), "bool (const char *s)" },
    SPACE_END
};

SPACE_PLUGIN(.name = "text", .version = "1.0.0", .entries = entries)
