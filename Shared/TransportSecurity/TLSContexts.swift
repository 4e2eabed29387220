import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// The ALPN protocol every gRPC connection must negotiate.
public let grpcApplicationProtocol = "h2"

/// A listener's TLS: its certificate and key (and, for mutual TLS, the CA its clients'
/// certificates must come from), as swift-nio-ssl contexts that ``reload()`` replaces.
/// Each new connection takes the current context; established connections keep theirs, so
/// a reload drops none of them.
public final class ServerTLS: Sendable {
    public struct Files: Sendable, Hashable {
        public var certificateFile: String
        public var keyFile: String
        /// Set: clients must present a certificate issued by this CA (mutual TLS).
        public var clientCAFile: String?

        public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil) {
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.clientCAFile = clientCAFile
        }
    }

    private struct Loaded {
        /// For gRPC: ALPN h2, TLS 1.2+, client certificates required with a client CA.
        let grpc: NIOSSLContext
        /// For the metrics endpoint: the same certificate, HTTP/1.1, no client certificate
        /// (probes and scrapers that cannot present one still reach /healthz and /metrics;
        /// neither serves personal data).
        let http: NIOSSLContext
        let notValidAfter: Date
    }

    public let files: Files
    private let loaded: NIOLockedValueBox<Loaded>

    /// Loads and checks the files; throws a one-line reason naming the bad file.
    public init(files: Files) throws(TLSFileError) {
        self.files = files
        self.loaded = NIOLockedValueBox(try Self.load(files))
    }

    /// Reads the files again and uses them for new connections. A bad file throws and the
    /// previous certificate stays in use.
    @discardableResult
    public func reload() throws(TLSFileError) -> Date {
        let fresh = try Self.load(files)
        loaded.withLockedValue { $0 = fresh }
        return fresh.notValidAfter
    }

    /// The context for a new gRPC connection.
    public var grpcContext: NIOSSLContext { loaded.withLockedValue { $0.grpc } }
    /// The context for a new metrics (HTTP/1.1) connection.
    public var httpContext: NIOSSLContext { loaded.withLockedValue { $0.http } }
    /// When the certificate in use expires.
    public var notValidAfter: Date { loaded.withLockedValue { $0.notValidAfter } }
    /// True when clients must present a certificate (mutual TLS).
    public var requiresClientCertificate: Bool { files.clientCAFile != nil }
    /// The files a reload reads.
    public var watchedFiles: [String] { [files.certificateFile, files.keyFile] + (files.clientCAFile.map { [$0] } ?? []) }

    private static func load(_ files: Files) throws(TLSFileError) -> Loaded {
        let key = try CertifiedKey(certificateFile: files.certificateFile, keyFile: files.keyFile)
        let clientRoots = try files.clientCAFile.map { path throws(TLSFileError) in try PEMFiles.trustRoots(path) }
        func configuration(_ protocols: [String], clientRoots: [NIOSSLCertificate]?) -> TLSConfiguration {
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: key.chain.map { .certificate($0) }, privateKey: .privateKey(key.privateKey))
            configuration.minimumTLSVersion = .tlsv12
            configuration.applicationProtocols = protocols
            if let clientRoots {
                // Verify the client's chain; there is no name to check a client against.
                configuration.certificateVerification = .noHostnameVerification
                configuration.trustRoots = .certificates(clientRoots)
                configuration.sendCANameList = true
            }
            return configuration
        }
        do {
            return Loaded(grpc: try NIOSSLContext(configuration: configuration([grpcApplicationProtocol], clientRoots: clientRoots)),
                          http: try NIOSSLContext(configuration: configuration(["http/1.1"], clientRoots: nil)),
                          notValidAfter: key.notValidAfter)
        } catch {
            throw TLSFileError(path: files.certificateFile, problem: "cannot be used by the TLS library: \(error)")
        }
    }
}

/// A client's TLS: the roots it trusts (a CA file, or the system's), the certificate it
/// presents for mutual TLS, and the name it expects the server's certificate to carry.
/// ``reload()`` replaces the context for new connections.
public final class ClientTLS: Sendable {
    public struct Files: Sendable, Hashable {
        /// Trusted CA certificates; nil = the system's trust store.
        public var caFile: String?
        /// The certificate and key presented to servers that ask (mutual TLS).
        public var certificateFile: String?
        public var keyFile: String?
        /// The name the server's certificate must carry (also sent as SNI); nil = the
        /// host dialled (an IP address is then checked against the certificate's IP names).
        public var serverName: String?

        public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.serverName = serverName
        }
    }

    public let files: Files
    private let context: NIOLockedValueBox<NIOSSLContext>

    /// Loads and checks the files; throws a one-line reason naming the bad file.
    public init(files: Files) throws(TLSFileError) {
        self.files = files
        self.context = NIOLockedValueBox(try Self.load(files))
    }

    /// Reads the files again for new connections; a bad file throws, the previous context stays.
    public func reload() throws(TLSFileError) {
        let fresh = try Self.load(files)
        context.withLockedValue { $0 = fresh }
    }

    /// The files a reload reads.
    public var watchedFiles: [String] { [files.caFile, files.certificateFile, files.keyFile].compactMap { $0 } }

    /// The handlers for a connection to `host` (the dialled name or address), in pipeline
    /// order: TLS, then the check of the server's name.
    public func makeHandlers(host: String) throws -> [any ChannelHandler] {
        let name = files.serverName ?? host
        // SNI and name checks take a DNS name; for an IP address swift-nio-ssl checks the
        // certificate's IP addresses against the connected address instead.
        let isAddress = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        let tls = try NIOSSLClientHandler(context: context.withLockedValue { $0 }, serverHostname: isAddress ? nil : name)
        // swift-nio-ssl also accepts a certificate whose IP address matches the connected
        // address when the name does not match; a name we expect must be in the certificate.
        return isAddress ? [tls] : [tls, ServerNameCheck(expected: name)]
    }

    private static func load(_ files: Files) throws(TLSFileError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = [grpcApplicationProtocol]
        configuration.certificateVerification = .fullVerification
        if let caFile = files.caFile {
            configuration.trustRoots = .certificates(try PEMFiles.trustRoots(caFile))
        }
        switch (files.certificateFile, files.keyFile) {
        case (let certificateFile?, let keyFile?):
            let key = try CertifiedKey(certificateFile: certificateFile, keyFile: keyFile)
            configuration.certificateChain = key.chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(key.privateKey)
        case (let file?, nil), (nil, let file?):
            throw TLSFileError(path: file, problem: "needs its pair: a client certificate and its key are given together")
        case (nil, nil):
            break
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError(path: files.caFile ?? files.certificateFile ?? "(system trust store)",
                               problem: "cannot be used by the TLS library: \(error)")
        }
    }
}

/// Who a verified peer certificate names: its subject's common name and DNS names. A
/// service's certificate names the service (`doorstep tls-dev` issues them so).
public struct CertificateIdentity: Sendable, Hashable, CustomStringConvertible {
    public let commonName: String?
    public let dnsNames: [String]

    public init(commonName: String?, dnsNames: [String]) {
        self.commonName = commonName
        self.dnsNames = dnsNames
    }

    /// The identity in `certificate`; nil when it cannot be parsed.
    public init?(_ certificate: NIOSSLCertificate) {
        guard let bytes = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: bytes) else { return nil }
        var commonName: String?
        for rdn in parsed.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                commonName = String(describing: attribute.value)
            }
        }
        var dnsNames: [String] = []
        if let names = try? parsed.extensions.subjectAlternativeNames {
            for name in names {
                if case .dnsName(let dns) = name { dnsNames.append(dns) }
            }
        }
        self.init(commonName: commonName, dnsNames: dnsNames)
    }

    /// The identity in the first (leaf) certificate of a PEM file.
    public init(pemFile path: String) throws(TLSFileError) {
        guard let identity = CertificateIdentity(try PEMFiles.certificates(path)[0].native) else {
            throw TLSFileError(path: path, problem: "holds a certificate whose names cannot be read")
        }
        self = identity
    }

    /// True when the certificate was issued to `name` (its common name or a DNS name,
    /// compared without case).
    public func names(_ name: String) -> Bool {
        let wanted = name.lowercased()
        return commonName?.lowercased() == wanted || dnsNames.contains { $0.lowercased() == wanted }
    }

    public var description: String {
        ([commonName.map { "CN=\($0)" }].compactMap { $0 } + dnsNames.map { "DNS:\($0)" }).joined(separator: ",")
    }
}

/// The server's certificate does not carry the name the client expected.
public struct ServerNameMismatch: Error, Sendable, CustomStringConvertible {
    public let expected: String
    public let presented: String
    public var description: String { "the server's certificate (\(presented)) is not issued to \(expected)" }
}

/// After the handshake, checks that the server's certificate names the expected DNS name
/// (a DNS name of the certificate, `*.` matching one label); closes the connection with
/// ``ServerNameMismatch`` otherwise. Verification of the chain is swift-nio-ssl's.
final class ServerNameCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let expected: String

    init(expected: String) { self.expected = expected.lowercased() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            let certificate = (try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self))?.peerCertificate
            let identity = certificate.flatMap(CertificateIdentity.init)
            guard let identity, identity.dnsNames.contains(where: { Self.matches($0.lowercased(), expected) }) else {
                context.fireErrorCaught(ServerNameMismatch(expected: expected, presented: identity?.description ?? "unreadable"))
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    static func matches(_ pattern: String, _ name: String) -> Bool {
        if pattern == name { return true }
        guard pattern.hasPrefix("*."), let dot = name.firstIndex(of: ".") else { return false }
        return name[dot...] == pattern.dropFirst()
    }
}
