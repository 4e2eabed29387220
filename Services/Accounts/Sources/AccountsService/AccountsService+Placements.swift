import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// PlaceAccounts and RecallAccounts: an account placed with a collection agency for a period
/// (docs/DOMAIN.md "Placements"). The placement is a row of `placements` (its history, at most
/// one ACTIVE per account by a partial unique index) and, while active, the account's
/// `placement` with its agency mirrored into `assigned_agency_id`, which every scoping rule,
/// filter and the candidate ranking already read. It ends by a recall or by itself: the
/// stage engine expires it the day after its end date (`EvaluationSchedule` looks at the
/// account that day), and reads in between already show the account unplaced
/// (``AccountsService/showPlacement(_:today:)``).
extension AccountsService {
    /// The longest placement, in days from today.
    static let maxPlacementDays = 366
    /// Accounts one PlaceAccounts or RecallAccounts names at most.
    static let maxPlacementTargets = 1000
    /// Agencies one placement by rule fills at most.
    static let maxPlacementAgencies = 100

    // MARK: PlaceAccounts

    func placeAccounts(_ request: AccountsV1.PlaceAccountsRequest, _ context: ServerContext) async throws -> AccountsV1.PlaceAccountsResponse {
        try Validate.requestID(request.requestId)
        let now = clock.nowMs()
        let endDate = try Self.placementEnd(request.endDate, field: "end_date", nowMs: now)
        try Validate.text(request.reason, field: "reason", min: 0, max: 500)
        if let region = request.region {
            if !request.agencyId.isEmpty { throw RPCError.invalidArgument("agency_id", "must be empty with region (a placement by rule)") }
            if !request.accounts.isEmpty { throw RPCError.invalidArgument("accounts", "must be empty with region (a placement by rule)") }
            try Self.validate(region)
        } else {
            try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy")
            try Self.validate(request.accounts, field: "accounts", placing: true)
            if request.reason.isEmpty, request.accounts.contains(where: { $0.reason.isEmpty }) {
                throw RPCError.invalidArgument("reason", "required unless every account has its own reason")
            }
        }
        let actor = try context.requireCaller().actor
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        let response = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            let placer = Placer(db: db, store: store, configuration: configuration, nowMs: now, actor: actor,
                                requestID: request.requestId, endDate: endDate)
            if let region = request.region {
                return try placer.placeByRule(region, reason: request.reason)
            }
            return try placer.placeByHand(agencyID: request.agencyId, targets: request.accounts, reason: request.reason)
        }
        context.logger.notice("accounts placed", metadata: [
            "agency-id": "\(request.agencyId)", "region": "\(request.region?.regionCode ?? "")",
            "placed": "\(response.placements.count)", "left-unplaced": "\(response.accountsLeftUnplaced)",
        ])
        return response
    }

    // MARK: RecallAccounts

    func recallAccounts(_ request: AccountsV1.RecallAccountsRequest, _ context: ServerContext) async throws -> AccountsV1.RecallAccountsResponse {
        try Validate.requestID(request.requestId)
        try Validate.text(request.reason, field: "reason", min: 1, max: 500)
        if request.accounts.isEmpty {
            guard !request.agencyId.isEmpty else { throw RPCError.invalidArgument("agency_id", "required when accounts is empty") }
        } else {
            try Self.validate(request.accounts, field: "accounts", placing: false)
        }
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        let actor = try context.requireCaller().actor
        let now = clock.nowMs()
        let key = try Idempotency.Key(method: context.path, requestID: request.requestId, request: request, caller: context.callerKey)
        let store = self.store
        let configuration = self.configuration
        let response = try await Idempotency.perform(in: store.database, key: key, nowMs: now) { db in
            let placer = Placer(db: db, store: store, configuration: configuration, nowMs: now, actor: actor,
                                requestID: request.requestId, endDate: nil)
            return try placer.recall(request)
        }
        context.logger.notice("accounts recalled", metadata: [
            "agency-id": "\(request.agencyId)", "recalled": "\(response.placements.count)", "reason": "\(request.reason)",
        ])
        return response
    }

    // MARK: Validation

    /// The end date: after today wherever the debtor lives (today in the zone furthest
    /// ahead) and at most ``maxPlacementDays`` after today.
    static func placementEnd(_ date: TypeV1.Date?, field: String, nowMs: Int64) throws -> CivilDate {
        let end = try Validate.date(date, field: field)
        let latestToday = CivilDate.today(in: TimeZone(secondsFromGMT: 14 * 3600)!, nowMs: nowMs)
        guard end > latestToday else { throw RPCError.invalidArgument(field, "must be after today (\(latestToday))") }
        guard end <= latestToday.adding(days: maxPlacementDays) else {
            throw RPCError.invalidArgument(field, "must be at most \(maxPlacementDays) days ahead")
        }
        return end
    }

    static func validate(_ targets: [AccountsV1.PlacementTarget], field: String, placing: Bool) throws {
        guard !targets.isEmpty else { throw RPCError.invalidArgument(field, "required: 1-\(maxPlacementTargets) accounts") }
        guard targets.count <= maxPlacementTargets else { throw RPCError.invalidArgument(field, "at most \(maxPlacementTargets) accounts") }
        var seen: Set<String> = []
        for (index, target) in targets.enumerated() {
            try Validate.resourceID(target.accountId, field: "\(field)[\(index)].account_id", prefix: "acc")
            guard seen.insert(target.accountId).inserted else {
                throw RPCError.invalidArgument("\(field)[\(index)].account_id", "listed twice")
            }
            if target.expectedVersion < 0 {
                throw RPCError.invalidArgument("\(field)[\(index)].expected_version", "must not be negative")
            }
            if placing {
                try Validate.text(target.reason, field: "\(field)[\(index)].reason", min: 0, max: 500)
            } else if !target.reason.isEmpty {
                throw RPCError.invalidArgument("\(field)[\(index)].reason", "must be empty: a recall has the request's reason")
            }
        }
    }

    static func validate(_ region: AccountsV1.RegionPlacement) throws {
        try Validate.regionCode(region.regionCode, field: "region.region_code")
        guard !region.agencies.isEmpty else {
            throw RPCError.invalidArgument("region.agencies", "required: 1-\(maxPlacementAgencies) agencies")
        }
        guard region.agencies.count <= maxPlacementAgencies else {
            throw RPCError.invalidArgument("region.agencies", "at most \(maxPlacementAgencies) agencies")
        }
        var seen: Set<String> = []
        for (index, quota) in region.agencies.enumerated() {
            let field = "region.agencies[\(index)]"
            try Validate.resourceID(quota.agencyId, field: "\(field).agency_id", prefix: "agy")
            guard seen.insert(quota.agencyId).inserted else { throw RPCError.invalidArgument("\(field).agency_id", "listed twice") }
            guard (1...1_000_000).contains(quota.capacity) else {
                throw RPCError.invalidArgument("\(field).capacity", "must be 1-1000000")
            }
            try Validate.text(quota.reason, field: "\(field).reason", min: 0, max: 500)
        }
    }

    // MARK: Reads and the stage engine

    /// The placement as of `today` (debtor-local): one whose end date has passed is no longer
    /// shown (nor its agency), even before the stage engine has recorded its expiry.
    static func showPlacement(_ account: inout AccountsV1.Account, today: CivilDate) {
        guard let placement = account.placement, placement.state == .active,
              let end = placement.endDate.flatMap(CivilDate.init), today > end else { return }
        account.placement = nil
        if account.assignedAgencyId == placement.agencyId { account.assignedAgencyId = "" }
    }

    /// The agency `account` is assigned to as of now (its debtor's today), for scoping reads.
    static func shownAgency(_ account: AccountsV1.Account, nowMs: Int64) -> String {
        shownAgency(account, today: CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: nowMs))
    }

    /// The agency `account` is assigned to on `today` (its debtor's). The copy is made only
    /// when a placement has ended (copy on write).
    static func shownAgency(_ account: AccountsV1.Account, today: CivilDate) -> String {
        var shown = account
        showPlacement(&shown, today: today)
        return shown.assignedAgencyId
    }

    /// Ends the account's placement when `day` is after its end date, in the caller's
    /// transaction (its row and the account's body, which the caller writes): returns the
    /// PLACEMENT_EXPIRED event, or nil when nothing expired.
    static func expirePlacement(_ account: inout AccountsV1.Account, day: CivilDate, nowMs: Int64, db: SQLSession) throws -> AccountsV1.TimelineEvent? {
        guard var placement = account.placement, placement.state == .active,
              let end = placement.endDate.flatMap(CivilDate.init), day > end else { return nil }
        placement.state = .expired
        placement.endedMs = nowMs
        placement.endReason = "placement with agency \(placement.agencyId) ended on \(end)"
        placement.endedBy = StageEngine.actor
        try AccountsStore.update(db, placement: placement)
        account.placement = nil
        if account.assignedAgencyId == placement.agencyId { account.assignedAgencyId = "" }
        return event(.placementExpired, reason: placement.endReason, actor: StageEngine.actor, requestID: "",
                     details: .placement(placement))
    }
}

/// One placement transaction: places or recalls accounts and writes each account, its
/// ranking entry, its placement row and its timeline event.
struct Placer {
    let db: SQLSession
    let store: AccountsStore
    let configuration: AccountsService.Configuration
    let nowMs: Int64
    let actor: TypeV1.Actor
    let requestID: String
    /// The placements' last day (PlaceAccounts only).
    let endDate: CivilDate?

    /// The account for update, brought up to today; an expired placement is ended first (its
    /// event returned with it), so that the account can be placed again at once.
    private func load(_ id: String, expectedVersion: Int64) throws -> (AccountsV1.Account, [AccountsV1.TimelineEvent]) {
        var account = try AccountsService.accountForUpdate(db, store: store, id: id, expectedVersion: expectedVersion)
        let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: nowMs)
        AccountsService.refresh(&account, asOf: today, nowMs: nowMs, configuration: configuration,
                                contacts: try store.contactStats(db, accountID: id))
        let expired = try AccountsService.expirePlacement(&account, day: today, nowMs: nowMs, db: db)
        return (account, expired.map { [$0] } ?? [])
    }

    private func write(_ account: inout AccountsV1.Account, events: [AccountsV1.TimelineEvent]) throws {
        account.version += 1
        account.updatedMs = nowMs
        try store.update(db, account: account, contacts: try store.contactStats(db, accountID: account.id), nowMs: nowMs)
        try store.append(db, events: events, accountID: account.id, nowMs: nowMs)
    }

    private func place(_ account: inout AccountsV1.Account, agencyID: String, reason: String,
                       events prior: [AccountsV1.TimelineEvent]) throws -> AccountsV1.Placement {
        let today = CivilDate.today(in: TimeZone(identifier: account.debtorTimeZone) ?? .gmt, nowMs: nowMs)
        let placement = AccountsV1.Placement(
            id: IDGenerator.make(prefix: "plc", nowMs: nowMs), accountId: account.id, agencyId: agencyID, startDate: today.proto,
            endDate: endDate?.proto, reason: reason, placedBy: actor, placedMs: nowMs, requestId: requestID, state: .active)
        try AccountsStore.insert(db, placement: placement)
        account.placement = placement
        account.assignedAgencyId = agencyID
        var events = prior
        let until = endDate.map { " until \($0)" } ?? ""
        events.append(AccountsService.event(.accountPlaced, reason: "placed with agency \(agencyID)\(until): \(reason)",
                                            actor: actor, requestID: requestID, details: .placement(placement)))
        try write(&account, events: events)
        return placement
    }

    /// Every named account, or none: each must exist (NOT_FOUND), be at its expected version
    /// (ABORTED), not be closed (`account-stage`) nor placed (`placement-active`).
    func placeByHand(agencyID: String, targets: [AccountsV1.PlacementTarget], reason: String) throws -> AccountsV1.PlaceAccountsResponse {
        var loaded: [(AccountsV1.Account, [AccountsV1.TimelineEvent], String)] = []
        var violations: [TypeV1.Violation] = []
        for (index, target) in targets.enumerated() {
            let (account, expired) = try load(target.accountId, expectedVersion: target.expectedVersion)
            let field = "accounts[\(index)].account_id"
            if account.stage == .settled || account.stage == .writtenOff {
                violations.append(RuleID.accountStage.violation(
                    quoting: nil, field: field, subject: account.id, "account \(account.id) is \(account.stage.protoName ?? "?")"))
            }
            if !account.assignedAgencyId.isEmpty {
                let until = account.placement?.endDate.flatMap(CivilDate.init).map { " until \($0)" } ?? ""
                violations.append(RuleID.placementActive.violation(
                    quoting: nil, field: field, subject: account.id,
                    "account \(account.id) is placed with agency \(account.assignedAgencyId)\(until); recall it first"))
            }
            loaded.append((account, expired, target.reason.isEmpty ? reason : target.reason))
        }
        guard violations.isEmpty else { throw RPCError.refused(violations) }
        var response = AccountsV1.PlaceAccountsResponse()
        for (stored, expired, why) in loaded {
            var account = stored
            response.placements.append(try place(&account, agencyID: agencyID, reason: why, events: expired))
        }
        return response
    }

    /// The region's unplaced FIELD accounts on no hold (its ranking entries without an
    /// agency), best expected recovery first, across the agencies in order, each up to its
    /// capacity counting the accounts already assigned to it.
    func placeByRule(_ region: AccountsV1.RegionPlacement, reason: String) throws -> AccountsV1.PlaceAccountsResponse {
        let unplaced = try db.fetchAll(sql: """
                SELECT account_id, expected_recovery, currency FROM visit_candidates WHERE region_code = ? AND agency_id = ''
                ORDER BY expected_recovery DESC, overdue_since_day, account_id\(db.dialect.lockForUpdate)
                """,
            arguments: [region.regionCode])
        let ids = region.agencies.map(\.agencyId)
        var placed: [String: Int] = [:]
        for row in try db.fetchAll(sql: """
                SELECT assigned_agency_id, COUNT(*) AS placed FROM accounts
                WHERE assigned_agency_id IN (\(ids.map { _ in "?" }.joined(separator: ","))) GROUP BY assigned_agency_id
                """,
            arguments: SQLArguments(ids)) {
            placed[row["assigned_agency_id"]] = row["placed"]
        }
        var response = AccountsV1.PlaceAccountsResponse()
        var next = 0
        for (rank, quota) in region.agencies.enumerated() where next < unplaced.count {
            let already = placed[quota.agencyId] ?? 0
            var free = max(0, Int(quota.capacity) - already)
            while free > 0, next < unplaced.count {
                let row = unplaced[next]
                next += 1
                let (stored, expired) = try load(row["account_id"], expectedVersion: 0)
                guard stored.assignedAgencyId.isEmpty, stored.stage == .field else { continue }
                free -= 1
                var account = stored
                let recovery: Int64 = row["expected_recovery"]
                let currency: String = row["currency"]
                let why = [reason.isEmpty ? nil : reason,
                           "by rule in region \(region.regionCode): agency \(quota.agencyId) ranked \(rank + 1) of \(region.agencies.count)"
                           + (quota.reason.isEmpty ? "" : " (\(quota.reason))")
                           + ", capacity \(quota.capacity) with \(already + response.placements.filter { $0.agencyId == quota.agencyId }.count) placed",
                           "account expected recovery \(recovery) \(currency), \(account.daysPastDue) days past due"]
                    .compactMap { $0 }.joined(separator: "; ")
                response.placements.append(try place(&account, agencyID: quota.agencyId, reason: why, events: expired))
            }
        }
        response.accountsLeftUnplaced = Int32(clamping: unplaced.count - next)
        return response
    }

    /// The named accounts (each must be placed, with `agency_id` when given:
    /// `placement-missing`), or every account assigned to `agency_id`.
    func recall(_ request: AccountsV1.RecallAccountsRequest) throws -> AccountsV1.RecallAccountsResponse {
        var loaded: [(AccountsV1.Account, [AccountsV1.TimelineEvent])] = []
        if request.accounts.isEmpty {
            let ids = try db.fetchValues(String.self, sql: "SELECT id FROM accounts WHERE assigned_agency_id = ? ORDER BY id",
                                         arguments: [request.agencyId])
            for id in ids {
                let (account, expired) = try load(id, expectedVersion: 0)
                if account.assignedAgencyId == request.agencyId {
                    loaded.append((account, expired))
                } else if !expired.isEmpty {
                    // Expired just now: the expiry is recorded, nothing is recalled.
                    var written = account
                    try write(&written, events: expired)
                }
            }
        } else {
            var violations: [TypeV1.Violation] = []
            for (index, target) in request.accounts.enumerated() {
                let (account, expired) = try load(target.accountId, expectedVersion: target.expectedVersion)
                let field = "accounts[\(index)].account_id"
                if account.assignedAgencyId.isEmpty {
                    violations.append(RuleID.placementMissing.violation(
                        quoting: nil, field: field, subject: account.id, "account \(account.id) is not placed"))
                } else if !request.agencyId.isEmpty, account.assignedAgencyId != request.agencyId {
                    violations.append(RuleID.placementMissing.violation(
                        quoting: nil, field: field, subject: account.id,
                        "account \(account.id) is placed with agency \(account.assignedAgencyId), not \(request.agencyId)"))
                }
                loaded.append((account, expired))
            }
            guard violations.isEmpty else { throw RPCError.refused(violations) }
        }
        var response = AccountsV1.RecallAccountsResponse()
        for (stored, expired) in loaded {
            var account = stored
            // An assignment made at OpenAccount has no placement record: the recall names its agency.
            var placement = account.placement ?? AccountsV1.Placement(accountId: account.id, agencyId: account.assignedAgencyId,
                                                                      state: .active)
            placement.state = .recalled
            placement.endedMs = nowMs
            placement.endReason = request.reason
            placement.endedBy = actor
            if !placement.id.isEmpty { try AccountsStore.update(db, placement: placement) }
            account.placement = nil
            account.assignedAgencyId = ""
            var events = expired
            events.append(AccountsService.event(.accountRecalled, reason: "recalled from agency \(placement.agencyId): \(request.reason)",
                                                actor: actor, requestID: requestID, details: .placement(placement)))
            try write(&account, events: events)
            response.placements.append(placement)
        }
        return response
    }
}

extension AccountsStore {
    /// Records a new ACTIVE placement; a second active one for the account violates the
    /// partial unique index (the caller checked `assigned_agency_id` first, in the same
    /// transaction).
    static func insert(_ db: SQLSession, placement: AccountsV1.Placement) throws {
        try db.execute(
            sql: """
                INSERT INTO placements (id, account_id, agency_id, state, end_day, placed_ms, ended_ms, body)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [placement.id, placement.accountId, placement.agencyId, placement.state.rawValue,
                        placement.endDate.flatMap(CivilDate.init)?.dayNumber ?? 0, placement.placedMs, placement.endedMs,
                        Data(try placement.encode())])
    }

    /// Writes a placement that ended (recalled or expired).
    static func update(_ db: SQLSession, placement: AccountsV1.Placement) throws {
        try db.execute(sql: "UPDATE placements SET state = ?, ended_ms = ?, body = ? WHERE id = ?",
                       arguments: [placement.state.rawValue, placement.endedMs, Data(try placement.encode()), placement.id])
    }
}
