import AccountsService
import ArgumentParser
import Foundation
import Logging
import Models
import Storage
import Validation

/// Fills an accounts database (a data directory's SQLite file, or a PostgreSQL database) with generated debtors and accounts for benchmarks
/// (`Scripts/bench-accounts.sh`): deterministic, spread over regions, stages REMOTE and FIELD,
/// days past due from 1 to 400, some with enough unsuccessful remote contacts for FIELD.
@main
struct AccountsLoadgen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accounts-loadgen", abstract: "Generate accounts into an accounts data directory (benchmarks).")

    @Option(help: "The accounts service's data directory (created; data.key made if absent).") var dataDir: String
    @Option(help: "PostgreSQL database to fill instead of <data-dir>/accounts.sqlite (the service's --database-url).")
    var databaseUrl: String?
    @Option(help: "Accounts to generate.") var accounts: Int = 1_000_000
    @Option(help: "Accounts per debtor.") var accountsPerDebtor: Int = 10
    @Option(help: "Number of regions (region codes 310100 + n).") var regions: Int = 50
    @Option(help: "Accounts per transaction.") var batch: Int = 20_000

    func validate() throws {
        guard accounts > 0, accountsPerDebtor > 0, regions > 0, batch > 0 else { throw ValidationError("counts must be positive") }
    }

    func run() async throws {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        var logger = Logger(label: "accounts-loadgen")
        logger.logLevel = .warning
        let cipher = DataCipher(key: try DataCipher.loadKey(path: dataDir + "/data.key", create: true).key)
        let location: SQLDatabase.Location = try databaseUrl.map { .postgres(try PostgresSettings(url: $0)) }
            ?? .sqlite(path: dataDir + "/accounts.sqlite")
        let database = try await SQLDatabase.open(location, migrations: AccountsService.migrations, logger: logger)
        let started = ContinuousClock.now
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let today = CivilDate.today(in: TimeZone(identifier: "Asia/Shanghai")!, nowMs: nowMs)
        var generator = SystemRandomNumberGenerator()
        var made = 0
        while made < accounts {
            let count = min(batch, accounts - made)
            var debtors: [AccountsV1.Debtor] = []
            var rows: [AccountsV1.Account] = []
            for n in made..<(made + count) {
                let region = "\(310_100 + n % regions)"
                let debtorIndex = n / accountsPerDebtor
                let debtorID = "dbt_" + String(format: "%026d", debtorIndex)
                if n % accountsPerDebtor == 0 {
                        debtors.append(AccountsV1.Debtor(
                            id: debtorID, externalId: "gen-\(debtorIndex)", fullName: "Debtor \(debtorIndex)",
                            nationalId: "11010519491231002X", phone: "+861380000\(String(format: "%04d", debtorIndex % 10_000))",
                            address: TypeV1.Address(text: "Generated address \(debtorIndex)", regionCode: region,
                                                    location: TypeV1.GeoPoint(latitude: 31 + Double(debtorIndex % 100) / 1000,
                                                                              longitude: 121 + Double(debtorIndex % 97) / 1000)),
                            timeZone: "Asia/Shanghai", version: 1, createdMs: nowMs, updatedMs: nowMs))
                }
                let dpd = 1 + n % 400
                let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
                let firstDue = today.adding(days: -dpd)
                var account = AccountsV1.Account()
                account.id = IDGenerator.make(prefix: "acc", nowMs: nowMs, using: &generator)
                account.debtorId = debtorID
                account.externalId = "loan-\(n)"
                account.lenderId = "lender-\(n % 5)"
                account.product = .instalmentLoan
                account.principal = cny(1_200_000)
                account.openedDate = firstDue.adding(days: -30).proto
                account.instalments = (0..<12).map { i in
                    AccountsV1.Instalment(sequence: Int32(i + 1), dueDate: firstDue.adding(days: 30 * i).proto,
                                          amountDue: cny(100_000), amountPaid: cny(0), status: .unpaid)
                }
                account.stage = dpd >= 31 && n % 3 == 0 ? .field : .remote
                account.stageReason = "generated"
                account.regionCode = region
                account.debtorTimeZone = "Asia/Shanghai"
                var summary = AccountsV1.ContactSummary()
                summary.unsuccessfulRemoteContacts = Int32(n % 5)
                account.contactSummary = summary
                account.version = 1
                account.createdMs = nowMs
                account.updatedMs = nowMs
                rows.append(account)
            }
            try await AccountsService.seed(database: database, cipher: cipher, debtors: debtors, accounts: rows)
            made += count
        }
        await database.close()
        let elapsed = ContinuousClock.now - started
        print("accounts-loadgen: \(made) accounts, \((made + accountsPerDebtor - 1) / accountsPerDebtor) debtors, \(regions) regions in \(elapsed)")
    }
}
