import SpaceFFI
import SpacePlugin
import SpaceWire

#if canImport(Glibc)
import Glibc
#endif

/// A loaded library: its `dlopen` handle, manifest facts and callable functions. It owns the handle
/// and closes it in `deinit`, after the functions (which point into it) are gone.
final class Plugin {
    let name: String
    let version: String
    let path: String
    let threadSafe: Bool
    /// The owner id of the handles this plugin's functions create.
    let id: Int
    private(set) var functions: [String: FFIFunction] = [:]
    /// Function names in declaration order, for the add reply.
    private(set) var order: [String] = []
    /// Manifest entries of a replayed add, made into functions when first called: their
    /// declaration and code (both the library's memory, valid while `handle` is open).
    private var deferred: [String: (declaration: UnsafePointer<CChar>, code: UnsafeMutableRawPointer)] = [:]
    /// The manifest's shared types, parsed when the first deferred entry is made.
    private var deferredTypes: (text: UnsafePointer<CChar>?, parsed: CDeclarations?) = (nil, nil)
    private let handle: UnsafeMutableRawPointer
    private let deinitHook: space_deinit_hook?

    private init(name: String, version: String, path: String, threadSafe: Bool, id: Int,
                 handle: UnsafeMutableRawPointer, deinitHook: space_deinit_hook?) {
        self.id = id
        self.name = name
        self.version = version
        self.path = path
        self.threadSafe = threadSafe
        self.handle = handle
        self.deinitHook = deinitHook
    }

    deinit {
        functions.removeAll()
        dlclose(handle)
    }

    /// Looks a function up by the name a caller used: exact, else with `.` → `_` (C symbols
    /// cannot contain dots, so `math.add` reaches a declared `math_add`). A deferred entry is made
    /// now, and fails with `declarationError` if its declaration does not parse.
    @inline(__always)
    func function(_ name: String) throws(SpaceError) -> FFIFunction? {
        if let f = functions[name] { return f }
        if !deferred.isEmpty, let f = try make(name) { return f }
        guard name.utf8.contains(UInt8(ascii: ".")) else { return nil }
        let symbol = String(name.map { $0 == "." ? "_" : $0 })
        if let f = functions[symbol] { return f }
        return deferred.isEmpty ? nil : try make(symbol)
    }

    /// Makes the deferred entry `name` into a function, if there is one. One whose declaration
    /// fails stays deferred, so every call of it gets the same error.
    private func make(_ name: String) throws(SpaceError) -> FFIFunction? {
        guard let entry = deferred[name] else { return nil }
        if deferredTypes.parsed == nil {
            deferredTypes.parsed = try Self.parseTypes(deferredTypes.text, path: path)
        }
        let f = try Self.makeFunction(name, entry.declaration, entry.code, types: deferredTypes.parsed!, path: path,
                                      owner: id, resolve: resolver)
        deferred[name] = nil
        functions[name] = f
        return f
    }

    /// SPACE_FREE names a function of the library itself, else one the process has (free).
    private var resolver: (String) -> UnsafeMutableRawPointer? {
        { [handle] in dlsym(handle, $0) ?? dlsym(nil, $0) }
    }

    /// Runs the deinit hook (once); the library is closed when the plugin is released.
    func runDeinit() {
        deinitHook?()
    }

    private func register(_ f: FFIFunction) throws(SpaceError) {
        if functions[f.name] != nil {
            throw SpaceError(.declarationError, "\(name) declares \(f.name) twice")
        }
        functions[f.name] = f
        order.append(f.name)
    }

    /// What `add` answers: name, version, path, flags, and every function with its declaration.
    var summary: Value {
        .object([
            .init("name", .string(name)),
            .init("version", .string(version)),
            .init("path", .string(path)),
            .init("threadSafe", .bool(threadSafe)),
            .init("functions", .array(order.map { n in
                let f = functions[n]!
                var fields: [Value.Field] = [.init("name", .string(n)), .init("declaration", .string(f.type.description))]
                if let u = f.unsupported { fields.append(.init("unsupported", .string(u))) }
                // What the caller passes, so a client can type its arguments (docs/plugin-abi.md).
                fields.append(.init("parameters", .array(f.visibleParameters.map { p in
                    var parameter: [Value.Field] = [
                        .init("name", .string(p.name)), .init("type", .string(p.type)), .init("kind", .string(p.kind.rawValue)),
                    ]
                    if let arity = p.arity { parameter.append(.init("arity", .int(Int64(arity)))) }
                    return .object(parameter)
                })))
                if f.type.isVariadic { fields.append(.init("variadic", .bool(true))) }
                return .object(fields)
            })),
        ])
    }

    // MARK: Loading

    /// Finds, loads and initializes a library for `request`.
    static func load(_ request: AddRequest, searchPaths: [String], id: Int, isTaken: (String) -> Bool) throws(SpaceError) -> Plugin {
        let (handle, path) = try open(request.library, searchPaths: searchPaths)
        // Until a Plugin owns the handle, this function does; after that the Plugin's deinit closes it.
        var owned = true
        defer { if owned { dlclose(handle) } }

        let manifest: UnsafePointer<space_plugin>?
        if let sym = dlsym(handle, "space_plugin_v1") {
            typealias ManifestFn = @convention(c) () -> UnsafePointer<space_plugin>?
            manifest = unsafeBitCast(sym, to: ManifestFn.self)()
            guard let m = manifest else {
                throw SpaceError(.loadFailed, "\(path): space_plugin_v1 returned NULL")
            }
            guard m.pointee.abi == UInt32(SPACE_PLUGIN_ABI) else {
                throw SpaceError(.loadFailed, "\(path): plugin ABI \(m.pointee.abi), this host reads ABI \(SPACE_PLUGIN_ABI); rebuild the plugin against this space_plugin.h")
            }
        } else {
            manifest = nil
        }

        var declarations = request.declarations
        if manifest == nil && declarations.isEmpty {
            if let sidecar = findSidecar(library: request.library, path: path, searchPaths: searchPaths) {
                declarations = sidecar
            } else {
                throw SpaceError(.declarationError, "\(path) has no space manifest (space_plugin_v1) and no declarations were given: pass declarations (--decl, --decl-file) or put lib\(baseName(request.library)).space.h beside it")
            }
        }

        let fallbackName = baseName(request.library)
        let name = !request.alias.isEmpty ? request.alias
            : manifest.flatMap { $0.pointee.name.map { String(cString: $0) } } ?? fallbackName
        guard isValidPackageName(name) else {
            throw SpaceError(.declarationError, "'\(name)' is not a valid package name (letters, digits, '_', '-', '.')")
        }
        if isTaken(name) {
            throw SpaceError(.alreadyAdded, "a package named '\(name)' is already added; choose another name (add --as)")
        }
        let version = manifest.flatMap { $0.pointee.version.map { String(cString: $0) } } ?? ""
        let threadSafe = manifest.map { $0.pointee.flags & UInt32(SPACE_PLUGIN_THREAD_SAFE) != 0 } ?? false
        let plugin = Plugin(name: name, version: version, path: path, threadSafe: threadSafe, id: id, handle: handle,
                            deinitHook: manifest?.pointee.deinit)
        owned = false
        let resolve = plugin.resolver

        if let m = manifest {
            // A replay defers each entry to its first call; a first add checks them all now (and
            // answers with every declaration).
            let types = request.isReplay ? CDeclarations() : try parseTypes(m.pointee.types, path: path)
            if request.isReplay { plugin.deferredTypes.text = m.pointee.types }
            var entry = m.pointee.entries
            var count = 0
            while let e = entry, let cname = e.pointee.name {
                count += 1
                guard count <= 65_536 else { throw SpaceError(.loadFailed, "\(path): entry table has no SPACE_END") }
                let fname = String(cString: cname)
                guard let fn = e.pointee.fn, let cdecl = e.pointee.decl else {
                    throw SpaceError(.declarationError, "\(path): entry \(fname) has no function or no declaration")
                }
                let code = unsafeBitCast(fn, to: UnsafeMutableRawPointer.self)
                if request.isReplay {
                    // (Not in `order`: a replay's answer lists no functions.)
                    guard plugin.deferred.updateValue((cdecl, code), forKey: fname) == nil else {
                        throw SpaceError(.declarationError, "\(name) declares \(fname) twice")
                    }
                } else {
                    try plugin.register(try makeFunction(fname, cdecl, code, types: types, path: path, owner: id,
                                                         resolve: resolve))
                }
                entry = e + 1
            }
        }

        if !declarations.isEmpty {
            let parsed: CDeclarations
            do {
                parsed = try DeclarationParser.parse(declarations)
            } catch {
                throw SpaceError(.declarationError, "declarations for \(name): \(error)")
            }
            for f in parsed.functions {
                // A dotted name (`math.add`) names the C symbol with dots as underscores (`math_add`).
                let symbol = String(f.name.map { $0 == "." ? "_" : $0 })
                dlerror()
                guard let sym = dlsym(handle, symbol) else {
                    throw SpaceError(.declarationError, "symbol '\(symbol)' is declared but not found in \(path)")
                }
                try plugin.register(try FFIFunction(name: f.name, type: f.type, code: sym, structs: parsed.structs,
                                                    owner: id, resolve: resolve))
            }
        }

        if let initHook = manifest?.pointee.`init` {
            var error = [CChar](repeating: 0, count: 512)
            let rc = withCStringArray(request.initArguments) { argv in
                initHook(Int32(request.initArguments.count), argv, &error, error.count - 1)
            }
            error[error.count - 1] = 0  // a plugin that filled the buffer without a terminator
            if rc != 0 {
                let message = error.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                throw SpaceError(.initFailed, "\(name) refused to start (init returned \(rc))\(message.isEmpty ? "" : ": " + message)")
            }
        } else if !request.initArguments.isEmpty {
            throw SpaceError(.initFailed, "\(name) takes no init arguments (it has no init hook), got \(request.initArguments.count)")
        }
        return plugin
    }

    /// The manifest's `types`: struct definitions and typedefs its entries share.
    private static func parseTypes(_ text: UnsafePointer<CChar>?, path: String) throws(SpaceError) -> CDeclarations {
        guard let text else { return CDeclarations() }
        let types: CDeclarations
        do {
            types = try DeclarationParser.parse(String(cString: text))
        } catch {
            throw SpaceError(.declarationError, "\(path): the manifest's types: \(error)")
        }
        if let f = types.functions.first {
            throw SpaceError(.declarationError, "\(path): the manifest's types declare a function (\(f.name)); declare functions as entries")
        }
        return types
    }

    /// A manifest entry made into a callable function: its declaration parsed against `types`.
    private static func makeFunction(_ name: String, _ declaration: UnsafePointer<CChar>, _ code: UnsafeMutableRawPointer,
                                     types: CDeclarations, path: String, owner: Int,
                                     resolve: (String) -> UnsafeMutableRawPointer?) throws(SpaceError) -> FFIFunction {
        let decl = String(cString: declaration)
        let type: CFunctionType
        do {
            type = try DeclarationParser.parseFunctionType(decl, declarations: types)
        } catch {
            throw SpaceError(.declarationError, "\(path): entry \(name): \(error) in \"\(decl)\"")
        }
        do {
            return try FFIFunction(name: name, type: type, code: code, structs: types.structs, owner: owner, resolve: resolve)
        } catch {
            throw SpaceError(error.code, "\(path): entry \(name): \(error.message)")
        }
    }

    /// `dlopen`s the library named by `spec`, trying the documented places in order.
    private static func open(_ spec: String, searchPaths: [String]) throws(SpaceError) -> (UnsafeMutableRawPointer, String) {
        var tried: [String] = []
        var loadErrors: [String] = []
        func attempt(_ path: String) -> UnsafeMutableRawPointer? {
            tried.append(path)
            if let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) { return h }
            let message = dlerror().map { String(cString: $0) } ?? "unknown error"
            // "<path>: cannot open shared object file: No such file" means "not here". The same words
            // about another name mean the library is here but one of its dependencies is missing.
            let absent = message.hasPrefix(path + ":") && message.contains("No such file")
            if !absent { loadErrors.append(message) }
            return nil
        }
        if spec.contains("/") {
            if let h = attempt(spec) { return (h, spec) }
        } else {
            guard !spec.isEmpty else { throw SpaceError(.libraryNotFound, "no library name given") }
            // `libz.so.1` or `libcalc.so` is a file name already; `calc` is a library name.
            let isFileName = spec.hasSuffix(".so") || spec.contains(".so.")
            let files = isFileName ? [spec] : ["lib\(spec).so", "\(spec).so"]
            for dir in searchPaths {
                for file in files {
                    let path = dir.hasSuffix("/") ? dir + file : dir + "/" + file
                    if access(path, F_OK) == 0, let h = attempt(path) { return (h, path) }
                }
            }
            // The system loader's own search (LD_LIBRARY_PATH, ld.so.cache, default directories).
            for file in files {
                if let h = attempt(file) { return (h, file) }
            }
            // Runtime-only installs have just the versioned file (libz.so.1, libm.so.6).
            if !isFileName, let versioned = findVersioned(spec), let h = attempt(versioned) { return (h, versioned) }
        }
        if let first = loadErrors.first {
            throw SpaceError(.loadFailed, "could not load \(spec): \(first)")
        }
        let places = spec.contains("/") ? spec : "lib\(spec).so and \(spec).so in \(searchPaths.isEmpty ? "(no paths)" : searchPaths.joined(separator: ":")), then the system loader's search, then lib\(spec).so.N in the system library directories"
        throw SpaceError(.libraryNotFound, "library \(spec) not found (looked for \(places))")
    }

    /// `lib<NAME>.so.<N>` in the system library directories, the shortest such name.
    private static func findVersioned(_ spec: String) -> String? {
        let prefix = "lib\(spec).so."
        var best: String?
        for dir in ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                    "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"] {
            guard let d = opendir(dir) else { continue }
            defer { closedir(d) }
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                guard name.hasPrefix(prefix) else { continue }
                let full = dir + "/" + name
                if best == nil || full.count < best!.count { best = full }
            }
            if best != nil { return best }
        }
        return best
    }

    /// Declarations in a sidecar header beside the library: `<dir>/lib<NAME>.space.h`.
    private static func findSidecar(library: String, path: String, searchPaths: [String]) -> String? {
        var candidates: [String] = []
        if let slash = path.lastIndex(of: "/") {
            let dir = String(path[..<slash])
            var file = String(path[path.index(after: slash)...])
            if let so = file.firstRange(of: ".so") { file = String(file[..<so.lowerBound]) }
            candidates.append(dir + "/" + file + ".space.h")
        }
        let base = baseName(library)
        for dir in searchPaths { candidates.append(dir + "/lib" + base + ".space.h") }
        for c in candidates {
            if let text = readSmallFile(c) { return text }
        }
        return nil
    }

    /// `calc` for `calc`, `libcalc.so`, `/x/libcalc.so.1`.
    static func baseName(_ spec: String) -> String {
        var s = Substring(spec)
        if let slash = s.lastIndex(of: "/") { s = s[s.index(after: slash)...] }
        if let so = s.firstRange(of: ".so") { s = s[..<so.lowerBound] }
        if s.hasPrefix("lib") && s.count > 3 { s = s.dropFirst(3) }
        return String(s)
    }

    private static func isValidPackageName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 128 && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
        }
    }
}

/// The contents of a regular file up to 1 MiB, or nil.
func readSmallFile(_ path: String) -> String? {
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count <= 1 << 20 {
        let n = read(fd, &chunk, chunk.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
