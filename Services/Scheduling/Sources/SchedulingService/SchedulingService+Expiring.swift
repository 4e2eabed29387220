import Foundation
import Models
import RPC
import RPCWire
import ServiceKit
import Storage
import Validation

extension SchedulingService {
    /// The most days ListExpiring looks ahead (scheduling.proto `ListExpiringRequest.within_days`).
    static let maxExpiringWithinDays: ClosedRange<Int32> = 1...365

    /// ListExpiring: the licences, inspections and certifications of the watched registry
    /// whose last valid day is at most `within_days` after today in the default zone
    /// (`RenewalWatch`), a page at a time.
    func listExpiring(_ request: SchedulingV1.ListExpiringRequest, _ context: ServerContext) async throws -> SchedulingV1.ListExpiringResponse {
        let range = Self.maxExpiringWithinDays
        guard range.contains(request.withinDays) else {
            throw RPCError.invalidArgument("within_days", request.withinDays == 0
                ? "required: how many days ahead to look (\(range.lowerBound)-\(range.upperBound))"
                : "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        if !request.agencyId.isEmpty { try Validate.resourceID(request.agencyId, field: "agency_id", prefix: "agy") }
        let pageSize = try Validate.pageSize(request.pageSize)
        var after: (Int, Int32, String)?
        if let token = try Self.expiringPageToken.decode(request.pageToken) {
            // The token's id is "<kind>:<resource id>".
            let parts = token.1.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let kind = Int32(parts[0]), let day = Int(exactly: token.0) else {
                throw RPCError.invalidArgument("page_token", "malformed; pass next_page_token unchanged")
            }
            after = (day, kind, String(parts[1]))
        }
        let zoneID = configuration.defaultTimeZone
        let today = CivilDate.today(in: TimeZone(identifier: zoneID) ?? .gmt, nowMs: clock.nowMs())
        var response = SchedulingV1.ListExpiringResponse(asOfDate: today.proto, timeZone: zoneID)
        // Results are silently restricted to what the caller may see.
        guard let narrowed = try context.requireScope().narrow(agencyID: request.agencyId, collectorID: nil) else { return response }
        let horizon = today.adding(days: Int(request.withinDays))
        let months = configuration.rulePack.inspectionValidityMonths
        let store = self.store
        let (agencies, collectors) = try await store.database.read { db in try store.watchedRegistry(db, agencyID: narrowed.agencyID) }
        let items = RenewalWatch.items(agencies: agencies, collectors: collectors, today: today, horizon: horizon,
                                       inspectionValidityMonths: months)
        let rest = after.map { after in items.filter { RenewalWatch.key($0) > after } } ?? items
        response.items = Array(rest.prefix(pageSize))
        if rest.count > pageSize, let last = response.items.last {
            let (day, kind, resource) = RenewalWatch.key(last)
            response.nextPageToken = Self.expiringPageToken.encode(ms: Int64(day), id: "\(kind):\(resource)")
        }
        return response
    }

    /// Page tokens of ListExpiring: the last item's day number and "<kind>:<resource id>".
    static let expiringPageToken = KeysetPageToken(tag: "x1")
}
