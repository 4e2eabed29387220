#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// Turns a target's host into every address it names, the way stock gRPC's `dns` resolver
/// does, so a client reaches every replica behind one name (`accounts:50051`).
public protocol AddressResolver: Sendable {
    /// Every address of `host` for TCP on `port`, in the order the system gives them
    /// (duplicates removed). Throws ``AddressResolutionError`` when the name has none.
    func resolve(host: String, port: Int) async throws -> [SocketAddress]
}

/// Why a host could not be resolved, in one line.
public struct AddressResolutionError: Error, Sendable, CustomStringConvertible {
    public let host: String
    public let reason: String

    public init(host: String, reason: String) {
        self.host = host
        self.reason = reason
    }

    public var description: String { "cannot resolve \(host): \(reason)" }
}

/// The system's resolver (`getaddrinfo`: /etc/hosts, DNS, IP literals), run on NIO's thread
/// pool since it blocks.
public struct SystemAddressResolver: AddressResolver {
    public init() {}

    public func resolve(host: String, port: Int) async throws -> [SocketAddress] {
        try await NIOThreadPool.singleton.runIfActive { try Self.lookup(host: host, port: port) }
    }

    /// One `getaddrinfo` call. Ownership: the list `getaddrinfo` allocates is ours until
    /// `freeaddrinfo`, which the `defer` calls on every path; each address is copied into a
    /// `SocketAddress` (a value) before the list is freed, and no pointer into it escapes.
    static func lookup(host: String, port: Int) throws -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        defer { if let list { freeaddrinfo(list) } }
        guard status == 0 else {
            throw AddressResolutionError(host: host, reason: String(cString: gai_strerror(status)))
        }
        var addresses: [SocketAddress] = []
        var node = list
        while let entry = node?.pointee {
            if let address = entry.ai_addr {
                switch entry.ai_family {
                case AF_INET:
                    let ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                    addresses.append(SocketAddress(ipv4, host: host))
                case AF_INET6:
                    let ipv6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                    addresses.append(SocketAddress(ipv6, host: host))
                default:
                    break
                }
            }
            node = entry.ai_next
        }
        var seen = Set<SocketAddress>()
        addresses = addresses.filter { seen.insert($0).inserted }
        guard !addresses.isEmpty else { throw AddressResolutionError(host: host, reason: "no IPv4 or IPv6 address") }
        return addresses
    }
}
