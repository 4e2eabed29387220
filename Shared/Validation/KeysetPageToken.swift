import Foundation

/// The opaque `page_token` of a keyset-paginated list: base64 of `<tag>|<ms>|<id>`, the sort
/// key (a time in milliseconds) and the id of the last row returned. Each list names its own
/// tag, so a token of one list is refused by another; clients pass `next_page_token` back
/// unchanged.
public struct KeysetPageToken: Sendable, Hashable {
    /// The list's tag, e.g. `v1`.
    public let tag: String

    public init(tag: String) { self.tag = tag }

    /// The token of the page after the row (`ms`, `id`).
    public func encode(ms: Int64, id: String) -> String {
        Data("\(tag)|\(ms)|\(id)".utf8).base64EncodedString()
    }

    /// The (ms, id) of the row a token continues after; nil for the empty token (the first
    /// page). A token that is not one of this list's is invalid on `page_token`
    /// (INVALID_ARGUMENT at the service edge).
    public func decode(_ token: String) throws(DomainError) -> (Int64, String)? {
        guard !token.isEmpty else { return nil }
        guard token.count <= 200, let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8) else {
            throw .invalidArgument("page_token", "malformed; pass next_page_token unchanged")
        }
        let parts = text.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == tag, let ms = Int64(parts[1]), !parts[2].isEmpty else {
            throw .invalidArgument("page_token", "malformed; pass next_page_token unchanged")
        }
        return (ms, String(parts[2]))
    }

    /// For a list numbered by sequence whose tokens are bound to its filter (`binding`, e.g. the
    /// id it is filtered by, or "*"): the sequence the page continues after, 0 for the first
    /// page; a token of another filter is invalid on `page_token`.
    public func sequence(after token: String, binding: String) throws(DomainError) -> Int64 {
        guard let (sequence, bound) = try decode(token) else { return 0 }
        guard bound == binding else { throw .invalidArgument("page_token", "not a token of this query") }
        return sequence
    }

    /// A page of such a list from `rows` read with one row more than `pageSize`: the rows of the
    /// page, and the token of the next page ("" after the last).
    public func page<Row>(_ rows: [Row], pageSize: Int, binding: String, sequence: (Row) -> Int64) -> (rows: [Row], next: String) {
        let page = Array(rows.prefix(pageSize))
        guard rows.count > pageSize, let last = page.last else { return (page, "") }
        return (page, encode(ms: sequence(last), id: binding))
    }
}
