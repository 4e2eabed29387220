import Crypto
import Foundation
import Models
import Storage

/// The tamper-evident chain of an account's visit records (visits.proto `ChainRecord`):
///
///     record_sha256 = SHA-256(previous_sha256 || payload)
///
/// where `payload` is the serialized `ChainEntry` (stored as written and hashed as stored,
/// never re-serialized) and `previous_sha256` is the previous record's hash in the same
/// account's chain (32 zero bytes for the first). Records are appended in the transaction
/// that writes the visit change they record, so the chain and the visits never disagree.
public enum EvidenceChain {
    /// The hash before an account's first record.
    public static let genesis = [UInt8](repeating: 0, count: 32)

    public static func hash(previous: [UInt8], payload: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(data: payload)
        return Array(hasher.finalize())
    }

    /// The result of checking a chain: intact, or the first broken record and why.
    public struct Verification: Sendable, Hashable {
        public var recordsChecked: Int64
        public var headSequence: Int64
        public var headSHA256: [UInt8]
        public var firstBrokenSequence: Int64
        public var problem: String
        /// Of `recordsChecked`, records of erased visits (their content is gone; see
        /// ``verify(_:accountID:erased:)``).
        public var recordsErased: Int64 = 0
        public var intact: Bool { firstBrokenSequence == 0 }
    }

    /// Checks `records` (one account's, in sequence order): sequences 1, 2, 3… without gaps;
    /// each `previous_sha256` equal to the predecessor's hash; each `record_sha256` equal to
    /// the hash of its stored bytes; each payload a `ChainEntry` of this account with the
    /// record's sequence.
    ///
    /// A record whose visit the retention job erased (its sequence in `erased`) has a payload
    /// stripped of its content (``stripped(_:)``), which no longer hashes to its
    /// `record_sha256`: for it only the sequence, the link to its predecessor and the stripped
    /// entry are checked, and its stored `record_sha256` carries the chain on to the next
    /// record (which checks it). A stripped payload outside `erased` is broken.
    public static func verify(_ records: [VisitsV1.ChainRecord], accountID: String, erased: Set<Int64> = []) -> Verification {
        var previous = genesis
        var checked: Int64 = 0
        var erasedCount: Int64 = 0
        for (index, record) in records.enumerated() {
            let expected = Int64(index + 1)
            func broken(_ problem: String) -> Verification {
                Verification(recordsChecked: checked, headSequence: records.last?.sequence ?? 0,
                             headSHA256: records.last?.recordSha256 ?? [], firstBrokenSequence: expected, problem: "record \(expected): \(problem)")
            }
            guard record.sequence == expected else { return broken("sequence \(record.sequence) where \(expected) was expected (a gap)") }
            guard record.previousSha256 == previous else { return broken("previous_sha256 does not match record \(expected - 1)") }
            if let entry = try? VisitsV1.ChainEntry(decoding: record.payload), entry.content == nil {
                guard erased.contains(record.sequence), entry.accountId == accountID, entry.sequence == expected,
                      record.recordSha256.count == 32 else {
                    return broken("payload has no content and its visit is not erased")
                }
                previous = record.recordSha256
                checked += 1
                erasedCount += 1
                continue
            }
            guard hash(previous: record.previousSha256, payload: record.payload) == record.recordSha256 else {
                return broken("record_sha256 does not match its payload")
            }
            guard let entry = try? VisitsV1.ChainEntry(decoding: record.payload), entry.accountId == accountID, entry.sequence == expected else {
                return broken("payload is not this account's entry \(expected)")
            }
            previous = record.recordSha256
            checked += 1
        }
        return Verification(recordsChecked: checked, headSequence: records.last?.sequence ?? 0, headSHA256: previous,
                            firstBrokenSequence: 0, problem: "", recordsErased: erasedCount)
    }

    /// `payload` (a serialized ChainEntry) without its content: the account, visit, sequence
    /// and time stay, so the record's place in the chain can still be checked.
    static func stripped(_ payload: [UInt8]) throws -> [UInt8] {
        var entry = try VisitsV1.ChainEntry(decoding: payload)
        entry.content = nil
        return try entry.encode()
    }

    /// Sequences of the account's records whose visit is erased.
    static func erasedSequences(_ db: SQLSession, accountID: String) throws -> Set<Int64> {
        Set(try db.fetchValues(Int64.self, sql: """
            SELECT c.sequence FROM chain_records c JOIN visits v ON v.id = c.visit_id
            WHERE c.account_id = ? AND v.erased_ms > 0
            """, arguments: [accountID]))
    }

    /// Appends a record to `accountID`'s chain inside the caller's write transaction and
    /// returns it.
    static func append(_ db: SQLSession, accountID: String, visitID: String, kind: VisitsV1.ChainRecordKind,
                       content: VisitsV1.ChainEntry.Content, nowMs: Int64) throws -> VisitsV1.ChainRecord {
        let head = try db.fetchOne(sql: """
            SELECT sequence, record_sha256 FROM chain_records WHERE account_id = ? ORDER BY sequence DESC LIMIT 1
            """, arguments: [accountID])
        let sequence: Int64 = (head?["sequence"] ?? 0) + 1
        let previous: [UInt8] = head.map { [UInt8]($0["record_sha256"] as Data) } ?? genesis
        let entry = VisitsV1.ChainEntry(accountId: accountID, visitId: visitID, sequence: sequence, appendedMs: nowMs, content: content)
        let payload = try entry.encode()
        let record = VisitsV1.ChainRecord(sequence: sequence, kind: kind, appendedMs: nowMs, previousSha256: previous,
                                          payload: payload, recordSha256: hash(previous: previous, payload: payload))
        try db.execute(sql: """
            INSERT INTO chain_records (account_id, sequence, visit_id, kind, appended_ms, previous_sha256, payload, record_sha256)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [accountID, sequence, visitID, kind.rawValue, nowMs, Data(previous), Data(payload), Data(record.recordSha256)])
        return record
    }

    /// Every record of an account's chain, in sequence order.
    static func records(_ db: SQLSession, accountID: String) throws -> [VisitsV1.ChainRecord] {
        try db.fetchAll(sql: """
            SELECT sequence, kind, appended_ms, previous_sha256, payload, record_sha256 FROM chain_records
            WHERE account_id = ? ORDER BY sequence
            """, arguments: [accountID]).map { row in
            VisitsV1.ChainRecord(
                sequence: row["sequence"], kind: VisitsV1.ChainRecordKind(rawValue: row["kind"]), appendedMs: row["appended_ms"],
                previousSha256: [UInt8](row["previous_sha256"] as Data), payload: [UInt8](row["payload"] as Data),
                recordSha256: [UInt8](row["record_sha256"] as Data))
        }
    }
}
