/// The sandbox layers a host applied to itself before it read its first request, as reported in
/// its hello (docs/sandbox.md). Each bit is one wall; a layer the kernel refused is simply absent.
public struct SandboxLayers: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    /// Creates a set from its bits.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The host leads a session of its own: no controlling terminal, no signals to the parent's group.
    public static let session = SandboxLayers(rawValue: 1 << 0)
    /// Every file descriptor is closed but stdin/stdout (`/dev/null`), stderr and the channel.
    public static let closeFDs = SandboxLayers(rawValue: 1 << 1)
    /// The environment holds only the variables the configuration lets through.
    public static let environment = SandboxLayers(rawValue: 1 << 2)
    /// `PR_SET_NO_NEW_PRIVS`: no exec can ever gain privileges.
    public static let noNewPrivs = SandboxLayers(rawValue: 1 << 3)
    /// Resource limits: address space, CPU, open files, file size, and no core dumps.
    public static let rlimits = SandboxLayers(rawValue: 1 << 4)
    /// A user namespace: the host's privileges, if any, are over nothing outside it.
    public static let userNamespace = SandboxLayers(rawValue: 1 << 5)
    /// A mount namespace: a private copy of the mount table.
    public static let mountNamespace = SandboxLayers(rawValue: 1 << 6)
    /// A pid namespace: the host is pid 1 and sees no other process.
    public static let pidNamespace = SandboxLayers(rawValue: 1 << 7)
    /// A network namespace: no interface but a loopback that is down.
    public static let networkNamespace = SandboxLayers(rawValue: 1 << 8)
    /// Landlock: the filesystem is limited to the allowed paths.
    public static let landlock = SandboxLayers(rawValue: 1 << 9)
    /// A seccomp-bpf filter: the system calls of the profile are denied.
    public static let seccomp = SandboxLayers(rawValue: 1 << 10)
    /// Every capability is dropped (what root could do beyond its files).
    public static let capabilities = SandboxLayers(rawValue: 1 << 11)

    /// Each layer with its name, in bit order (the names `space status`, `sandbox.require` and the
    /// hello's documentation use).
    public static let named: [(name: String, layer: SandboxLayers)] = [
        ("session", .session), ("closeFDs", .closeFDs), ("environment", .environment),
        ("noNewPrivs", .noNewPrivs), ("rlimits", .rlimits), ("userNamespace", .userNamespace),
        ("mountNamespace", .mountNamespace), ("pidNamespace", .pidNamespace),
        ("networkNamespace", .networkNamespace), ("landlock", .landlock), ("seccomp", .seccomp),
        ("capabilities", .capabilities),
    ]

    /// The names of the layers in this set, in bit order (unknown bits are left out).
    public var names: [String] { Self.named.filter { contains($0.layer) }.map(\.name) }

    /// The layer called `name`, if there is one.
    public init?(name: String) {
        guard let found = Self.named.first(where: { $0.name == name }) else { return nil }
        self = found.layer
    }
}
