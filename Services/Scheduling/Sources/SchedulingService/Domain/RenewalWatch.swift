import Compliance
import Models
import Validation

/// What will soon stop an agency's bookings (scheduling.proto ListExpiring): its licence
/// (`agency-licence`), its inspection falling due (`agency-inspection`) and its collectors'
/// certifications (`collector-certification`), each with the last day a visit may be booked —
/// the same days `VisitChecks` refuses after.
public enum RenewalWatch {
    /// The items of `agencies` (those not EXITED) and of `collectors` (those of such an agency)
    /// whose last valid day is on or before `horizon` (past ones included), sorted by
    /// ``order(_:_:)``. `inspectionValidityMonths` is the pack's inspection period; nil = the
    /// pack requires no inspection, and no inspection item is listed.
    public static func items(
        agencies: [SchedulingV1.Agency], collectors: [SchedulingV1.Collector], today: CivilDate, horizon: CivilDate,
        inspectionValidityMonths: Int?
    ) -> [SchedulingV1.ExpiringItem] {
        var items: [SchedulingV1.ExpiringItem] = []
        var watched: Set<String> = []
        for agency in agencies where agency.status != .exited {
            watched.insert(agency.id)
            if let expiry = CivilDate(agency.licenceExpiryDate ?? TypeV1.Date()), expiry <= horizon {
                items.append(item(.agencyLicence, rule: .agencyLicence, resource: agency.id, agency: agency.id,
                                  name: agency.displayName, reference: agency.licenceNumber, lastValid: expiry, today: today,
                                  what: "licence \(agency.licenceNumber) of agency \(agency.id)"))
            }
            if let months = inspectionValidityMonths, let inspected = CivilDate(agency.lastInspectionDate ?? TypeV1.Date()) {
                let validUntil = inspected.adding(months: months)
                if validUntil <= horizon {
                    items.append(item(.agencyInspection, rule: .agencyInspection, resource: agency.id, agency: agency.id,
                                      name: agency.displayName, reference: inspected.description, lastValid: validUntil,
                                      today: today, what: "inspection of agency \(agency.id) of \(inspected)"))
                }
            }
        }
        for collector in collectors where watched.contains(collector.agencyId) {
            if let expiry = CivilDate(collector.certificationExpiryDate ?? TypeV1.Date()), expiry <= horizon {
                items.append(item(.collectorCertification, rule: .collectorCertification, resource: collector.id,
                                  agency: collector.agencyId, name: collector.fullName, reference: collector.certificationNumber,
                                  lastValid: expiry, today: today,
                                  what: "certification \(collector.certificationNumber) of collector \(collector.id)"))
            }
        }
        return items.sorted(by: order)
    }

    /// The list's order: last valid day, then kind, then resource id.
    public static func order(_ a: SchedulingV1.ExpiringItem, _ b: SchedulingV1.ExpiringItem) -> Bool {
        key(a) < key(b)
    }

    /// The sort key of an item, as its page token carries it: (day number of the last valid
    /// day, kind, resource id).
    static func key(_ item: SchedulingV1.ExpiringItem) -> (Int, Int32, String) {
        (CivilDate(item.lastValidDate ?? TypeV1.Date())?.dayNumber ?? 0, item.kind.rawValue, item.resourceId)
    }

    private static func item(
        _ kind: SchedulingV1.ExpiryKind, rule: RuleID, resource: String, agency: String, name: String, reference: String,
        lastValid: CivilDate, today: CivilDate, what: String
    ) -> SchedulingV1.ExpiringItem {
        let daysLeft = lastValid.days(since: today)
        let when = switch daysLeft {
        case 0...: "valid until \(lastValid) (\(daysLeft) day\(daysLeft == 1 ? "" : "s") left)"
        default: "valid until \(lastValid), \(-daysLeft) day\(daysLeft == -1 ? "" : "s") ago"
        }
        return SchedulingV1.ExpiringItem(
            kind: kind, resourceId: resource, agencyId: agency, name: name, reference: reference, lastValidDate: lastValid.proto,
            daysLeft: Int32(clamping: daysLeft), ruleId: rule.rawValue, detail: "\(what) \(when); bookings after it fail \(rule.rawValue)")
    }
}
