import ArgumentParser
import Foundation
import TransportSecurity

/// `doorstep tls-dev DIR`: a throwaway CA and certificates for trying TLS and mutual TLS on
/// one machine or in docker compose (never for production).
struct TLSDev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls-dev",
        abstract: "Write a throwaway CA and TLS certificates for local use.",
        discussion: """
            Writes DIR/ca.pem and DIR/ca.key, and NAME.pem and NAME.key for each --name (default: accounts, \
            scheduling, visits, operator). Each certificate names NAME, localhost, 127.0.0.1 and ::1, and serves \
            as server and client certificate: a service uses its own as both; `operator` is for the doorstep \
            tool against a mutual-TLS listener. Keys are written mode 0600. ECDSA P-256, valid --days days.
            Example: doorstep tls-dev ./data/tls && accounts --tls-cert-file ./data/tls/accounts.pem \
            --tls-key-file ./data/tls/accounts.key --tls-client-ca-file ./data/tls/ca.pem --tls-ca-file ./data/tls/ca.pem
            """)

    @Argument(help: "Directory to write into (created if missing).") var directory: String
    @Option(name: .customLong("name"), parsing: .singleValue, help: "A certificate to issue (repeatable).") var names: [String] = []
    @Option(help: "Validity in days (1…825).") var days: Int = 30
    @Flag(help: "Replace existing files.") var force = false

    func validate() throws {
        guard (1...825).contains(days) else { throw ValidationError("--days must be 1...825") }
        for name in names where name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }) {
            throw ValidationError("--name '\(name)' is not a host name (letters, digits, '-', '.')")
        }
    }

    func run() async throws {
        let written: DevCertificates.Written
        do {
            written = try DevCertificates.write(directory: directory, names: names.isEmpty ? DevCertificates.defaultNames : names,
                                                validDays: days, overwrite: force)
        } catch let error as TLSFileError {
            throw ValidationError(error.description)
        }
        print("wrote \(written.caCertificate) and \(written.caKey) (development CA, valid \(days) days)")
        for (name, certificate, key) in written.issued { print("wrote \(certificate) and \(key) (\(name))") }
    }
}
