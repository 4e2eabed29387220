import RPCWire

extension PublishedDescriptors {
    /// The descriptor set itself (decoded once, when first used).
    public static let bytes: [UInt8] = {
        // Scripts/generate-descriptors.sh writes 100 characters a line.
        guard let decoded = Base64.decode(String(decoding: base64.utf8.filter { $0 != UInt8(ascii: "\n") }, as: UTF8.self)) else {
            preconditionFailure("the compiled-in descriptor set is not valid base64 (run Scripts/generate-descriptors.sh)")
        }
        return decoded
    }()
}
