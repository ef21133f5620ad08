import Space
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Libraries without a manifest, loaded with C declarations: system libraries and sidecar headers.
@Suite("Libraries by declaration")
struct DeclarationsTests {
    @Test func libmByDeclaration() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let info = try await space.add("m", declarations: """
            double cos(double x);
            double pow(double base, double exponent);
            float sqrtf(float);
            """)
        #expect(info[field: "name"] == "m")
        #expect(try await space.call("m", "cos", 0) == 1.0)
        #expect(try await space.call("m", "pow", 2, 10) == 1024.0)
        #expect(try await space.call("m", "sqrtf", 2.25) == 1.5)
        let arity = await spaceError { try await space.call("m", "pow", 2) }
        #expect(arity?.code == .arityMismatch)
    }

    @Test func libcStrlenAndAbs() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("c", declarations: "size_t strlen(const char *s); int abs(int); long labs(long);")
        #expect(try await space.call("c", "strlen", "hello, space") == 12)
        #expect(try await space.call("c", "abs", -42) == 42)
        #expect(try await space.call("c", "labs", .int(-(1 << 40))) == .int(1 << 40))
    }

    @Test func dottedNamesMapToUnderscoredSymbols() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        // The calc plugin exports its C functions under underscored names too? No: they are static.
        // A small library of our own with a `geo_area` symbol shows the mapping.
        let source = temporaryFile("geo.c", "double geo_area(double w, double h) { return w * h; }\n")
        let lib = String(source.dropLast(5)) + "/libgeo.so"
        #expect(shell("cc -shared -fPIC -o \(lib) \(source) && echo ok").contains("ok"))
        try await space.add(lib, declarations: "double geo.area(double w, double h);")
        #expect(try await space.call("geo", "geo.area", 3, 4) == 12.0)
        try await space.add("c", declarations: "int abs(int);")
        let e = await spaceError {
            try await space.add("c", as: "c2", declarations: "int str.len(const char *);")
        }
        // str.len → symbol str_len, which libc does not have: the error names the mapped symbol.
        #expect(e?.code == .declarationError)
        #expect(e?.message.contains("'str_len'") == true)
    }

    @Test func aSidecarHeaderSuppliesDeclarations() async throws {
        let dir = buildDirectory()
        let lib = temporaryFile("libsidecar.so", "")
        #expect(shell("cp /lib/x86_64-linux-gnu/libm.so.6 \(lib) 2>/dev/null || cp $(ldconfig -p | awk '/libm.so.6/{print $NF; exit}') \(lib); echo ok").contains("ok"))
        let header = String(lib.dropLast(3)) + ".space.h"
        let f = fopen(header, "w")!
        fputs("#pragma once\n// libm, declared beside it\ndouble cbrt(double);\n", f)
        fclose(f)
        _ = dir
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add(lib)
        let root = try await space.call("sidecar", "cbrt", 27)
        #expect(abs((root.double ?? 0) - 3) < 1e-12, "cbrt(27) gave \(root)")
    }

    @Test func noManifestAndNoDeclarationsIsATypedError() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let e = await spaceError { try await space.add("m") }
        #expect(e?.code == .declarationError)
        #expect(e?.message.contains("no space manifest") == true)
        let bad = await spaceError { try await space.add("m", declarations: "double cos(double") }
        #expect(bad?.code == .declarationError)
        #expect(bad?.message.contains("line 1") == true)
        let missing = await spaceError { try await space.add("m", declarations: "double no_such_function(double);") }
        #expect(missing?.code == .declarationError)
        #expect(missing?.message.contains("no_such_function") == true)
        // Nothing was left half-added.
        try await space.add("m", declarations: "double cos(double);")
        #expect(try await space.call("m", "cos", 0) == 1.0)
    }

    @Test func typesNotMarshaledYetFailOnlyTheirFunction() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let info = try await space.add("c", declarations: """
            int abs(int);
            void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
            """)
        let functions = info[field: "functions"]?.array ?? []
        #expect(functions.contains { $0[field: "name"] == "qsort" && $0[field: "unsupported"] != nil })
        let e = await spaceError { try await space.call("c", "qsort", nil, 0, 0, nil) }
        #expect(e?.code == .unsupportedType)
        #expect(try await space.call("c", "abs", -1) == 1)
    }

    @Test func aMissingDependencyIsALoadFailureNotNotFound() async throws {
        let lib = temporaryFile("libneedsmissing.so", "")
        let source = temporaryFile("needs.c", "extern int nowhere(void); int f(void) { return nowhere(); }\n")
        let dir = String(source[..<source.lastIndex(of: "/")!])
        let built = shell("""
            cd \(dir) && printf 'int nowhere(void){return 1;}\\n' > nowhere.c && \
            cc -shared -fPIC -o libnowhere.so nowhere.c && \
            cc -shared -fPIC -o \(lib) \(source) -L. -lnowhere && rm libnowhere.so && echo ok
            """)
        guard built.contains("ok") else {
            Issue.record("could not build the test library: \(built)")
            return
        }
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let e = await spaceError { try await space.add(lib, declarations: "int f(void);") }
        #expect(e?.code == .loadFailed)
        #expect(e?.message.contains("libnowhere.so") == true)
    }
}
