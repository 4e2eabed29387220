import Foundation
import NIOSSL
import X509

/// A TLS file that cannot be used, in one line naming the file (printed as `Error: …` at
/// start, logged at reload).
public struct TLSFileError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "TLS file \(path) \(problem)" }
}

/// A certificate chain and its private key, read from PEM files and checked before use:
/// readable, parseable, the leaf not expired and not yet valid, the key the leaf's key.
/// swift-certificates does the checks; swift-nio-ssl gets the same bytes.
public struct CertifiedKey: Sendable {
    /// Leaf first, then intermediates, as in the file.
    public let chain: [NIOSSLCertificate]
    public let privateKey: NIOSSLPrivateKey
    /// When the leaf expires.
    public let notValidAfter: Date

    /// Loads and checks `certificateFile` and `keyFile` at `now`.
    public init(certificateFile: String, keyFile: String, now: Date = Date()) throws(TLSFileError) {
        let certificates = try PEMFiles.certificates(certificateFile)
        let leaf = certificates[0].parsed
        guard leaf.notValidAfter > now else {
            throw TLSFileError(path: certificateFile, problem: "holds a certificate that expired at \(PEMFiles.format(leaf.notValidAfter))")
        }
        guard leaf.notValidBefore <= now.addingTimeInterval(300) else {
            throw TLSFileError(path: certificateFile, problem: "holds a certificate not valid before \(PEMFiles.format(leaf.notValidBefore))")
        }
        let keyText = try PEMFiles.text(keyFile)
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: keyText)
        } catch {
            throw TLSFileError(path: keyFile, problem: "is not a PEM private key (PKCS#8, RSA or EC)")
        }
        guard key.publicKey == leaf.publicKey else {
            throw TLSFileError(path: keyFile, problem: "does not match the certificate in \(certificateFile)")
        }
        do {
            privateKey = try NIOSSLPrivateKey(bytes: Array(keyText.utf8), format: .pem)
        } catch {
            throw TLSFileError(path: keyFile, problem: "cannot be loaded by the TLS library: \(error)")
        }
        chain = certificates.map(\.native)
        notValidAfter = leaf.notValidAfter
    }
}

/// Reading PEM files into both libraries' forms, with errors naming the file.
public enum PEMFiles {
    /// The file's text, or a one-line reason.
    static func text(_ path: String) throws(TLSFileError) -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw TLSFileError(path: path, problem: "does not exist") }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TLSFileError(path: path, problem: "cannot be read (\(error.localizedDescription))")
        }
    }

    /// Every certificate of a PEM file (at least one), parsed by swift-certificates and
    /// loaded by swift-nio-ssl.
    static func certificates(_ path: String) throws(TLSFileError) -> [(parsed: Certificate, native: NIOSSLCertificate)] {
        let text = try text(path)
        let native: [NIOSSLCertificate]
        do {
            native = try NIOSSLCertificate.fromPEMBytes(Array(text.utf8))
        } catch {
            throw TLSFileError(path: path, problem: "is not a PEM certificate file")
        }
        guard !native.isEmpty else { throw TLSFileError(path: path, problem: "holds no PEM certificate") }
        var result: [(parsed: Certificate, native: NIOSSLCertificate)] = []
        for certificate in native {
            do {
                result.append((try Certificate(derEncoded: try certificate.toDERBytes()), certificate))
            } catch {
                throw TLSFileError(path: path, problem: "holds a certificate that cannot be parsed (\(error))")
            }
        }
        return result
    }

    /// Trust roots from a PEM file of CA certificates (expired ones refused: they would
    /// silently verify nothing).
    public static func trustRoots(_ path: String, now: Date = Date()) throws(TLSFileError) -> [NIOSSLCertificate] {
        let certificates = try certificates(path)
        if let expired = certificates.first(where: { $0.parsed.notValidAfter <= now }) {
            throw TLSFileError(path: path, problem: "holds a CA certificate that expired at \(format(expired.parsed.notValidAfter))")
        }
        return certificates.map(\.native)
    }

    static func format(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}
