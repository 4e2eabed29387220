import ArgumentParser
import Foundation
import Models
import RPC
import RPCWire
import RoutePlanner
import ServiceAuth
import TransportSecurity

/// Seeds a running Doorstep with a realistic small city for a first look (README run
/// command with DOORSTEP_DEMO=1): three agencies on the whitelist across three Shanghai
/// districts, their certified collectors, and debtors with one account each at every stage
/// (`Profile`): current, reminder, remote, field (overdue 31+ days after three failed
/// reminders: visit candidates, in every district), legal, written off and settled — so a
/// day plan and a visit can be walked through with `doorstep call` in any district.
/// Everything goes through the public gRPC API, like any platform client.
@main
struct DemoSeed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo-seed", abstract: "Seed a demo city through the gRPC API.")

    @Option(help: "accounts HOST:PORT") var accounts: String = "127.0.0.1:50051"
    @Option(help: "scheduling HOST:PORT") var scheduling: String = "127.0.0.1:50052"
    @Option(help: "The services' signing key.") var keyFile: String
    @Option(help: "Debtors to create (one account each).") var debtors: Int = 2000
    @Option(help: "Random seed (the same seed gives the same city; seeding again with it changes nothing: every request is idempotent).") var seed: UInt64 = 2026
    @OptionGroup(title: "TLS") var tls: ClientTLSOptions

    func validate() throws {
        // Resident IDs are derived from the index (unique up to 21,000 debtors per data set).
        guard (1...20_000).contains(debtors) else { throw ValidationError("--debtors must be 1-20000") }
    }

    struct District {
        var code: String
        var name: String
        var latitude: Double
        var longitude: Double
    }

    static let districts = [
        District(code: "310115", name: "上海市浦东新区", latitude: 31.2215, longitude: 121.5440),
        District(code: "310104", name: "上海市徐汇区", latitude: 31.1885, longitude: 121.4365),
        District(code: "310101", name: "上海市黄浦区", latitude: 31.2317, longitude: 121.4846),
    ]
    /// What a debtor's account is made to be. Debtor `index` lives in district `index % 3`
    /// and gets profile `(index / 3) % 8`, so every district has every profile.
    enum Profile: Int, CaseIterable {
        /// Overdue 31-120 days with three undelivered reminders: FIELD after the stage run.
        case field
        /// Nothing overdue yet (the first instalment falls due in 5-24 days).
        case current
        /// Overdue 1-7 days.
        case reminder
        /// Overdue 8-60 days, no reminders recorded.
        case remote
        /// Overdue 31-120 days with three undelivered reminders (a second FIELD share).
        case field2
        /// Overdue 90-120 days, referred to litigation.
        case legal
        /// Overdue 90-120 days, referred to litigation, then written off.
        case writtenOff
        /// Overdue 0-60 days, then paid in full.
        case settled

        static func of(_ index: Int) -> Profile { Profile(rawValue: (index / 3) % allCases.count)! }

        /// Days past due at opening, from the seeded generator.
        func overdueDays(_ rng: inout SplitMix64) -> Int {
            func within(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }
            switch self {
            case .field, .field2: return within(31...120)
            case .current: return -within(5...24)
            case .reminder: return within(1...7)
            case .remote: return within(8...60)
            case .legal, .writtenOff: return within(90...120)
            case .settled: return within(0...60)
            }
        }
    }

    static let surnames = Array("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")
    static let givenNames = Array("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英")

    func run() async throws {
        var rng = SplitMix64(seed: seed)
        let key = try SigningKey.load(path: keyFile)
        let token = try await TokenIssuer(key: key).token(for: Caller(role: .platform, subject: "demo-seed"))
        let metadata: Metadata = ["authorization": "Bearer \(token)"]
        var configuration = GRPCClient.Configuration()
        configuration.tls = try tls.clientTLS()
        let accountsClient = GRPCClient(targets: [GRPCClient.Target(accounts)!], configuration: configuration)
        let schedulingClient = GRPCClient(targets: [GRPCClient.Target(scheduling)!], configuration: configuration)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        func date(daysFromToday offset: Int) -> TypeV1.Date {
            let day = calendar.date(byAdding: .day, value: offset, to: Date())!
            let parts = calendar.dateComponents([.year, .month, .day], from: day)
            return TypeV1.Date(year: Int32(parts.year!), month: Int32(parts.month!), day: Int32(parts.day!))
        }
        let run = String(seed)

        // The whitelist: three agencies, each serving every district, 12 collectors each.
        var collectors = 0
        for (index, agencyName) in ["安心上门服务有限公司", "诚信资产管理有限公司", "华东催收服务有限公司"].enumerated() {
            let agency = try await schedulingClient.unary(SchedulingV1.SchedulingService.registerAgency, SchedulingV1.RegisterAgencyRequest(
                requestId: "demo-\(run)-agency-\(index)", agency: SchedulingV1.Agency(
                    displayName: agencyName, licenceNumber: "DEMO-\(run)-LIC-\(index)", licenceExpiryDate: date(daysFromToday: 700),
                    regionsServed: Self.districts.map(\.code), lastInspectionDate: date(daysFromToday: -60 - 30 * index))),
                metadata: metadata)
            for member in 0..<12 {
                let district = Self.districts[member % Self.districts.count]
                _ = try await schedulingClient.unary(SchedulingV1.SchedulingService.registerCollector, SchedulingV1.RegisterCollectorRequest(
                    requestId: "demo-\(run)-collector-\(index)-\(member)", collector: SchedulingV1.Collector(
                        agencyId: agency.id, fullName: name(&rng), certificationNumber: "DEMO-\(run)-C-\(index)-\(member)",
                        certificationExpiryDate: date(daysFromToday: 365), regionCode: district.code,
                        homeLocation: jitter(district, &rng, km: 4), timeZone: "Asia/Shanghai",
                        shiftStart: TypeV1.TimeOfDay(hours: member % 2 == 0 ? 8 : 10),
                        shiftEnd: TypeV1.TimeOfDay(hours: member % 2 == 0 ? 18 : 20), dailyCapacity: 6)),
                    metadata: metadata)
                collectors += 1
            }
        }

        // Debtors with one account each, of every profile in every district.
        var fieldCandidates: [String] = []
        var closed: [Profile: Int] = [:]
        for index in 0..<debtors {
            let district = Self.districts[index % Self.districts.count]
            let debtor = try await accountsClient.unary(AccountsV1.AccountsService.createDebtor, AccountsV1.CreateDebtorRequest(
                requestId: "demo-\(run)-debtor-\(index)", debtor: AccountsV1.Debtor(
                    externalId: "demo-\(run)-\(index)", fullName: name(&rng), nationalId: Self.residentID(index),
                    phone: "139\(String(format: "%08d", index))",
                    address: TypeV1.Address(text: "\(district.name)示例路\(index % 500 + 1)号", regionCode: district.code,
                                            location: jitter(district, &rng, km: 5)),
                    timeZone: "Asia/Shanghai")), metadata: metadata)
            let profile = Profile.of(index)
            let overdueDays = profile.overdueDays(&rng)
            let amount = Int64(50_000 + Int(rng.next() % 20) * 10_000)
            let account = try await accountsClient.unary(AccountsV1.AccountsService.openAccount, AccountsV1.OpenAccountRequest(
                requestId: "demo-\(run)-account-\(index)", debtorId: debtor.id, externalId: "demo-loan-\(run)-\(index)",
                lenderId: index % 2 == 0 ? "huabei" : "baitiao", product: .instalmentLoan, productName: "消费分期",
                principal: TypeV1.Money(amountMinor: amount * 3, currencyCode: "CNY"), openedDate: date(daysFromToday: -overdueDays - 60),
                instalments: (0..<3).map { AccountsV1.OpeningInstalment(dueDate: date(daysFromToday: -overdueDays + 30 * $0),
                                                                         amountDue: TypeV1.Money(amountMinor: amount, currencyCode: "CNY")) }),
                metadata: metadata)
            switch profile {
            case .field, .field2:
                for attempt in 0..<3 {
                    _ = try? await accountsClient.unary(AccountsV1.AccountsService.recordContactAttempt, AccountsV1.RecordContactAttemptRequest(
                        requestId: "demo-\(run)-sms-\(index)-\(attempt)", accountId: account.id, channel: .sms, outcome: .smsUndelivered,
                        attemptedMs: Self.lawfulInstant(daysAgo: 3 - attempt)), metadata: metadata)
                }
                fieldCandidates.append(account.id)
            case .legal, .writtenOff:
                _ = try await accountsClient.unary(AccountsV1.AccountsService.referToLegal, AccountsV1.ReferToLegalRequest(
                    requestId: "demo-\(run)-legal-\(index)", accountId: account.id, reason: "无力偿还且失联超过90日",
                    lawFirm: "示例律师事务所"), metadata: metadata)
                if profile == .writtenOff {
                    _ = try await accountsClient.unary(AccountsV1.AccountsService.writeOff, AccountsV1.WriteOffRequest(
                        requestId: "demo-\(run)-write-off-\(index)", accountId: account.id, reason: "诉讼无可执行财产"),
                        metadata: metadata)
                }
                closed[profile, default: 0] += 1
            case .settled:
                _ = try await accountsClient.unary(AccountsV1.AccountsService.recordPayment, AccountsV1.RecordPaymentRequest(
                    requestId: "demo-\(run)-payment-\(index)", accountId: account.id,
                    amount: TypeV1.Money(amountMinor: amount * 3, currencyCode: "CNY"),
                    receivedMs: Self.lawfulInstant(daysAgo: 1), externalId: "demo-pay-\(run)-\(index)"),
                    metadata: metadata)
                closed[profile, default: 0] += 1
            case .current, .reminder, .remote:
                break
            }
            if (index + 1) % 500 == 0 { print("demo-seed: \(index + 1) debtors") }
        }
        // The daily stage run, every batch: the accounts with three failed reminders reach FIELD.
        var evaluated = 0
        var transitions: [String: Int32] = [:]
        var cursor = ""
        var batch = 0
        repeat {
            let evaluation = try await accountsClient.unary(AccountsV1.AccountsService.evaluateStages, AccountsV1.EvaluateStagesRequest(
                requestId: "demo-\(run)-evaluate-\(batch)", pageToken: cursor), metadata: metadata)
            evaluated += Int(evaluation.accountsEvaluated)
            for transition in evaluation.transitions {
                transitions["\(transition.fromStage.protoName ?? "?") → \(transition.toStage.protoName ?? "?")", default: 0] += transition.accounts
            }
            cursor = evaluation.nextPageToken
            batch += 1
        } while !cursor.isEmpty
        print("demo-seed: 3 agencies, \(collectors) collectors, \(debtors) debtors and accounts; \(fieldCandidates.count) sent toward FIELD, "
              + "\(closed[.legal, default: 0] + closed[.writtenOff, default: 0]) referred to LEGAL (\(closed[.writtenOff, default: 0]) of them written off), "
              + "\(closed[.settled, default: 0]) settled")
        print("demo-seed: stage evaluation: \(evaluated) accounts evaluated; "
              + transitions.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        await accountsClient.close()
        await schedulingClient.close()
    }

    /// 10:00 Asia/Shanghai `daysAgo` days ago (inside every pack's contact hours).
    static func lawfulInstant(daysAgo: Int) -> Int64 {
        let day: Int64 = 86_400_000
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return (now / day - Int64(daysAgo)) * day + 2 * 3_600_000
    }

    /// A valid PRC resident ID (GB 11643 checksum) for a made-up person: Pudong, born 1985.
    static func residentID(_ index: Int) -> String {
        let body = "310115" + "1985" + String(format: "%02d", index % 12 + 1) + String(format: "%02d", index % 28 + 1)
            + String(format: "%03d", index % 1000)
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        let sum = zip(body, weights).reduce(0) { $0 + Int(String($1.0))! * $1.1 }
        return body + String(Array("10X98765432")[sum % 11])
    }

    func name(_ rng: inout SplitMix64) -> String {
        String(Self.surnames[Int(rng.next() % UInt64(Self.surnames.count))])
            + String(Self.givenNames[Int(rng.next() % UInt64(Self.givenNames.count))])
            + String(Self.givenNames[Int(rng.next() % UInt64(Self.givenNames.count))])
    }

    func jitter(_ district: District, _ rng: inout SplitMix64, km: Double) -> TypeV1.GeoPoint {
        let dLat = (Double(rng.next() % 2001) / 1000 - 1) * km / 111
        let dLon = (Double(rng.next() % 2001) / 1000 - 1) * km / 95
        return TypeV1.GeoPoint(latitude: district.latitude + dLat, longitude: district.longitude + dLon)
    }
}
