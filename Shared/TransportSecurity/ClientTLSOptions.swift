import ArgumentParser
import Foundation

/// The TLS flags of every tool that calls a server (`doorstep call` and `health`,
/// `demo-seed`, `workflow-bench`): the same names as the services' peer flags. Any of them
/// turns TLS on; `--tls` alone trusts the system's CA store.
public struct ClientTLSOptions: ParsableArguments {
    @Flag(help: "Use TLS (implied by any --tls-… option). Env DOORSTEP_TLS=1.") public var tls = false
    @Option(help: "CA certificates (PEM) the server's certificate must come from. Env DOORSTEP_TLS_CA_FILE. Default: the system's CA store.")
    public var tlsCaFile: String?
    @Option(help: "Client certificate (PEM) for a mutual-TLS server. Env DOORSTEP_TLS_CLIENT_CERT_FILE.") public var tlsClientCertFile: String?
    @Option(help: "Private key (PEM) of --tls-client-cert-file. Env DOORSTEP_TLS_CLIENT_KEY_FILE.") public var tlsClientKeyFile: String?
    @Option(help: "The name the server's certificate must carry (and SNI). Default: the host dialled.") public var tlsServerName: String?

    public init() {}

    private var environment: [String: String] { ProcessInfo.processInfo.environment }

    private func value(_ flag: String?, _ variable: String) -> String? {
        if let flag { return flag }
        if let value = environment[variable], !value.isEmpty { return value }
        return nil
    }

    public func validate() throws {
        let certificate = value(tlsClientCertFile, "DOORSTEP_TLS_CLIENT_CERT_FILE")
        let key = value(tlsClientKeyFile, "DOORSTEP_TLS_CLIENT_KEY_FILE")
        if (certificate == nil) != (key == nil) {
            throw ValidationError("--tls-client-cert-file and --tls-client-key-file go together")
        }
    }

    /// The client's TLS, or nil for plaintext. Bad files are a usage error naming the file.
    public func clientTLS() throws -> ClientTLS? {
        let ca = value(tlsCaFile, "DOORSTEP_TLS_CA_FILE")
        let certificate = value(tlsClientCertFile, "DOORSTEP_TLS_CLIENT_CERT_FILE")
        let key = value(tlsClientKeyFile, "DOORSTEP_TLS_CLIENT_KEY_FILE")
        let wanted = tls || environment["DOORSTEP_TLS"] == "1" || ca != nil || certificate != nil || tlsServerName != nil
        guard wanted else { return nil }
        do {
            return try ClientTLS(files: ClientTLS.Files(caFile: ca, certificateFile: certificate, keyFile: key, serverName: tlsServerName))
        } catch {
            throw ValidationError(error.description)
        }
    }
}

