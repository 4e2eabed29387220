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
///
/// With `--field-region R --field-accounts N` (`Scripts/bench-stages.sh`), N of the accounts are
/// a dense field region instead: region R holds exactly those N accounts, every one in FIELD as
/// the stage engine would leave it (see `FieldRegion`), each of its own debtor with coordinates
/// in a city around (31.2, 121.5); the other accounts are generated as without the options,
/// over the remaining regions.
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
    @Option(help: "Region code of a dense field region (with --field-accounts): it holds only FIELD accounts with located debtors.")
    var fieldRegion: String?
    @Option(help: "Accounts of --field-region, part of --accounts (one debtor each).") var fieldAccounts: Int?

    func validate() throws {
        guard accounts > 0, accountsPerDebtor > 0, regions > 0, batch > 0 else { throw ValidationError("counts must be positive") }
        guard (fieldRegion == nil) == (fieldAccounts == nil) else {
            throw ValidationError("--field-region and --field-accounts go together")
        }
        if let fieldRegion, let fieldAccounts {
            // The service's own rule for region codes.
            do { try Validate.regionCode(fieldRegion, field: "--field-region") } catch { throw ValidationError("\(error)") }
            guard (1...accounts).contains(fieldAccounts) else { throw ValidationError("--field-accounts: 1 to --accounts (\(accounts))") }
            guard fieldAccounts == accounts || regions > 1 || fieldRegion != "310100" else {
                throw ValidationError("--field-region takes the only region: no region is left for the other accounts")
            }
        }
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
        // Without the field options every account is a regular one over all regions, as before.
        let field = fieldRegion.map { FieldRegion(code: $0, accounts: fieldAccounts ?? 0) }
        let regular = accounts - (field?.accounts ?? 0)
        let regularRegions: [String] = (0..<regions).map { "\(310_100 + $0)" }.filter { $0 != field?.code }
        let regularDebtors = (regular + accountsPerDebtor - 1) / accountsPerDebtor
        var made = 0
        while made < accounts {
            let count = min(batch, accounts - made)
            var debtors: [AccountsV1.Debtor] = []
            var rows: [AccountsV1.Account] = []
            for n in made..<(made + count) {
                if let field, n >= regular {
                    let (debtor, account) = field.make(index: n - regular, accountNumber: n, debtorIndex: regularDebtors + n - regular,
                                                       today: today, nowMs: nowMs, using: &generator)
                    debtors.append(debtor)
                    rows.append(account)
                    continue
                }
                let region = regularRegions[n % regularRegions.count]
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
                rows.append(GeneratedAccount.make(
                    number: n, debtorID: debtorID, dpd: dpd, stage: dpd >= 31 && n % 3 == 0 ? .field : .remote, reason: "generated",
                    region: region, unsuccessfulContacts: n % 5, today: today, nowMs: nowMs, using: &generator))
            }
            try await AccountsService.seed(database: database, cipher: cipher, debtors: debtors, accounts: rows)
            made += count
        }
        await database.close()
        let elapsed = ContinuousClock.now - started
        let fieldNote = field.map { ", of them \($0.accounts) FIELD accounts (\($0.accounts) debtors) in region \($0.code)" } ?? ""
        print("accounts-loadgen: \(made) accounts, \(regularDebtors + (field?.accounts ?? 0)) debtors, \(regions) regions\(fieldNote) in \(elapsed)")
    }
}

/// A dense field region for the portfolio benchmark: accounts that the stage engine keeps in
/// FIELD on the day generated and on the day before (days past due at least the field
/// threshold + 1, enough unsuccessful remote contacts, no promise, plan or hold), each of its
/// own debtor, located in a city-sized area (about 34 km x 34 km) around (31.2, 121.5) so that
/// the day planner routes between real distances.
struct FieldRegion {
    /// The region code.
    var code: String
    /// How many accounts (and debtors) it holds.
    var accounts: Int

    /// Centre of the city and half the side of its square, in degrees (0.15 deg of latitude is
    /// about 17 km; 0.18 deg of longitude at 31 deg north about the same).
    static let centre = (latitude: 31.2, longitude: 121.5)
    static let halfSide = (latitude: 0.15, longitude: 0.18)

    /// The `index`th point of an R2 low-discrepancy sequence over the city: evenly spread,
    /// deterministic, no two debtors at the same place.
    static func location(_ index: Int) -> TypeV1.GeoPoint {
        let a1 = 0.754_877_666_246_692_7, a2 = 0.569_840_290_998_053_3  // 1/g and 1/g^2, g the plastic number
        let u = (0.5 + a1 * Double(index + 1)).truncatingRemainder(dividingBy: 1)
        let v = (0.5 + a2 * Double(index + 1)).truncatingRemainder(dividingBy: 1)
        return TypeV1.GeoPoint(latitude: centre.latitude + halfSide.latitude * (2 * u - 1),
                               longitude: centre.longitude + halfSide.longitude * (2 * v - 1))
    }

    /// The debtor and FIELD account number `index` of the region. `accountNumber` (unique over
    /// the run) names the loan, `debtorIndex` the debtor, as for the other accounts.
    func make(index: Int, accountNumber: Int, debtorIndex: Int, today: CivilDate, nowMs: Int64,
              using generator: inout SystemRandomNumberGenerator) -> (AccountsV1.Debtor, AccountsV1.Account) {
        // One more than the threshold: an evaluation as of yesterday (one day less past due)
        // must not cure the account out of FIELD.
        let minimumDPD = DelinquencyPolicy.defaults.fieldFromDPD + 1
        let dpd = minimumDPD + index % (400 - minimumDPD + 1)
        let contacts = CollectionPolicy.defaults.fieldMinUnsuccessfulRemoteContacts + index % 3
        let debtorID = "dbt_" + String(format: "%026d", debtorIndex)
        let debtor = AccountsV1.Debtor(
            id: debtorID, externalId: "gen-\(debtorIndex)", fullName: "Debtor \(debtorIndex)",
            nationalId: "11010519491231002X", phone: "+861380000\(String(format: "%04d", debtorIndex % 10_000))",
            address: TypeV1.Address(text: "Generated field address \(index)", regionCode: code, location: Self.location(index)),
            timeZone: "Asia/Shanghai", version: 1, createdMs: nowMs, updatedMs: nowMs)
        let account = GeneratedAccount.make(
            number: accountNumber, debtorID: debtorID, dpd: dpd, stage: .field,
            reason: "generated: DPD \(dpd) and \(contacts) unsuccessful remote contacts", region: code, unsuccessfulContacts: contacts,
            today: today, nowMs: nowMs, using: &generator)
        return (debtor, account)
    }
}

/// One generated loan: 12 monthly instalments of 1,000.00 CNY, the first due `dpd` days ago,
/// nothing paid.
enum GeneratedAccount {
    static func make(number: Int, debtorID: String, dpd: Int, stage: AccountsV1.Stage, reason: String, region: String,
                     unsuccessfulContacts: Int, today: CivilDate, nowMs: Int64,
                     using generator: inout some RandomNumberGenerator) -> AccountsV1.Account {
        let cny = { (amount: Int64) in TypeV1.Money(amountMinor: amount, currencyCode: "CNY") }
        let firstDue = today.adding(days: -dpd)
        var account = AccountsV1.Account()
        account.id = IDGenerator.make(prefix: "acc", nowMs: nowMs, using: &generator)
        account.debtorId = debtorID
        account.externalId = "loan-\(number)"
        account.lenderId = "lender-\(number % 5)"
        account.product = .instalmentLoan
        account.principal = cny(1_200_000)
        account.openedDate = firstDue.adding(days: -30).proto
        account.instalments = (0..<12).map { i in
            AccountsV1.Instalment(sequence: Int32(i + 1), dueDate: firstDue.adding(days: 30 * i).proto,
                                  amountDue: cny(100_000), amountPaid: cny(0), status: .unpaid)
        }
        account.stage = stage
        account.stageReason = reason
        account.regionCode = region
        account.debtorTimeZone = "Asia/Shanghai"
        var summary = AccountsV1.ContactSummary()
        summary.unsuccessfulRemoteContacts = Int32(unsuccessfulContacts)
        account.contactSummary = summary
        account.version = 1
        account.createdMs = nowMs
        account.updatedMs = nowMs
        return account
    }
}
