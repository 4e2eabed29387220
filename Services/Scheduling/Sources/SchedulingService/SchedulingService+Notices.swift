import Compliance
import Foundation
import Logging
import Models
import Outbox
import RPC
import RPCWire
import ServiceKit
import ServiceLifecycle
import Storage
import Validation

extension SchedulingService {
    /// Writes a customer notice for the appointment's current window and crew to the outbox
    /// (same transaction as the change) and lists it on the appointment. The delivered
    /// payload is the notice in the proto3 JSON mapping without `delivery`.
    static func writeNotice(
        _ db: SQLSession, kind: SchedulingV1.NoticeKind, for appointment: inout SchedulingV1.Appointment,
        judgement: VisitJudgement, nowMs: Int64, configuration: SchedulingConfiguration
    ) throws {
        let zone = TimeZone(identifier: appointment.debtorTimeZone) ?? .gmt
        let notice = SchedulingV1.CustomerNotice(
            id: IDGenerator.make(prefix: "ntc", nowMs: nowMs), kind: kind, appointmentId: appointment.id,
            accountId: appointment.accountId, debtorId: appointment.debtorId, windowStartMs: appointment.windowStartMs,
            windowEndMs: appointment.windowEndMs, debtorTimeZone: appointment.debtorTimeZone,
            localWindowText: localWindowText(startMs: appointment.windowStartMs, endMs: appointment.windowEndMs, zone: zone),
            purpose: appointment.purpose,
            purposeText: appointment.purposeText.isEmpty ? defaultPurposeText(appointment.purpose) : appointment.purposeText,
            collectorNames: appointment.crewCollectorIds.map { judgement.collectors[$0]?.fullName ?? $0 },
            agencyName: judgement.agencies[appointment.agencyId]?.displayName ?? appointment.agencyId,
            complaintInstructions: configuration.complaintInstructions, createdMs: nowMs,
            debtorRequest: appointment.debtorRequest.map { request in
                // The debtor sees their request as recorded, not who recorded it.
                SchedulingV1.DebtorRequestedWindow(channel: request.channel, requestedMs: request.requestedMs, reference: request.reference)
            })
        try Outbox.enqueue(db, OutboxMessage(id: notice.id, topic: noticeTopic, payload: Array(notice.jsonText().utf8), createdMs: nowMs),
                           nowMs: nowMs)
        var listed = notice
        listed.delivery = TypeV1.Delivery(status: .pending, nextAttemptMs: nowMs)
        appointment.notices.append(listed)
    }

    /// "2026-03-05 14:00-16:00 (Asia/Shanghai)"; a window ending on a later day shows both dates.
    static func localWindowText(startMs: Int64, endMs: Int64, zone: TimeZone) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        let start = formatter.string(from: Date(timeIntervalSince1970: Double(startMs) / 1000))
        let end = formatter.string(from: Date(timeIntervalSince1970: Double(endMs) / 1000))
        let sameDay = start.prefix(10) == end.prefix(10)
        return "\(start)-\(sameDay ? String(end.suffix(5)) : end) (\(zone.identifier))"
    }

    static func defaultPurposeText(_ purpose: SchedulingV1.VisitPurpose) -> String {
        switch purpose {
        case .discussRepayment: "Discuss the overdue amount and a way to repay it / 沟通逾期欠款及还款方式"
        case .followUpPromise: "Follow up your promise to pay / 跟进您的还款承诺"
        case .followUpPlan: "Follow up your repayment plan / 跟进您的还款计划"
        case .verifyCircumstances: "Understand your circumstances and ability to pay / 了解您的实际情况与还款能力"
        default: ""
        }
    }

    /// The outbox's `onDelivered` for customer notices, run in the transaction that marks the
    /// notice delivered: the appointment's current BOOKED or RESCHEDULED notice moves it from
    /// PROPOSED to NOTIFIED. Older notices (superseded by a reschedule) and cancellation
    /// notices change nothing.
    public func noticeDelivered(_ db: SQLSession, message: OutboxMessage, deliveredMs: Int64) throws {
        guard message.topic == Self.noticeTopic else { return }
        let notice = try SchedulingV1.CustomerNotice(jsonText: String(decoding: message.payload, as: UTF8.self))
        guard var appointment = try store.appointment(db, id: notice.appointmentId) else { return }
        guard let current = appointment.notices.last(where: { $0.kind == .booked || $0.kind == .rescheduled }),
              current.id == notice.id,
              let next = AppointmentTransitions.next(appointment.state, on: .noticeDelivered) else { return }
        appointment.state = next
        appointment.version += 1
        appointment.updatedMs = deliveredMs
        try store.update(db, appointment: appointment)
        try store.publish(db, appointment, .notified, nowMs: deliveredMs)
    }
}

/// Marks NOTIFIED and CONFIRMED appointments MISSED once their window ended more than the
/// configured grace ago without a completion (scheduling.proto CompleteAppointment). Runs
/// beside the server; each pass handles a bounded batch.
public struct MissedAppointmentSweep: Service {
    let database: SQLDatabase
    let graceMs: Int64
    let clock: ServiceClock
    let logger: Logger
    let interval: Duration

    public init(database: SQLDatabase, graceMinutes: Int, clock: ServiceClock, logger: Logger, interval: Duration = .seconds(60)) {
        self.database = database
        self.graceMs = Int64(graceMinutes) * 60_000
        self.clock = clock
        self.logger = logger
        self.interval = interval
    }

    /// One pass; returns how many appointments became MISSED.
    @discardableResult
    public func sweep() async throws -> Int {
        let now = clock.nowMs()
        let graceMs = self.graceMs
        let store = SchedulingStore(database: database)
        return try await database.write { db in
            var count = 0
            for id in try store.overdue(db, endedBeforeMs: now - graceMs, limit: 500) {
                guard var appointment = try store.appointment(db, id: id),
                      let next = AppointmentTransitions.next(appointment.state, on: .miss) else { continue }
                appointment.state = next
                appointment.version += 1
                appointment.updatedMs = now
                try store.update(db, appointment: appointment)
                try store.publish(db, appointment, .missed, nowMs: now)
                count += 1
            }
            return count
        }
    }

    public func run() async throws {
        await runPeriodically(every: interval, exclusive: ExclusiveJob(database: database, job: "missed-appointments", clock: clock),
                              logger: logger, done: "appointments missed", failed: "missed-appointment sweep failed") {
            try await sweep()
        }
    }
}
