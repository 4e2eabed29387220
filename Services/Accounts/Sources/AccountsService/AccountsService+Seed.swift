import Foundation
import Models
import Storage

extension AccountsService {
    /// Writes already-built debtors and accounts straight into a database, in one
    /// transaction, through the same store code the service uses (debtors sealed, indexed
    /// columns filled, visit candidates ranked). For load generation and benchmarks in this package only: it skips
    /// request validation, idempotency and the timeline.
    package static func seed(database: SQLDatabase, cipher: DataCipher,
                             debtors: [AccountsV1.Debtor], accounts: [AccountsV1.Account]) async throws {
        let store = AccountsStore(database: database, cipher: cipher)
        try await database.write { db in
            for debtor in debtors { try store.insert(db, debtor: debtor) }
            for account in accounts { try store.insert(db, account: account, nowMs: account.updatedMs) }
            // Inserted accounts are ranked as they go in: no backfill at the service's start.
            try db.execute(sql: "DELETE FROM ranking_backfill")
        }
    }
}
