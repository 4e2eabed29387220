import Foundation
import Models
import RPC
import Synchronization

/// GetAccount's memo of decoded accounts, keyed by account id and validated by the stored bytes
/// themselves: a read compares the row's `body` with the bytes an entry was decoded from, and
/// only identical bytes reuse the entry. Nothing has to invalidate it — a write anywhere (this
/// process, another replica, a restore) changes the bytes, and the next read decodes afresh —
/// so it can never answer with an account other than the one stored.
///
/// An entry also keeps GetAccount's answers, encoded, as of one debtor-local day with one set of
/// contact counters (`AccountsService.refresh`, the placement shown as of that day): they are a
/// function of the body, the day, the counters and the process's configuration, so a read on
/// the same day with the same counters answers with those bytes. The risk then reports when it
/// was first assessed that day (`assessed_ms`) rather than the instant of the read.
///
/// Bounded: two generations of at most `capacity / 2` entries each. When the current one fills,
/// it becomes the previous one and the one before is dropped; a hit in the previous generation
/// moves to the current one. `capacity` 0 turns the cache off (every read decodes).
final class StoredAccountCache: Sendable {
    /// One decoded account and, once computed, its refresh for one day and set of counters.
    /// A class: a read hands on a reference, not a copy of the account's every field (whose
    /// retains and releases were a tenth of a cached GetAccount's CPU).
    final class Entry: Sendable {
        let body: [UInt8]
        let account: AccountsV1.Account
        let zone: TimeZone
        let refreshed: Refreshed?

        init(body: [UInt8], account: AccountsV1.Account, zone: TimeZone, refreshed: Refreshed?) {
            self.body = body
            self.account = account
            self.zone = zone
            self.refreshed = refreshed
        }

        /// The same entry with `refreshed`.
        func with(_ refreshed: Refreshed) -> Entry {
            Entry(body: body, account: account, zone: zone, refreshed: refreshed)
        }
    }

    /// GetAccount's answers for one debtor-local day and one set of contact counters, encoded:
    /// the full view and the basic one.
    struct Refreshed: Sendable {
        let dayNumber: Int
        let contacts: ContactStats
        let full: EncodedResponse<AccountsV1.Account>
        let basic: EncodedResponse<AccountsV1.Account>
    }

    private struct Generations {
        var current: [String: Entry] = [:]
        var previous: [String: Entry] = [:]
    }

    let capacity: Int
    private let generations = Mutex(Generations())

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// The entry for `id` when it was decoded from exactly `bytes`; otherwise `bytes` decoded
    /// (without the checks input from outside gets: these bytes were written by this service)
    /// and remembered.
    func entry(id: String, bytes: UnsafeRawBufferPointer) throws(WireError) -> Entry {
        if capacity > 0, let entry = lookup(id: id, bytes: bytes) { return entry }
        let account = try AccountsV1.Account(decodingStored: bytes)
        let entry = Entry(body: [UInt8](bytes), account: account,
                          zone: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, refreshed: nil)
        if capacity > 0 { insert(id: id, entry) }
        return entry
    }

    /// Remembers `refreshed` with the entry of `id` if that entry still holds `body`.
    func remember(_ refreshed: Refreshed, id: String, body: [UInt8]) {
        guard capacity > 0 else { return }
        generations.withLock { state in
            guard let entry = state.current[id], entry.body == body else { return }
            state.current[id] = entry.with(refreshed)
        }
    }

    /// How many entries the cache holds now (both generations).
    var count: Int {
        generations.withLock { $0.current.count + $0.previous.count }
    }

    private func lookup(id: String, bytes: UnsafeRawBufferPointer) -> Entry? {
        generations.withLock { state in
            if let entry = state.current[id] {
                return Self.holds(entry, bytes) ? entry : nil
            }
            guard let entry = state.previous.removeValue(forKey: id), Self.holds(entry, bytes) else { return nil }
            Self.add(id, entry, to: &state, capacity: capacity)
            return entry
        }
    }

    private func insert(id: String, _ entry: Entry) {
        generations.withLock { state in
            state.previous.removeValue(forKey: id)
            Self.add(id, entry, to: &state, capacity: capacity)
        }
    }

    private static func add(_ id: String, _ entry: Entry, to state: inout Generations, capacity: Int) {
        if state.current[id] == nil, state.current.count >= max(1, capacity / 2) {
            state.previous = state.current
            state.current = [:]
        }
        state.current[id] = entry
    }

    private static func holds(_ entry: Entry, _ bytes: UnsafeRawBufferPointer) -> Bool {
        entry.body.count == bytes.count && entry.body.withUnsafeBytes { stored in
            stored.count == 0 || memcmp(stored.baseAddress!, bytes.baseAddress!, bytes.count) == 0
        }
    }
}

/// One GetAccount read: the stored account's entry and the contact counters of its row. A class,
/// so that handing it from the batched read to its caller moves a reference, not the account.
final class StoredAccountRead: Sendable {
    let entry: StoredAccountCache.Entry
    let contacts: ContactStats

    init(entry: StoredAccountCache.Entry, contacts: ContactStats) {
        self.entry = entry
        self.contacts = contacts
    }
}
