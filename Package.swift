// swift-tools-version: 6.1
//
// space: a sandboxed plugin host. One module per concern; see docs/architecture.md.
import PackageDescription

/// `-L` a directory whose `libstdc++.so` is a linker script naming `libstdc++.a`: what links with it
/// takes the C++ runtime statically instead of loading libstdc++.so.6 (Sources/space-host/link says why).
let staticLibstdcxx = ["-L", Context.packageDirectory + "/Sources/space-host/link"]

/// C example plugins must not link the Swift runtime: a C-only space stays small. SwiftPM links every
/// dynamic product through swiftc, which adds `swiftrt.o` (a constructor that calls into libswiftCore),
/// `-lswiftCore` and `-lstdc++`. `-nostartfiles` drops the first; `-static-stdlib` and
/// `staticLibstdcxx` turn the others into static archives from which a C plugin pulls nothing.
/// A test checks the result with readelf.
let plainC: [LinkerSetting] = [.unsafeFlags(["-nostartfiles", "-static-stdlib"] + staticLibstdcxx), .linkedLibrary("m")]

let package = Package(
    name: "space",
    products: [
        .library(name: "Space", targets: ["Space"]),
        .executable(name: "space-host", targets: ["space-host"]),
        .executable(name: "space", targets: ["space"]),
        .executable(name: "space-bench", targets: ["space-bench"]),
        // Example plugins: each a shared library the host dlopens.
        .library(name: "calc", type: .dynamic, targets: ["calc"]),
        .library(name: "text", type: .dynamic, targets: ["text"]),
        .library(name: "greeter", type: .dynamic, targets: ["greeter"]),
        .library(name: "events", type: .dynamic, targets: ["events"]),
        .library(name: "faults", type: .dynamic, targets: ["faults"]),
        .library(name: "sort", type: .dynamic, targets: ["sort"]),
        .library(name: "escape", type: .dynamic, targets: ["escape"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // libffi, found through pkg-config (Debian: libffi-dev).
        .systemLibrary(
            name: "CFFI",
            pkgConfig: "libffi",
            providers: [.apt(["libffi-dev"])]
        ),
        // C accessors for what Swift 6 cannot touch directly (see CSpace.h).
        .target(name: "CSpace", dependencies: ["CFFI"]),
        // Thin OS shims shared by the client and the host (see CSpaceSystem.h).
        .target(name: "CSpaceSystem"),
        // The host's sandbox syscalls: Landlock, seccomp loading, capabilities, rlimits (see
        // CSpaceSandbox.h). No libseccomp: the host only loads a program the client compiled.
        .target(name: "CSpaceSandbox"),
        // The client's seccomp compiler over libseccomp (Debian: libseccomp-dev): policy in, BPF out,
        // once per configuration (see CSpaceSeccomp.h).
        .target(name: "CSpaceSeccomp", linkerSettings: [.linkedLibrary("seccomp")]),

        .target(name: "SpaceWire"),
        .target(name: "SpaceFFI", dependencies: ["CSpace", "SpaceWire"]),
        // Applying the sandbox in the child, layer by layer, and saying which layers hold.
        .target(name: "SpaceSandbox", dependencies: ["SpaceWire", "CSpaceSandbox"]),
        .executableTarget(
            name: "space-host",
            dependencies: ["SpaceWire", "SpaceFFI", "CSpaceSystem", "SpaceSandbox", "SpacePlugin"],
            // Start time and memory are product features: the host links the Swift runtime
            // statically (FLOOR.md: 0.9 ms and 3.9 MB instead of 1.8 ms and 6.9 MB), and the C++
            // runtime under it too (`staticLibstdcxx`: ~0.5-1 ms less per start). Their symbols stay
            // private (swiftc links them with --exclude-libs ALL), so a plugin written in Swift
            // loads its own libswiftCore.so and a C plugin pays nothing for either. The host's own
            // symbols are exported for plugins: `space_host_callback_release` (space_plugin.h).
            // It is not position-independent: the static runtime's ~19,000
            // relative relocations (each a copy-on-write page fault at every start) become ~900,
            // which takes ~0.5 ms off every spawn and respawn. (ASLR of the host's own image buys
            // nothing against a plugin, which runs inside it.)
            exclude: ["link"],
            linkerSettings: [.unsafeFlags(["-static-stdlib"] + staticLibstdcxx + ["-Xlinker", "--export-dynamic", "-Xclang-linker", "-no-pie"])]
        ),
        .target(name: "Space", dependencies: ["SpaceWire", "SpaceSandbox", "CSpaceSystem", "CSpaceSeccomp"]),
        // The daemon behind the CLI: named spaces served over an owner-only unix socket.
        .target(name: "SpaceServer", dependencies: ["Space", "SpaceWire", "CSpaceSystem"]),
        // The CLI's argument language (tokens typed by declarations) and its output; no I/O.
        .target(name: "SpaceCLI", dependencies: ["SpaceWire"]),
        .executableTarget(
            name: "space",
            dependencies: ["Space", "SpaceServer", "SpaceCLI", "CSpaceSystem",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            // Every CLI command is a process start: a static runtime starts faster (FLOOR.md).
            // ArgumentParser pulls in FoundationEssentials, whose static archive needs this one too.
            linkerSettings: [.unsafeFlags(["-static-stdlib"]), .linkedLibrary("_FoundationCollections"), .linkedLibrary("_FoundationCShims")]
        ),
        .executableTarget(name: "space-bench", dependencies: ["Space", "CSpaceSystem"]),

        // Plugin SDK (header only) and example plugins.
        .target(name: "SpacePlugin", path: "Plugins/SpacePlugin"),
        .target(name: "calc", dependencies: ["SpacePlugin"], path: "Plugins/calc", publicHeadersPath: ".", linkerSettings: plainC),
        .target(name: "text", dependencies: ["SpacePlugin"], path: "Plugins/text", publicHeadersPath: ".", linkerSettings: plainC),
        .target(name: "events", dependencies: ["SpacePlugin"], path: "Plugins/events", publicHeadersPath: ".", linkerSettings: plainC),
        .target(name: "faults", dependencies: ["SpacePlugin"], path: "Plugins/faults", publicHeadersPath: ".", linkerSettings: plainC),
        .target(name: "sort", dependencies: ["SpacePlugin"], path: "Plugins/sort", publicHeadersPath: ".", linkerSettings: plainC),
        .target(name: "escape", dependencies: ["SpacePlugin"], path: "Plugins/escape", publicHeadersPath: ".", linkerSettings: plainC),
        .target(name: "greeter", dependencies: ["SpacePlugin"], path: "Plugins/greeter"),

        .testTarget(name: "SpaceWireTests", dependencies: ["SpaceWire"]),
        .testTarget(name: "SpaceFFITests", dependencies: ["SpaceFFI"]),
        .testTarget(
            name: "SpaceTests",
            dependencies: ["Space"]
        ),
        .testTarget(name: "SpaceCLITests", dependencies: ["SpaceCLI"]),
        .testTarget(name: "SpaceServerTests", dependencies: ["Space", "SpaceServer"]),
    ],
    swiftLanguageModes: [.v6]
)
