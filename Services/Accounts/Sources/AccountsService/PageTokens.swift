import Foundation

/// The opaque page tokens of the accounts service: base64 of `|`-separated fields, the first
/// a tag naming the kind of list, so a token of one list is refused by another.
enum PageTokenText {
    static func encode(_ fields: [String]) -> String {
        Data(fields.joined(separator: "|").utf8).base64EncodedString()
    }

    /// The fields after the tag, when `text` is a token of `count` fields (tag included)
    /// tagged `tag`; nil otherwise.
    static func decode(_ text: String, tag: String, count: Int) -> [String]? {
        guard let data = Data(base64Encoded: text) else { return nil }
        let fields = String(decoding: data, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        guard fields.count == count, fields[0] == tag else { return nil }
        return fields.dropFirst().map(String.init)
    }
}

/// A page token of the accounts lists (ListAccounts, ListVisitCandidates, EvaluateStages):
/// the row of the last account returned and a digest of the filters it is valid for
/// (base64 of "a1|row|digest").
struct ListPageToken {
    let afterRow: Int64
    let filter: String

    init(afterRow: Int64, filter: String) {
        self.afterRow = afterRow
        self.filter = filter
    }

    init?(_ text: String) {
        guard let fields = PageTokenText.decode(text, tag: "a1", count: 3), let row = Int64(fields[0]), row >= 0 else { return nil }
        self.init(afterRow: row, filter: fields[1])
    }

    var text: String { PageTokenText.encode(["a1", "\(afterRow)", filter]) }

    /// A short stable digest of the filter key (FNV-1a 64), so tokens stay small.
    static func digest(_ key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// A page token of GetAccountTimeline: the account, the filter it was issued for, and the
/// last sequence returned (base64 of "t1|account|filter|sequence").
struct TimelinePageToken {
    let accountID: String
    let filter: String
    let afterSequence: Int64

    init(accountID: String, filter: String, afterSequence: Int64) {
        self.accountID = accountID
        self.filter = filter
        self.afterSequence = afterSequence
    }

    init?(_ text: String) {
        guard let fields = PageTokenText.decode(text, tag: "t1", count: 4), let sequence = Int64(fields[2]), sequence >= 0 else {
            return nil
        }
        self.init(accountID: fields[0], filter: fields[1], afterSequence: sequence)
    }

    var text: String { PageTokenText.encode(["t1", accountID, filter, "\(afterSequence)"]) }
}

/// A page token of EvaluateStages: where the run stopped in its order — (next evaluation
/// day, row) for the streamed run, the row alone (day 0) for a run over every account — and
/// the date key it was issued for (base64 of "e1|day|row|key").
struct EvaluationPageToken {
    let afterDay: Int
    let afterRow: Int64
    let dateKey: String

    init(afterDay: Int, afterRow: Int64, dateKey: String) {
        self.afterDay = afterDay
        self.afterRow = afterRow
        self.dateKey = dateKey
    }

    init?(_ text: String) {
        guard let fields = PageTokenText.decode(text, tag: "e1", count: 4), let day = Int(fields[0]), let row = Int64(fields[1]),
              row >= 0 else { return nil }
        self.init(afterDay: day, afterRow: row, dateKey: fields[2])
    }

    var text: String { PageTokenText.encode(["e1", "\(afterDay)", "\(afterRow)", dateKey]) }
}
