import Crypto
import Foundation
import RPCWire

/// Encryption at rest for personal data (docs/DOMAIN.md ("Domain rules")): AES-256-GCM
/// (swift-crypto) with a key from a file. Each sealed value is bound to a context (e.g. the row's id) as
/// authenticated data, so a ciphertext copied into another row does not open.
public struct DataCipher: Sendable {
    private let key: SymmetricKey

    public init(key: SymmetricKey) { self.key = key }

    /// Nonce ‖ ciphertext ‖ tag.
    public func seal(_ plaintext: [UInt8], context: String) throws -> Data {
        guard let combined = try AES.GCM.seal(plaintext, using: key, authenticating: Data(context.utf8)).combined else {
            throw RPCError.internal("internal error")
        }
        return combined
    }

    /// Opens what ``seal(_:context:)`` produced with the same key and context; throws when it
    /// was tampered with, moved, or sealed with another key.
    public func open(_ sealed: Data, context: String) throws -> [UInt8] {
        [UInt8](try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key, authenticating: Data(context.utf8)))
    }

    /// A keyed digest (HMAC-SHA256 under a key derived from the data key) of a value that must
    /// be compared but never read back, e.g. the phone number a contact attempt dialled.
    public func digest(_ value: String, purpose: String) -> String {
        let derived = HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Data("doorstep-digest:\(purpose)".utf8), outputByteCount: 32)
        return Data(HMAC<SHA256>.authenticationCode(for: Data(value.utf8), using: derived)).base64EncodedString()
    }

    /// Reads a key file: 32 random bytes, base64 on one line. With `create`, writes a new one
    /// (mode 0600) when the file does not exist.
    public static func loadKey(path: String, create: Bool) throws(KeyFileProblem) -> (key: SymmetricKey, created: Bool) {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            guard create else { throw KeyFileProblem(path: path, problem: "does not exist") }
            let key = SymmetricKey(size: .bits256)
            let text = key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
            guard manager.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw KeyFileProblem(path: path, problem: "cannot be written")
            }
            return (key, true)
        }
        guard let contents = manager.contents(atPath: path) else {
            throw KeyFileProblem(path: path, problem: "is not readable")
        }
        let text = String(decoding: contents, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Data(base64Encoded: text), bytes.count == 32 else {
            throw KeyFileProblem(path: path, problem: "does not hold a base64 32-byte key")
        }
        return (SymmetricKey(data: bytes), false)
    }
}

/// A key file that cannot be used, in one line.
public struct KeyFileProblem: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let problem: String
    public var description: String { "data key file \(path) \(problem)" }
}
