import Compliance
import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

/// A visit's facts gathered for judging: the crew and their agencies as stored, and the
/// verdict of `VisitPolicy`.
struct VisitJudgement {
    var collectors: [String: SchedulingV1.Collector]
    var agencies: [String: SchedulingV1.Agency]
    var violations: [TypeV1.Violation]
}

extension SchedulingService {
    /// Loads what the rules need from the store (inside the caller's transaction, so
    /// double-booking and caps are judged against committed bookings only) and applies
    /// `VisitPolicy`. Unknown crew members are NOT_FOUND; a scope that does not see a crew
    /// member's agency (an agency manager naming another agency's collectors), or an account
    /// assigned to another agency, is PERMISSION_DENIED.
    static func judge(
        _ db: SQLSession, _ store: SchedulingStore, visit: ProposedVisit, account: AccountFacts, excluding appointmentID: String?,
        scope: CallerScope, nowMs: Int64, configuration: SchedulingConfiguration
    ) throws -> VisitJudgement {
        var collectors: [String: SchedulingV1.Collector] = [:]
        for member in visit.crew {
            guard let collector = try store.collector(db, id: member) else {
                throw RPCError.notFound("collector \(member) not found")
            }
            if case .agency = scope, !scope.sees(agencyID: collector.agencyId) {
                throw RPCError.permissionDenied("collector \(member) belongs to another agency")
            }
            collectors[member] = collector
        }
        if case .agency = scope, !account.assignedAgencyID.isEmpty, !scope.sees(agencyID: account.assignedAgencyID) {
            throw RPCError.permissionDenied("account \(account.accountID) is assigned to another agency")
        }
        let agencies = try store.agencies(db, ids: collectors.values.map(\.agencyId))
        let day: Int64 = 86_400_000
        let crewBookings = try store.liveBookings(db, collectors: visit.crew, fromMs: visit.windowStartMs - day,
                                                  toMs: visit.windowEndMs + day, excluding: appointmentID)
        let accountBookings = try store.liveBookings(db, account: account.accountID, fromMs: visit.windowStartMs - 7 * day,
                                                     toMs: visit.windowStartMs + 7 * day, excluding: appointmentID)
        let violations = VisitPolicy.violations(
            of: visit, account: account.visited, collectors: collectors, agencies: agencies,
            crewBookings: crewBookings, accountBookings: accountBookings, nowMs: nowMs,
            pack: configuration.rulePack, settings: configuration.visitRules,
            travelSeconds: { configuration.travelSeconds($0, $1) })
        return VisitJudgement(collectors: collectors, agencies: agencies, violations: violations)
    }

    /// Validates a crew list: 1-10 distinct collector ids (too few is the `crew-size`
    /// violation, not a malformed request).
    static func validateCrew(_ crew: [String], field: String = "crew_collector_ids", required: Bool = true) throws {
        if crew.isEmpty {
            if required { throw RPCError.invalidArgument(field, "required") }
            return
        }
        guard crew.count <= 10 else { throw RPCError.invalidArgument(field, "at most 10 collectors") }
        var seen: [String: Int] = [:]
        for (index, member) in crew.enumerated() {
            try Validate.resourceID(member, field: "\(field)[\(index)]", prefix: "col")
            if let earlier = seen[member] {
                throw RPCError.invalidArgument("\(field)[\(index)]", "duplicate of \(field)[\(earlier)]")
            }
            seen[member] = index
        }
    }

    /// Validates a window: both instants set, end after start.
    static func validateWindow(startMs: Int64, endMs: Int64, startField: String = "window_start_ms", endField: String = "window_end_ms") throws {
        _ = try Validate.instantMs(startMs, field: startField, required: true)
        _ = try Validate.instantMs(endMs, field: endField, required: true)
        guard endMs > startMs else { throw RPCError.invalidArgument(endField, "must be after \(startField)") }
    }

    /// The debtor's request for a window as a booking request carries it (`debtor_request`,
    /// and the superseded `debtor_requested_window`), checked and stamped with who recorded
    /// it; nil when the debtor did not ask for the window. An exception to `contact-hours`
    /// must carry its evidence: the flag alone is INVALID_ARGUMENT, an incomplete request
    /// INVALID_ARGUMENT naming the field, and a request from a role the rule pack does not
    /// trust with it PERMISSION_DENIED.
    static func debtorRequest(
        _ request: SchedulingV1.DebtorRequestedWindow?, flag: Bool, caller: Caller, nowMs: Int64, pack: RulePack
    ) throws -> SchedulingV1.DebtorRequestedWindow? {
        guard var request else {
            if flag {
                throw RPCError.invalidArgument(
                    "debtor_request", "required with debtor_requested_window: the debtor's request on record (channel, requested_ms, reference)")
            }
            return nil
        }
        switch request.channel {
        case .sms, .phone, .visit: break
        case .unrecognized(let value): throw RPCError.invalidArgument("debtor_request.channel", "unknown value \(value)")
        default: throw RPCError.invalidArgument("debtor_request.channel", "required")
        }
        _ = try Validate.instantMs(request.requestedMs, field: "debtor_request.requested_ms", required: true)
        guard request.requestedMs <= nowMs else {
            throw RPCError.invalidArgument("debtor_request.requested_ms", "must not be after now")
        }
        _ = try Validate.text(request.reference, field: "debtor_request.reference", min: 1, max: 128)
        let actor = caller.actor
        guard pack.trustsDebtorRequest(from: actor.role) else {
            let trusted = pack.debtorRequestTrustedRoles.map(RulePack.roleName).joined(separator: ", ")
            throw RPCError.permissionDenied(
                "debtor_request: rule pack \(pack.id) accepts a debtor's request only from \(trusted.isEmpty ? "no role" : trusted), not from role \(caller.role.rawValue)")
        }
        request.recordedBy = actor
        request.recordedMs = nowMs
        return request
    }

    /// CheckCompliance: the dry run of a booking, or the check-in re-check of a booked visit.
    func checkCompliance(_ request: SchedulingV1.CheckComplianceRequest, _ context: ServerContext) async throws -> SchedulingV1.CheckComplianceResponse {
        let scope = try context.requireScope()
        let caller = try context.requireCaller()
        let now = clock.nowMs()
        let store = self.store
        let configuration = self.configuration
        var response = SchedulingV1.CheckComplianceResponse(
            rulePackId: configuration.rulePack.id, rulePackVersion: configuration.rulePack.version, checkedMs: now)

        switch request.checkPoint {
        case .checkIn:
            try Validate.resourceID(request.appointmentId, field: "appointment_id", prefix: "apt")
            if !request.accountId.isEmpty { try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc") }
            try Self.validateCrew(request.crewCollectorIds, required: false)
            if request.windowStartMs != 0 || request.windowEndMs != 0 {
                try Self.validateWindow(startMs: request.windowStartMs, endMs: request.windowEndMs)
            }
            let appointmentID = request.appointmentId
            let booked = try await store.database.read { db in
                let appointment = try Self.visibleAppointment(db, store, id: appointmentID, scope: scope)
                return try Self.withDeliveries(db, appointment)
            }
            guard request.accountId.isEmpty || request.accountId == booked.accountId else {
                throw RPCError.invalidArgument("account_id", "is not the account of appointment \(booked.id)")
            }
            guard booked.state == .notified || booked.state == .confirmed else {
                throw RPCError.refused(rule: RuleID.appointmentState,
                                       "appointment \(booked.id) is \(booked.state.protoName ?? "not bookable"); only NOTIFIED or CONFIRMED appointments are visited",
                                       subjectID: booked.id)
            }
            let account = try await accounts.account(booked.accountId)
            let visit = ProposedVisit(
                crew: request.crewCollectorIds.isEmpty ? booked.crewCollectorIds : request.crewCollectorIds,
                windowStartMs: request.windowStartMs == 0 ? booked.windowStartMs : request.windowStartMs,
                windowEndMs: request.windowEndMs == 0 ? booked.windowEndMs : request.windowEndMs,
                debtorRequest: booked.debtorRequest,
                checkPoint: .checkIn(noticeDeliveredMs: Self.announcedMs(booked)))
            let judgement = try await store.database.read { db in
                try Self.judge(db, store, visit: visit, account: account, excluding: appointmentID, scope: scope,
                               nowMs: now, configuration: configuration)
            }
            response.violations = judgement.violations
            response.debtorTimeZone = account.timeZoneID

        case .booking, .unspecified, .unrecognized:
            if case .unrecognized = request.checkPoint {
                throw RPCError.invalidArgument("check_point", "unknown value \(request.checkPoint.rawValue)")
            }
            try Validate.resourceID(request.accountId, field: "account_id", prefix: "acc")
            try Self.validateCrew(request.crewCollectorIds)
            try Self.validateWindow(startMs: request.windowStartMs, endMs: request.windowEndMs)
            let debtorRequest = try Self.debtorRequest(request.debtorRequest, flag: request.debtorRequestedWindow, caller: caller,
                                                       nowMs: now, pack: configuration.rulePack)
            let excluding = request.appointmentId.isEmpty ? nil : request.appointmentId
            if let excluding {
                try Validate.resourceID(excluding, field: "appointment_id", prefix: "apt")
                _ = try await store.database.read { db in try Self.visibleAppointment(db, store, id: excluding, scope: scope) }
            }
            let account = try await accounts.account(request.accountId)
            let visit = ProposedVisit(crew: request.crewCollectorIds, windowStartMs: request.windowStartMs,
                                      windowEndMs: request.windowEndMs, debtorRequest: debtorRequest)
            let judgement = try await store.database.read { db in
                try Self.judge(db, store, visit: visit, account: account, excluding: excluding, scope: scope,
                               nowMs: now, configuration: configuration)
            }
            response.violations = judgement.violations
            response.debtorTimeZone = account.timeZoneID
        }
        response.compliant = response.violations.isEmpty
        return response
    }

    /// When the notice announcing the appointment's current window was delivered: the
    /// delivery of its latest BOOKED or RESCHEDULED notice; nil when not delivered.
    static func announcedMs(_ appointment: SchedulingV1.Appointment) -> Int64? {
        guard let latest = appointment.notices.last(where: { $0.kind == .booked || $0.kind == .rescheduled }),
              let delivery = latest.delivery, delivery.status == .delivered else { return nil }
        return delivery.deliveredMs
    }
}
