import Space
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real system libraries by declaration, with the types beyond scalars: libm out-parameters, libz
/// buffers, libc variadics and handles.
@Suite("System libraries with buffers, out-parameters, variadics and handles")
struct SystemLibraryTests {
    @Test func libmWithAnOutParameter() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("m", declarations: """
            double cos(double x);
            double pow(double base, double exponent);
            double frexp(double x, int *exp);
            double modf(double x, double *integral);
            """)
        #expect(try await space.call("m", "cos", 0) == 1.0)
        #expect(try await space.call("m", "pow", 2, 0.5) == .double(2.0.squareRoot()))
        #expect(try await space.call("m", "frexp", 8) == ["return": 0.5, "exp": 4])
        #expect(try await space.call("m", "frexp", 0) == ["return": 0.0, "exp": 0])
        #expect(try await space.call("m", "modf", 3.25) == ["return": 0.25, "integral": 3.0])
    }

    @Test func libzChecksumsAndCompressesIntoAnOutBuffer() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("z", declarations: """
            typedef unsigned long uLong;
            typedef unsigned char Bytef;
            uLong crc32(uLong crc, const Bytef *buf, unsigned int len);
            uLong compressBound(uLong sourceLen);
            int compress2(SPACE_OUT SPACE_LEN(destLen) Bytef *dest, SPACE_INOUT uLong *destLen,
                          const Bytef *source, uLong sourceLen, int level);
            int uncompress(SPACE_OUT SPACE_LEN(destLen) Bytef *dest, SPACE_INOUT uLong *destLen,
                           const Bytef *source, uLong sourceLen);
            """)
        // crc32("123456789") is the standard check value 0xCBF43926.
        #expect(try await space.call("z", "crc32", 0, .bytes(Array("123456789".utf8))) == .int(0xCBF4_3926))
        #expect(try await space.call("z", "crc32", 0, .bytes([])) == 0)
        let bound = try await space.call("z", "compressBound", 1000)
        #expect((bound.int ?? 0) > 1000)
        let input = Array(repeating: Array("space ".utf8), count: 200).flatMap { $0 }
        let packed = try await space.call("z", "compress2", bound, .bytes(input), 9)
        #expect(packed[field: "return"] == 0)
        let compressed = packed[field: "dest"]?.bytes ?? []
        #expect(compressed.count > 0 && compressed.count < input.count / 10)
        #expect(packed[field: "destLen"] == .int(Int64(compressed.count)))
        let unpacked = try await space.call("z", "uncompress", .int(Int64(input.count)), .bytes(compressed))
        #expect(unpacked[field: "return"] == 0)
        #expect(unpacked[field: "dest"] == .bytes(input))
        // Too small a buffer: zlib says Z_BUF_ERROR (-5), and nothing past the capacity comes back.
        let small = try await space.call("z", "compress2", 4, .bytes(input), 9)
        #expect(small[field: "return"] == -5)
        #expect((small[field: "dest"]?.bytes?.count ?? 99) <= 4)
    }

    @Test func libcStrlenSnprintfAndDirectoryHandles() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("c", declarations: """
            size_t strlen(const char *s);
            int snprintf(SPACE_LEN(size) char *str, size_t size, const char *format, ...);
            SPACE_FREE(closedir) struct DIR *opendir(const char *name);
            int closedir(SPACE_RELEASE struct DIR *dir);
            SPACE_ERRNO int dirfd(struct DIR *dir);
            SPACE_ERRNO int chdir(const char *path);
            int memcmp(SPACE_LEN(n) const void *a, SPACE_LEN(n) const void *b, size_t n);
            """)
        #expect(try await space.call("c", "strlen", "hello") == 5)
        #expect(try await space.call("c", "snprintf", 32, "%d-%s-%.2f-%ld", 7, "x", 1.5, .int(1 << 40))
                == ["return": 22, "str": "7-x-1.50-1099511627776"])
        // Truncated to the capacity, as snprintf does; the return value says how much it wanted.
        #expect(try await space.call("c", "snprintf", 4, "%s", "abcdef") == ["return": 6, "str": "abc"])

        let dir = try await space.call("c", "opendir", "/usr/lib")
        guard case .handle = dir else { Issue.record("opendir gave \(dir)"); return }
        let fd = try await space.call("c", "dirfd", dir)
        #expect((fd[field: "return"]?.int ?? -1) >= 0)
        #expect(fd[field: "errno"] == 0)
        #expect(try await space.call("c", "opendir", "/no/such/dir") == .null)
        let failed = try await space.call("c", "chdir", "/no/such/dir")
        #expect(failed == ["return": -1, "errno": 2])  // ENOENT
        #expect(try await space.call("c", "closedir", dir) == 0)
        let stale = await spaceError { _ = try await space.call("c", "dirfd", dir) }
        #expect(stale?.code == .badArgument)
        #expect(stale?.message.contains("no such handle") == true)

        #expect(try await space.call("c", "memcmp", .bytes([1, 2]), .bytes([1, 2])) == 0)
        let unequal = await spaceError { _ = try await space.call("c", "memcmp", .bytes([1, 2]), .bytes([1])) }
        #expect(unequal?.code == .badArgument)
        #expect(unequal?.message.contains("same number of elements") == true)
        #expect(try await space.call("c", "strlen", "still works") == 11)
    }

    @Test func handlesAreTypedAndDieWithTheirPlugin() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        try await space.add("calc", as: "other")
        try await space.add("c", declarations: "int closedir(SPACE_RELEASE struct DIR *dir);")
        let c1 = try await space.call("calc", "counter.new", 1)
        let c2 = try await space.call("calc", "counter.new", 2)
        let c3 = try await space.call("other", "counter.new", 3)
        #expect(try await space.call("other", "counter.live") == 3)
        // A counter is not a DIR: refused before closedir could touch it.
        let mistyped = await spaceError { _ = try await space.call("c", "closedir", c1) }
        #expect(mistyped?.code == .badArgument)
        #expect(mistyped?.message.contains("struct counter") == true)
        // A made-up id is refused, never dereferenced.
        let forged = await spaceError { _ = try await space.call("calc", "counter.add", .handle(12345), 1) }
        #expect(forged?.code == .badArgument)
        let notAHandle = await spaceError { _ = try await space.call("calc", "counter.add", 7, 1) }
        #expect(notAHandle?.code == .badArgument)
        // Removing "calc" releases its two counters with counter_free (SPACE_FREE); "other" keeps its own.
        try await space.remove("calc")
        #expect(try await space.call("other", "counter.live") == 1)
        let gone = await spaceError { _ = try await space.call("other", "counter.add", c2, 1) }
        #expect(gone?.code == .badArgument)
        #expect(try await space.call("other", "counter.add", c3, 1) == 4)
    }

    @Test func handlesDoNotSurviveARespawn() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        let c = try await space.call("calc", "counter.new", 1)
        // Kill the host; the next call respawns it and replays the add. The old id means nothing there.
        if let pid = space.pid { kill(pid, SIGKILL) }
        _ = await eventually(5) { space.isKilled }
        let e = await spaceError { _ = try await space.call("calc", "counter.add", c, 1) }
        #expect(e?.code == .badArgument)
        #expect(try await space.call("calc", "counter.live") == 0)
    }
}

@Suite("Manifest versions")
struct ManifestVersionTests {
    @Test func aPluginBuiltForAnotherABIIsRefused() async throws {
        // A manifest from the first layout (ABI 1, no `types` field): the host must not read past it.
        let source = temporaryFile("old.c", """
            #include <stdint.h>
            #include <stddef.h>
            struct old_manifest { uint32_t abi, flags; const char *name, *version; const void *entries; void *init, *deinit; };
            static const struct { const char *n; void *f; const char *d; } entries[] = { { NULL, NULL, NULL } };
            __attribute__((visibility("default"))) const struct old_manifest *space_plugin_v1(void) {
                static const struct old_manifest m = { 1, 0, "old", "0.1", entries, NULL, NULL };
                return &m;
            }
            """)
        let lib = String(source.dropLast(5)) + "/libold.so"
        #expect(shell("cc -shared -fPIC -o \(lib) \(source) && echo ok").contains("ok"))
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let e = await spaceError { _ = try await space.add(lib) }
        #expect(e?.code == .loadFailed)
        #expect(e?.message.contains("plugin ABI 1") == true)
        try await space.add("calc")
        #expect(try await space.call("calc", "math.add", 1, 1) == 2)
    }
}
