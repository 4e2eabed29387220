import ArgumentParser
import Foundation
import Models
import RPC
import RPCWire

/// How `doorstep` ends when a call did not succeed: one `Error: …` line (and, for a refusal,
/// one indented line per violated rule or invalid field) on standard error, exit status 1.
/// Not an ArgumentParser `ValidationError`: that one prints the usage text, which is only
/// right when the arguments were wrong (exit 64).
enum Failure {
    /// Prints `lines` to standard error (the first prefixed `Error: `) and returns the exit
    /// code to throw.
    static func report(_ lines: [String]) -> ExitCode {
        var text = ""
        for (index, line) in lines.enumerated() { text += (index == 0 ? "Error: " : "") + line + "\n" }
        FileHandle.standardError.write(Data(text.utf8))
        return ExitCode.failure
    }

    /// What to print for a call that ended with `status`: a connection failure as a sentence
    /// about the connection (`cannot connect to HOST:PORT (connection refused) — is the
    /// service running?`), any other status as `CODE: message`, then the violations of a
    /// `doorstep.type.v1.Refusal` in its details. `targets` are the addresses the tool called
    /// (`HOST:PORT`): only a failure to reach one of them is a connection failure.
    static func lines(code: StatusCode, message: String, details: [UInt8]?, targets: [String], tls: Bool = false) -> [String] {
        if code == .unavailable, let connection = connectionProblem(message, targets: targets, tls: tls) { return [connection] }
        var lines = [message.isEmpty ? "\(code)" : "\(code): \(message)"]
        if let details, let refusal = RPCError.refusal(inDetails: details) {
            for violation in refusal.violations {
                lines.append("  \(violation.ruleId.isEmpty ? violation.field : violation.ruleId): \(violation.detail)")
            }
        }
        return lines
    }

    /// The messages `GRPCClient` gives a call that never reached a server (all UNAVAILABLE):
    /// `cannot connect to TARGET (ADDRESS): REASON`, `no reachable address among T1, T2`
    /// (every address in backoff after failing), `connection to TARGET closed at once` (or
    /// `closed`, `is closing`), `connection to TARGET closed: TLS handshake failed (…)`, as one sentence naming the target and the reason in words; nil for any other message
    /// (an UNAVAILABLE the server itself returned) and for a target the tool did not call.
    static func connectionProblem(_ message: String, targets: [String], tls: Bool = false) -> String? {
        let hint = " — is the service running?"
        // A plaintext client on a TLS port sees its connection closed, at once or after its
        // first bytes, depending on timing.
        let tlsHint = " — does it require TLS? (--tls-ca-file)"
        if message.hasPrefix("connection to "), let range = message.range(of: " closed: TLS handshake failed") {
            let target = firstWord(message[message.index(message.startIndex, offsetBy: "connection to ".count)..<range.lowerBound])
            guard targets.contains(target) else { return nil }
            return "cannot connect to \(target) (TLS handshake failed: \(tlsReasonInWords(String(message[range.upperBound...]))))"
        }
        if message.hasPrefix("no reachable address among ") {
            let named = message.dropFirst("no reachable address among ".count)
            guard named == targets.joined(separator: ", ") else { return nil }
            return "cannot connect to \(named) (no address answered)" + hint
        }
        // The server closed the connection before answering: at once, later, or before the
        // call could start on it (the wording depends on timing).
        for ending in [" closed at once", " closed", " is closing"] where message.hasPrefix("connection to ") && message.hasSuffix(ending) {
            let target = firstWord(message.dropFirst("connection to ".count).dropLast(ending.count))
            guard targets.contains(target) else { return nil }
            return "cannot connect to \(target) (the server closed the connection)" + (tls ? hint : tlsHint)
        }
        guard message.hasPrefix("cannot connect to ") else { return nil }
        let rest = message.dropFirst("cannot connect to ".count)
        let target = firstWord(rest)
        guard targets.contains(target) else { return nil }
        let reason = rest.firstRange(of: ": ").map { String(rest[$0.upperBound...]) } ?? ""
        let (words, serverMayBeDown) = reasonInWords(reason)
        return "cannot connect to \(target) (\(words))" + (serverMayBeDown ? hint : "")
    }

    /// The target (`HOST:PORT` or `[IPv6]:PORT`) at the start of `text`, before the
    /// resolved address (` (…)`) or the reason (`: …`).
    private static func firstWord(_ text: Substring) -> String {
        var end = text.endIndex
        for separator in [" (", ": "] {
            if let range = text.range(of: separator), range.lowerBound < end { end = range.lowerBound }
        }
        return String(text[..<end])
    }

    /// A TLS handshake failure (BoringSSL's reason, as swift-nio-ssl reports it) in words.
    static func tlsReasonInWords(_ reason: String) -> String {
        let known: [(String, String)] = [
            ("CERTIFICATE_REQUIRED", "the server requires a client certificate (--tls-client-cert-file, --tls-client-key-file)"),
            ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "the server requires a client certificate (--tls-client-cert-file, --tls-client-key-file)"),
            ("ALERT_UNKNOWN_CA", "the server does not trust this client certificate's CA"),
            ("CERTIFICATE_VERIFY_FAILED", "the server's certificate is not trusted (--tls-ca-file)"),
            ("is not issued to", "the server's certificate does not name the host dialled (--tls-server-name)"),
            ("failedToValidateHostname", "the server's certificate does not name the host dialled (--tls-server-name)"),
            ("WRONG_VERSION_NUMBER", "the server does not speak TLS on this port"),
            ("ALERT_CERTIFICATE_EXPIRED", "a certificate has expired"),
            ("did not negotiate HTTP/2", "the server did not negotiate HTTP/2 (ALPN h2)"),
        ]
        for (needle, words) in known where reason.contains(needle) { return words }
        return reason.trimmingCharacters(in: CharacterSet(charactersIn: " ()"))
    }

    /// A connection error from the socket layer (SwiftNIO's `IOError`, `NIOConnectionError`,
    /// `SocketAddressError`, connect timeouts) in a few words, and whether a server that is
    /// not running is a likely cause.
    static func reasonInWords(_ reason: String) -> (String, Bool) {
        let lower = reason.lowercased()
        let known: [(String, String, Bool)] = [
            ("connection refused", "connection refused", true),
            ("unknownhost", "unknown host", false),
            ("name or service not known", "unknown host", false),
            ("no address associated", "unknown host", false),
            ("temporary failure in name resolution", "cannot resolve the host name", false),
            ("connecttimeout", "timed out connecting", true),
            ("connect timeout", "timed out connecting", true),
            ("timed out", "timed out connecting", true),
            ("network is unreachable", "network unreachable", false),
            ("no route to host", "no route to host", false),
            ("connection reset", "connection reset", true),
            ("permission denied", "permission denied", false),
            ("address not available", "address not available", false),
        ]
        for (needle, words, hint) in known where lower.contains(needle) { return (words, hint) }
        return (reason.isEmpty ? "connection failed" : reason, true)
    }
}
