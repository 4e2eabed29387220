import Crypto
import Foundation

/// How a webhook request is signed (docs/EVENTS.md ("Webhooks") has the receiver's side):
/// `webhook-signature: v1=<hex>`, the lower-case hex of HMAC-SHA256 keyed with the
/// subscription's secret (its UTF-8 bytes) over `<webhook-timestamp>.<body>` — the
/// timestamp header's decimal text, a full stop, the exact body bytes.
public enum WebhookSignature {
    /// The scheme's version tag; a later scheme gets another, and a header may then carry
    /// both (space-separated) while receivers move over.
    public static let version = "v1"

    /// The `webhook-signature` value of `body` sent at `timestamp` (Unix seconds).
    public static func header(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(timestamp).".utf8)
        message += body
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return "\(version)=" + code.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 0x10 ? "0" + hex : hex
        }.joined()
    }

    /// A new secret: "whsec_" and 32 random bytes in base64.
    public static func newSecret() -> String {
        let key = SymmetricKey(size: .bits256)
        return "whsec_" + key.withUnsafeBytes { Data($0).base64EncodedString() }
    }
}
