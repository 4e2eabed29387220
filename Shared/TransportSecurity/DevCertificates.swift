import Crypto
import Foundation
import SwiftASN1
import X509

/// A throwaway certificate authority and certificates for trying TLS and mutual TLS
/// locally (`doorstep tls-dev`): never for production, where certificates come from the
/// lender's PKI. ECDSA P-256 throughout.
public enum DevCertificates {
    /// What was written.
    public struct Written: Sendable {
        public let caCertificate: String
        public let caKey: String
        /// name → (certificate, key).
        public let issued: [(name: String, certificate: String, key: String)]
    }

    /// The names a dev setup issues by default: one certificate per service (each its server
    /// and its client certificate, named for the service so that a `service` token is only
    /// accepted with it) and one for a person at the CLI.
    public static let defaultNames = ["accounts", "scheduling", "visits", "operator"]

    /// Writes `ca.pem` and `ca.key`, and for each name `NAME.pem` and `NAME.key`, into
    /// `directory` (created if missing; keys mode 0600). Each certificate names NAME (common
    /// name and DNS name) and also `localhost`, 127.0.0.1 and ::1, and serves as server and
    /// client certificate. Refuses to overwrite an existing file unless `overwrite`.
    public static func write(directory: String, names: [String] = defaultNames, validDays: Int = 30,
                             overwrite: Bool = false, now: Date = Date()) throws -> Written {
        let manager = FileManager.default
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let paths = ["ca"] + names
        if !overwrite {
            for name in paths {
                for suffix in ["pem", "key"] where manager.fileExists(atPath: "\(directory)/\(name).\(suffix)") {
                    throw TLSFileError(path: "\(directory)/\(name).\(suffix)", problem: "already exists (use --force to replace the set)")
                }
            }
        }
        let notBefore = now.addingTimeInterval(-3600)
        let notAfter = now.addingTimeInterval(Double(validDays) * 86_400)

        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            CommonName("Doorstep development CA")
            OrganizationName("Doorstep (development only)")
        }
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(caKey.publicKey))
            },
            issuerPrivateKey: .init(caKey))
        let caCertificate = "\(directory)/ca.pem", caKeyFile = "\(directory)/ca.key"
        try write(try ca.serializeAsPEM().pemString, to: caCertificate, secret: false)
        try write(caKey.pemRepresentation, to: caKeyFile, secret: true)

        var issued: [(name: String, certificate: String, key: String)] = []
        for name in names {
            let key = P256.Signing.PrivateKey()
            let subject = try DistinguishedName {
                CommonName(name)
                OrganizationName("Doorstep (development only)")
            }
            var alternativeNames: [GeneralName] = [.dnsName(name)]
            if name != "localhost" { alternativeNames.append(.dnsName("localhost")) }
            alternativeNames.append(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])))
            alternativeNames.append(.ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])))
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
                notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.serverAuth, .clientAuth])
                    SubjectAlternativeNames(alternativeNames)
                    AuthorityKeyIdentifier(keyIdentifier: try ca.extensions.subjectKeyIdentifier?.keyIdentifier)
                },
                issuerPrivateKey: .init(caKey))
            let certificateFile = "\(directory)/\(name).pem", keyFile = "\(directory)/\(name).key"
            try write(try certificate.serializeAsPEM().pemString, to: certificateFile, secret: false)
            try write(key.pemRepresentation, to: keyFile, secret: true)
            issued.append((name, certificateFile, keyFile))
        }
        return Written(caCertificate: caCertificate, caKey: caKeyFile, issued: issued)
    }

    /// Writes through a temporary file and a rename, so a server reloading meanwhile never
    /// reads half a file.
    private static func write(_ text: String, to path: String, secret: Bool) throws {
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data((text.hasSuffix("\n") ? text : text + "\n").utf8),
                                             attributes: [.posixPermissions: secret ? 0o600 : 0o644]) else {
            throw TLSFileError(path: path, problem: "cannot be written")
        }
        guard rename(temporary, path) == 0 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw TLSFileError(path: path, problem: "cannot be written")
        }
    }
}
