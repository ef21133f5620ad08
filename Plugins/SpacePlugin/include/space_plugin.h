/*
 * space_plugin.h — the plugin SDK of `space`.
 *
 * A plugin is a shared library that exports one function, `space_plugin_v1`, returning its manifest:
 * a name, a version, flags, optional init/deinit hooks, and a table of entries
 * `{ dotted name, function, C declaration }`. The host parses each declaration and calls the
 * function through libffi with arguments marshaled from the caller. See docs/plugin-abi.md.
 *
 *     #include <space_plugin.h>
 *     static int32_t add(int32_t a, int32_t b) { return a + b; }
 *     static const space_entry entries[] = {
 *         { "math.add", SPACE_FN(add), "int32_t (int32_t a, int32_t b)" },
 *         SPACE_END
 *     };
 *     SPACE_PLUGIN(.name = "calc", .version = "1.0.0", .entries = entries,
 *                  .flags = SPACE_PLUGIN_THREAD_SAFE)
 *
 * The header needs nothing but the C standard library; a C plugin never links the Swift runtime.
 */
#ifndef SPACE_PLUGIN_H
#define SPACE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The manifest layout version this header describes. The host refuses other versions. */
#define SPACE_PLUGIN_ABI 2

/** Flags of a plugin. */
enum {
    /** Every entry may run on several threads at once. Without it calls into the plugin are always
        serialized. (Today the host runs every call on one thread; the flag is reported by `add`.) */
    SPACE_PLUGIN_THREAD_SAFE = 1u << 0,
};

/** Any function pointer, stored type-erased; the declaration says what it really is. */
typedef void (*space_fn)(void);

/** One callable entry. */
typedef struct space_entry {
    /** Dotted name callers use, e.g. "math.add". */
    const char *name;
    /** The function. */
    space_fn fn;
    /** Its C type, name optional: "int32_t (int32_t a, int32_t b)". */
    const char *decl;
} space_entry;

/**
 * Init hook, run once when the plugin is added, with the init arguments given to `add`.
 * Return 0 to accept; anything else refuses the add, with a message written to `error`
 * (at most `error_size` bytes including the terminator).
 */
typedef int (*space_init_hook)(int argc, const char *const argv[], char *error, size_t error_size);

/** Deinit hook, run when the plugin is removed or the space shuts down gracefully. */
typedef void (*space_deinit_hook)(void);

/** The manifest. */
typedef struct space_plugin {
    /** Must be SPACE_PLUGIN_ABI (SPACE_PLUGIN sets it). */
    uint32_t abi;
    /** SPACE_PLUGIN_* flags. */
    uint32_t flags;
    /** The package name callers use unless `add --as` renames it. */
    const char *name;
    /** A version string, reported by `add`. */
    const char *version;
    /** Entries, ended by SPACE_END. */
    const space_entry *entries;
    /** Optional. */
    space_init_hook init;
    /** Optional. */
    space_deinit_hook deinit;
    /** Optional C text of struct definitions and typedefs the entries' declarations use, e.g.
        "struct point { double x; double y; };". */
    const char *types;
} space_plugin;

/*
 * Annotations: words the host reads in declarations (manifest entries, `--decl` text, sidecar
 * headers) to know how pointers travel. To a C compiler they are empty, so an annotated prototype
 * stays valid C. The full table and the defaults when a pointer carries none: docs/plugin-abi.md.
 */
/** The function reads the pointee: the caller passes it (the default for `const T *`). */
#define SPACE_IN
/** The function writes the pointee: the caller passes nothing and gets it back (the default for `T *`). */
#define SPACE_OUT
/** The function reads and writes the pointee: the caller passes it and gets the new value back. */
#define SPACE_INOUT
/** The pointer is an array of `n` elements: `n` names an integer parameter (the length, filled by the
    host for in/in-out arrays; the capacity, passed by the caller, for out arrays), a pointer to an
    integer (capacity before the call, length after it), or is a number. */
#define SPACE_LEN(n)
/** The function releases the handle passed here; the handle is dead after the call. */
#define SPACE_RELEASE
/** Before a function: clear errno before the call and return it beside the result. */
#define SPACE_ERRNO
/** Before a function returning a pointer: release it with `fn` — a returned string or struct right
    after it is copied; a returned handle when the plugin is removed or the space stops. */
#define SPACE_FREE(fn)

/** On a function-pointer parameter: the function calls this callback only before it returns (a
    comparator, a visitor). The host frees the callback when the call returns, and the caller's stream
    of its invocations ends there. Without it a callback lives until the plugin releases it with
    space_callback_release, the caller cancels it, or the space stops (docs/callbacks.md). */
#define SPACE_SCOPED

/**
 * Callbacks. A function-pointer parameter of an entry is a callback slot: the caller passes `cb:N`
 * and the plugin receives a real C function pointer (a libffi closure made by the host). Calling it,
 * from any thread, any number of times, relays the call to the caller; a callback that returns a value
 * blocks the calling thread until the caller's answer comes back.
 *
 * space_callback_release(fn) tells the host the plugin will not call `fn` again: the host frees the
 * closure and the caller's stream of its invocations ends. Call it from any thread. Calling `fn` after
 * releasing it is a bug (a use-after-free, as with free(3)); the host keeps the last 1,024 released
 * closures allocated, so such a call returns the zero value and is counted (`callbacks.afterRelease`).
 * Outside a space host (e.g. a unit test that dlopens the plugin directly) it does nothing.
 */
#if defined(__GNUC__) || defined(__clang__)
/** Exported by space-host; weak so a plugin still loads where no host defines it. */
extern void space_host_callback_release(const void *fn) __attribute__((weak));
#else
extern void space_host_callback_release(const void *fn);
#endif

/** Releases the callback `fn` (see above). */
static inline void space_callback_release(const void *fn) {
    if (space_host_callback_release) space_host_callback_release(fn);
}

/** Stores a function of any type in an entry. */
#define SPACE_FN(f) ((space_fn)(f))
/** Ends an entry table. */
#define SPACE_END { NULL, NULL, NULL }

#if defined(__GNUC__) || defined(__clang__)
#define SPACE_EXPORT __attribute__((visibility("default")))
#else
#define SPACE_EXPORT
#endif

/** Defines and exports the manifest; arguments are designated initializers of space_plugin. */
#define SPACE_PLUGIN(...)                                                        \
    SPACE_EXPORT const space_plugin *space_plugin_v1(void);                      \
    SPACE_EXPORT const space_plugin *space_plugin_v1(void) {                     \
        static const space_plugin manifest = { .abi = SPACE_PLUGIN_ABI, __VA_ARGS__ }; \
        return &manifest;                                                        \
    }

#ifdef __cplusplus
}
#endif

#endif /* SPACE_PLUGIN_H */
