import Foundation
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, as the resolver returned it or a URL spelt it.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6([UInt8])

    /// Parses a literal ("192.0.2.1", "2001:db8::1"); nil when it is not one.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
    }

    public var description: String {
        switch self {
        case .v4(let value):
            return [24, 16, 8, 0].map { String((value >> UInt32($0)) & 0xFF) }.joined(separator: ".")
        case .v6(let bytes):
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Why a webhook may not be sent to this address by default; nil for a public address.
    /// IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are
    /// judged by the IPv4 address they carry.
    public var nonPublicKind: NonPublicKind? {
        switch self {
        case .v4(let value):
            return Self.kind(v4: value)
        case .v6(let b):
            let prefix96 = b[0..<12]
            let embedded = UInt32(b[12]) << 24 | UInt32(b[13]) << 16 | UInt32(b[14]) << 8 | UInt32(b[15])
            if b.allSatisfy({ $0 == 0 }) { return .unspecified }
            if prefix96.allSatisfy({ $0 == 0 }) { return embedded == 1 ? .loopback : .reserved }  // ::1; ::a.b.c.d (deprecated)
            if prefix96.elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) { return Self.kind(v4: embedded) }
            if prefix96.elementsEqual([0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0]) { return Self.kind(v4: embedded) }
            if b[0] == 0x20, b[1] == 0x02 {
                return Self.kind(v4: UInt32(b[2]) << 24 | UInt32(b[3]) << 16 | UInt32(b[4]) << 8 | UInt32(b[5]))
            }
            if b[0] == 0xFF { return .multicast }                                // ff00::/8
            if b[0] == 0xFE, b[1] & 0xC0 == 0x80 { return .linkLocal }           // fe80::/10
            if b[0] == 0xFE, b[1] & 0xC0 == 0xC0 { return .private }             // fec0::/10 (site-local, deprecated)
            if b[0] & 0xFE == 0xFC { return .private }                           // fc00::/7 (unique local)
            if b[0] == 0x20, b[1] == 0x01, b[2] == 0x0D, b[3] == 0xB8 { return .reserved }  // 2001:db8::/32 (documentation)
            if b[0] == 0x01, b[1...7].allSatisfy({ $0 == 0 }) { return .reserved }          // 100::/64 (discard)
            return nil
        }
    }

    /// IANA special-purpose IPv4 ranges a webhook must not reach (RFC 6890).
    private static func kind(v4 value: UInt32) -> NonPublicKind? {
        func within(_ network: UInt32, _ bits: UInt32) -> Bool { value >> (32 - bits) == network >> (32 - bits) }
        if within(0x0000_0000, 8) { return value == 0 ? .unspecified : .reserved }  // 0.0.0.0/8
        if within(0x7F00_0000, 8) { return .loopback }                              // 127.0.0.0/8
        if within(0x0A00_0000, 8) || within(0xAC10_0000, 12) || within(0xC0A8_0000, 16) { return .private }  // RFC 1918
        if within(0x6440_0000, 10) { return .shared }                               // 100.64.0.0/10 (carrier-grade NAT)
        if within(0xA9FE_0000, 16) { return .linkLocal }                            // 169.254.0.0/16 (cloud metadata lives here)
        if within(0xE000_0000, 4) { return .multicast }                             // 224.0.0.0/4
        if within(0xF000_0000, 4) { return .reserved }                              // 240.0.0.0/4 and 255.255.255.255
        if within(0xC000_0000, 24) || within(0xC000_0200, 24) || within(0xC633_6400, 24) || within(0xCB00_7100, 24)
            || within(0xC612_0000, 15) {
            return .reserved                                                        // protocol assignments, documentation, benchmarking
        }
        return nil
    }

    /// The kinds of address a webhook is refused by default.
    public enum NonPublicKind: String, Sendable {
        case loopback, `private`, linkLocal = "link-local", shared = "shared (carrier-grade NAT)", unspecified, multicast
        case reserved = "reserved or documentation"
    }
}

/// Where a checked webhook URL goes: its host and the address a delivery connects to.
public struct WebhookTarget: Sendable {
    /// The URL as given.
    public let url: String
    /// The URL's host (without brackets).
    public let host: String
    /// Every address the host resolved to (one for an address literal), all allowed.
    public let addresses: [IPAddress]

    /// The address to connect to instead of resolving again (so the host cannot resolve to
    /// something else between the check and the connection); nil when the host is a literal.
    public var pinnedAddress: String? {
        IPAddress(host) == nil ? addresses.first.map(\.description) : nil
    }
}

/// Why a webhook URL is refused, in one line naming what to change.
public struct WebhookURLRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Which receivers a service may POST to (no server-side request forgery through webhooks):
/// https:// URLs with a host and no user info, whose host resolves only to public addresses
/// (``IPAddress/nonPublicKind``). The operator can allow http:// and non-public addresses
/// (tests, development). Checked when a subscription is created and again before every
/// delivery, and the delivery connects to the address that was checked.
public struct WebhookAddressPolicy: Sendable {
    public var allowHTTP: Bool
    public var allowPrivateAddresses: Bool

    public init(allowHTTP: Bool = false, allowPrivateAddresses: Bool = false) {
        self.allowHTTP = allowHTTP
        self.allowPrivateAddresses = allowPrivateAddresses
    }

    /// The URL's form alone: scheme, host, no user info or fragment, at most 2000 characters.
    public func checkForm(_ url: String) throws(WebhookURLRefusal) -> (host: String, port: Int) {
        guard !url.isEmpty else { throw WebhookURLRefusal(message: "required") }
        guard url.utf8.count <= 2000 else { throw WebhookURLRefusal(message: "must be at most 2000 characters") }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              var host = components.host, !host.isEmpty
        else { throw WebhookURLRefusal(message: "'\(url.prefix(80))' is not an absolute URL with a host") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        switch scheme {
        case "https": break
        case "http" where allowHTTP: break
        case "http": throw WebhookURLRefusal(message: "must be https:// (this service does not allow http:// receivers)")
        default: throw WebhookURLRefusal(message: "must be https://, not \(scheme)://")
        }
        guard components.user == nil, components.password == nil else {
            throw WebhookURLRefusal(message: "must not carry user information (authenticate the sender by the signature)")
        }
        guard components.fragment == nil else { throw WebhookURLRefusal(message: "must not have a #fragment") }
        return (host, components.port ?? (scheme == "https" ? 443 : 80))
    }

    /// Checks the URL's form, resolves its host (getaddrinfo, on NIO's thread pool) and
    /// checks every address; returns where to connect.
    public func check(_ url: String) async throws(WebhookURLRefusal) -> WebhookTarget {
        let (host, _) = try checkForm(url)
        let addresses: [IPAddress]
        if let literal = IPAddress(host) {
            addresses = [literal]
        } else {
            addresses = await Self.resolve(host)
            guard !addresses.isEmpty else { throw WebhookURLRefusal(message: "host \(host) does not resolve") }
        }
        if !allowPrivateAddresses {
            for address in addresses {
                if let kind = address.nonPublicKind {
                    let named = IPAddress(host) == nil ? "host \(host) resolves to \(address), " : "\(address) is "
                    throw WebhookURLRefusal(message: "\(named)a \(kind.rawValue) address; webhooks go to public addresses only")
                }
            }
        }
        return WebhookTarget(url: url, host: host, addresses: addresses)
    }

    /// The host's IPv4 and IPv6 addresses (empty when it does not resolve).
    static func resolve(_ host: String) async -> [IPAddress] {
        let lookup: @Sendable () -> [IPAddress] = {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            #else
            hints.ai_socktype = SOCK_STREAM
            #endif
            var list: UnsafeMutablePointer<addrinfo>?
            // `list` is owned by getaddrinfo until freeaddrinfo below.
            guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
            defer { freeaddrinfo(first) }
            var addresses: [IPAddress] = []
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let current = entry {
                if let sockaddr = current.pointee.ai_addr {
                    switch current.pointee.ai_family {
                    case AF_INET:
                        let value = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                        addresses.append(.v4(UInt32(bigEndian: value)))
                    case AF_INET6:
                        var address = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                        addresses.append(.v6(withUnsafeBytes(of: &address) { Array($0) }))
                    default: break
                    }
                }
                entry = current.pointee.ai_next
            }
            var seen = Set<IPAddress>()
            return addresses.filter { seen.insert($0).inserted }
        }
        return (try? await NIOThreadPool.singleton.runIfActive(lookup)) ?? []
    }
}
