import Compliance
import Models
import RoutePlanner

/// Settings of the scheduling service; every default is spelled out (docs/OPERATIONS.md
/// ("Flags and environment")).
public struct SchedulingConfiguration: Sendable {
    /// The rule pack bookings are judged against. Default cn-2026.
    public var rulePack: RulePack = RulePacks.cn2026
    /// Doorstep's own booking limits (window length, cap overrides).
    public var visitRules: VisitPolicySettings = .defaults
    /// Road distance = haversine × this (default 1.3).
    public var roadFactor: Double = 1.3
    /// Average travel speed, km/h (default 25: city traffic).
    public var speedKmh: Double = 25
    /// A NOTIFIED or CONFIRMED appointment becomes MISSED this long after its window ends
    /// without a completion (default 120 min).
    public var missedGraceMinutes: Int = 120
    /// How to complain, printed in every customer notice.
    public var complaintInstructions: String =
        "如对本次上门有任何异议，请致电客服热线 95188 或在 App「我的-投诉」提交，我们将在 15 日内答复。"
        + " To complain about this visit, call the hotline 95188 or use My > Complaints in the app."
    /// The zone PlanDay uses when the request names none (default Asia/Shanghai).
    public var defaultTimeZone: String = "Asia/Shanghai"
    /// Planned length of one visit (default 30 min).
    public var visitMinutes: Int = 30
    /// Length of the window suggested for a candidate stop (default 120 min).
    public var suggestedWindowMinutes: Int = 120
    /// Travel cost per km in minor units of `currency`, weighed against expected recovery
    /// (default 200 = CNY 2.00/km).
    public var travelCostPerKmMinor: Int64 = 200
    /// Currency of travel costs (default CNY).
    public var currency: String = "CNY"

    public init() {}
    public static let defaults = SchedulingConfiguration()

    /// Road metres between two points.
    public func roadMeters(_ a: TypeV1.GeoPoint, _ b: TypeV1.GeoPoint) -> Double {
        Geo.haversineMeters(latitude1: a.latitude, longitude1: a.longitude, latitude2: b.latitude, longitude2: b.longitude) * roadFactor
    }

    /// Travel seconds between two points (rounded up).
    public func travelSeconds(_ a: TypeV1.GeoPoint, _ b: TypeV1.GeoPoint) -> Int {
        Int((roadMeters(a, b) / speedMetersPerSecond).rounded(.up))
    }

    public var speedMetersPerSecond: Double { speedKmh / 3.6 }
}
