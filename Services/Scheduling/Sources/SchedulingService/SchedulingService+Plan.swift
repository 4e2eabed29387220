import Compliance
import Crypto
import Foundation
import Models
import NIOPosix
import RPC
import RPCWire
import RoutePlanner
import ServiceKit
import Storage
import Validation

/// One crew the day planner routes: its members, agency, depot, shift and capacity.
struct PlannedCrew {
    var members: [String]
    var agencyID: String
    var home: TypeV1.GeoPoint
    var shiftStartMs: Int64
    var shiftEndMs: Int64
    var capacity: Int
}

extension SchedulingService {
    func planDay(_ request: SchedulingV1.PlanDayRequest, _ context: ServerContext) async throws -> SchedulingV1.PlanDayResponse {
        try Validate.regionCode(request.regionCode, field: "region_code")
        let zoneID = request.timeZone.isEmpty ? configuration.defaultTimeZone : request.timeZone
        let zone = try Validate.timeZone(zoneID, field: "time_zone")
        let date = try Validate.date(request.date, field: "date")
        let now = clock.nowMs()
        let today = CivilDate.today(in: zone, nowMs: now)
        guard date >= today else { throw RPCError.invalidArgument("date", "must be today (\(today)) or later") }
        // An agency manager plans its own agency's crews and accounts, whatever it asked for.
        let scope = try context.requireScope()
        let agency = try scope.agency(requested: request.agencyId)
        if !agency.isEmpty && agency == request.agencyId {
            try Validate.resourceID(agency, field: "agency_id", prefix: "agy")
        }
        let agencyID: String? = agency.isEmpty ? nil : agency
        let options = request.options ?? SchedulingV1.PlanDayOptions()
        let maxCandidates = options.maxCandidates <= 0 ? 200 : min(Int(options.maxCandidates), 5000)
        let timeLimit = options.timeLimitSeconds <= 0 ? 2 : min(Int(options.timeLimitSeconds), 60)
        var costPerKm = configuration.travelCostPerKmMinor
        if let cost = options.travelCostPerKm {
            costPerKm = try Validate.money(cost, field: "options.travel_cost_per_km", currency: configuration.currency, allowZero: true)
        }

        let dayStart = Self.midnight(of: date, in: zone)
        let dayEnd = Self.midnight(of: date.adding(days: 1), in: zone)
        let states: [SchedulingV1.AppointmentState] = options.includeUnconfirmed ? [.notified, .confirmed] : [.confirmed]
        let store = self.store
        let region = request.regionCode
        let agencyFilter = agencyID
        let day = try await store.database.read { db in
            try Self.loadDay(db, store, region: region, agencyID: agencyFilter, dayStartMs: dayStart, dayEndMs: dayEnd, states: states)
        }
        var candidates: [AccountsV1.VisitCandidate] = []
        var deferred: [AccountsV1.DeferredVisitCandidate] = []
        if options.fillWithCandidates {
            let booked = Set(day.allLive.map(\.accountId))
            // Accounts answers scheduling (role service) with the region's candidates placed with
            // the planned agency (every candidate when no agency is planned); the caller's scope
            // decides which of them it may plan.
            let listed = try await accounts.candidates(region: region, agencyID: agencyID ?? "", limit: maxCandidates)
            candidates = listed.candidates.filter { !booked.contains($0.accountId) && scope.sees(agencyID: $0.assignedAgencyId) }
            deferred = listed.deferred.filter { !booked.contains($0.accountId) && scope.sees(agencyID: $0.assignedAgencyId) }
        }
        let candidateAccounts = candidates.map(\.accountId)
        let candidateBookings = try await store.database.read { db in
            var result: [String: [BookedVisit]] = [:]
            for account in candidateAccounts {
                result[account] = try store.liveBookings(db, account: account, fromMs: dayStart - 7 * 86_400_000,
                                                         toMs: dayEnd + 7 * 86_400_000, excluding: nil)
            }
            return result
        }

        var planner = DayPlanner(
            configuration: configuration, date: date, zone: zone, dayStartMs: dayStart, nowMs: now, costPerKmMinor: costPerKm,
            fill: options.fillWithCandidates)
        let problem = planner.build(day: day, candidates: candidates, deferred: deferred, candidateBookings: candidateBookings)
        let seed = try Self.planSeed(request)
        let started = ContinuousClock.now
        let customers = problem.customers.count
        let solution = try await NIOThreadPool.singleton.runIfActive {
            VRPTWSolver.solve(problem, timeLimit: .seconds(timeLimit), seed: seed,
                              maxIterations: customers == 0 ? 0 : max(2_000, 300 * customers))
        }
        let elapsed = ContinuousClock.now - started
        var response = planner.response(problem: problem, solution: solution)
        response.regionCode = region
        response.date = date.proto
        response.timeZone = zone.identifier
        response.solveMillis = Int32(clamping: elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        response.computedMs = now
        response.rulePackId = configuration.rulePack.id
        response.rulePackVersion = configuration.rulePack.version
        return response
    }

    /// The solver's seed: the first eight bytes of SHA-256 over the request as sent. The same
    /// request gives the same plan in every process and after a restart (with the same data,
    /// while the solver reaches its iteration budget before its time limit); Swift's
    /// `hashValue`, used before, is randomised per process.
    static func planSeed(_ request: SchedulingV1.PlanDayRequest) throws -> UInt64 {
        let digest = SHA256.hash(data: try request.encode())
        return digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// The instant of local midnight starting `date` in `zone`.
    static func midnight(of date: CivilDate, in zone: TimeZone) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let components = DateComponents(year: date.year, month: date.month, day: date.day)
        let instant = calendar.date(from: components) ?? Date(timeIntervalSince1970: 0)
        return Int64((instant.timeIntervalSince1970 * 1000).rounded())
    }

    /// What the store holds about the planned day.
    struct PlanningDay: Sendable {
        /// Appointments to route (in the requested states), by window start.
        var appointments: [SchedulingV1.Appointment]
        /// Every live appointment of the region that day (busy collectors, booked accounts).
        var allLive: [SchedulingV1.Appointment]
        /// Collectors of the region (agency filter applied) and every booked crew member.
        var collectors: [String: SchedulingV1.Collector]
        var agencies: [String: SchedulingV1.Agency]
    }

    static func loadDay(
        _ db: SQLSession, _ store: SchedulingStore, region: String, agencyID: String?, dayStartMs: Int64, dayEndMs: Int64,
        states: [SchedulingV1.AppointmentState]
    ) throws -> PlanningDay {
        var filter = AppointmentFilter()
        filter.regionCode = region
        filter.agencyID = agencyID ?? ""
        filter.windowFromMs = dayStartMs
        filter.windowToMs = dayEndMs
        filter.states = SchedulingStore.liveStates
        var live: [SchedulingV1.Appointment] = []
        var after: (startMs: Int64, id: String)? = nil
        while true {
            let page = try store.list(db, filter: filter, after: after, limit: 1000)
            live += page
            guard page.count == 1000, let last = page.last else { break }
            after = (last.windowStartMs, last.id)
        }
        var collectors: [String: SchedulingV1.Collector] = [:]
        for collector in try store.collectors(db, region: region, agencyID: agencyID) { collectors[collector.id] = collector }
        for appointment in live {
            for member in appointment.crewCollectorIds where collectors[member] == nil {
                collectors[member] = try store.collector(db, id: member)
            }
        }
        let agencies = try store.agencies(db, ids: collectors.values.map(\.agencyId))
        let routed = live.filter { states.contains($0.state) }
        return PlanningDay(appointments: routed, allLive: live, collectors: collectors, agencies: agencies)
    }
}

/// Turns a planning day into a `VRPTWProblem` (crews as vehicles, booked appointments pinned
/// to their crew, candidates as optional prize-collecting stops) and the solution back into
/// routes and reasons. Times in the problem are seconds after the day's local midnight;
/// distances are road metres; money is minor units.
struct DayPlanner {
    let configuration: SchedulingConfiguration
    let date: CivilDate
    let zone: TimeZone
    let dayStartMs: Int64
    let nowMs: Int64
    let costPerKmMinor: Int64
    let fill: Bool

    /// What each customer node stands for.
    enum Target {
        case appointment(SchedulingV1.Appointment)
        case candidate(AccountsV1.VisitCandidate)
    }

    var crews: [PlannedCrew] = []
    var targets: [Int: Target] = [:]
    var unassigned: [SchedulingV1.UnassignedItem] = []
    /// Appointments in scope (routed or not), for `feasible`.
    var appointmentsInScope = 0

    init(configuration: SchedulingConfiguration, date: CivilDate, zone: TimeZone, dayStartMs: Int64, nowMs: Int64,
         costPerKmMinor: Int64, fill: Bool) {
        self.configuration = configuration
        self.date = date
        self.zone = zone
        self.dayStartMs = dayStartMs
        self.nowMs = nowMs
        self.costPerKmMinor = costPerKmMinor
        self.fill = fill
    }

    var pack: RulePack { configuration.rulePack }
    var rules: VisitRules { VisitRules(pack: configuration.rulePack, settings: configuration.visitRules) }
    var serviceSeconds: Double { Double(configuration.visitMinutes * 60) }

    func seconds(_ ms: Int64) -> Double { Double(ms - dayStartMs) / 1000 }
    func instant(_ seconds: Double) -> Int64 { dayStartMs + Int64((seconds * 1000).rounded()) }

    /// The crew of `members` on the planned day, or nil when a member is unknown or has no
    /// shift; the shift is the intersection of the members' shifts.
    func crew(_ members: [String], collectors: [String: SchedulingV1.Collector]) -> PlannedCrew? {
        let records = members.compactMap { collectors[$0] }
        guard records.count == members.count, let first = records.first, let home = first.homeLocation else { return nil }
        var start = Int64.min
        var end = Int64.max
        for record in records {
            guard let shift = Shift(record), let memberZone = TimeZone(identifier: record.timeZone) else { return nil }
            let midnight = SchedulingService.midnight(of: date, in: memberZone)
            start = max(start, midnight + Int64(shift.startMinutes) * 60_000)
            end = min(end, midnight + Int64(shift.endMinutes) * 60_000)
        }
        return PlannedCrew(members: members, agencyID: first.agencyId, home: home, shiftStartMs: start, shiftEndMs: end,
                           capacity: records.map { Int($0.dailyCapacity) }.min() ?? 0)
    }

    /// The violations of the crew's credentials (`VisitChecks.credentials`) of `members`
    /// visiting on `visitDate` in `region`: what a crew must still pass on the day it visits.
    func credentialViolations(_ members: [String], visitDate: CivilDate, region: String,
                              day: SchedulingService.PlanningDay) -> [TypeV1.Violation] {
        let crew = CrewFacts(crew: members, collectors: day.collectors, agencies: day.agencies, visitDate: visitDate, regionCode: region)
        return VisitChecks.credentials.violations(crew, under: rules)
    }

    mutating func build(day: SchedulingService.PlanningDay, candidates: [AccountsV1.VisitCandidate],
                        deferred: [AccountsV1.DeferredVisitCandidate] = [],
                        candidateBookings: [String: [BookedVisit]]) -> VRPTWProblem {
        // Booked crews first, in order of their first appointment.
        var crewIndex: [[String]: Int] = [:]
        var appointmentCrew: [(SchedulingV1.Appointment, Int)] = []
        for appointment in day.appointments {
            appointmentsInScope += 1
            guard appointment.address?.location != nil else {
                unassigned.append(item(appointment: appointment.id, .noLocation, "the debtor's address has no coordinates"))
                continue
            }
            let members = appointment.crewCollectorIds
            // Credentials are judged on the debtor-local date of the booked window's start.
            let appointmentZone = TimeZone(identifier: appointment.debtorTimeZone) ?? zone
            let visitDate = CivilDate.today(in: appointmentZone, nowMs: appointment.windowStartMs)
            let violations = credentialViolations(members, visitDate: visitDate, region: appointment.regionCode, day: day)
            guard violations.isEmpty else {
                var entry = item(appointment: appointment.id, .crewNotCompliant,
                                 "the booked crew no longer passes compliance: \(violations.map(\.ruleId).joined(separator: ", "))")
                entry.violations = violations
                unassigned.append(entry)
                continue
            }
            if let index = crewIndex[members] {
                appointmentCrew.append((appointment, index))
            } else if let planned = crew(members, collectors: day.collectors) {
                crewIndex[members] = crews.count
                appointmentCrew.append((appointment, crews.count))
                crews.append(planned)
            } else {
                unassigned.append(item(appointment: appointment.id, .noCrewAvailable, "a crew member's record or shift is missing"))
            }
        }
        // Free collectors grouped into extra crews of the pack's size, per agency.
        if fill {
            let busy = Set(day.allLive.flatMap(\.crewCollectorIds))
            let free = day.collectors.values.filter { $0.status == .active && !busy.contains($0.id) && $0.homeLocation != nil }
            let byAgency = Dictionary(grouping: free, by: \.agencyId)
            for agency in byAgency.keys.sorted() {
                let members = byAgency[agency]!.map(\.id).sorted()
                var index = 0
                let size = max(1, pack.crewSize)
                while index + size <= members.count {
                    let group = Array(members[index..<index + size])
                    index += size
                    guard credentialViolations(group, visitDate: date, region: day.collectors[group[0]]?.regionCode ?? "", day: day).isEmpty,
                          let planned = crew(group, collectors: day.collectors), planned.shiftEndMs > planned.shiftStartMs else { continue }
                    crews.append(planned)
                }
            }
        }

        var nodes: [VRPTWNode] = crews.map { VRPTWNode(x: $0.home.latitude, y: $0.home.longitude) }
        let vehicles = crews.enumerated().map { index, crew in
            Vehicle(startNode: index, shiftStart: seconds(crew.shiftStartMs), shiftEnd: seconds(crew.shiftEndMs), capacity: crew.capacity)
        }
        for (appointment, vehicle) in appointmentCrew {
            let location = appointment.address!.location!
            let ready = seconds(appointment.windowStartMs)
            let due = max(ready, seconds(appointment.windowEndMs) - serviceSeconds)
            targets[nodes.count] = .appointment(appointment)
            nodes.append(VRPTWNode(x: location.latitude, y: location.longitude, demand: 1, ready: ready, due: due,
                                   serviceTime: serviceSeconds, isRequired: true, vehicle: vehicle))
        }
        // Accounts accounts defers for now (a pending promise, a kept plan, a recent visit).
        for account in deferred {
            let until = account.candidateFromDate.flatMap(CivilDate.init).map { "until \($0)" } ?? "while its repayment plan is kept"
            var entry = item(account: account.accountId, .deferred,
                             "not a visit candidate \(until): \(account.reasons.map(\.ruleId).joined(separator: ", "))")
            entry.violations = account.reasons
            unassigned.append(entry)
        }
        for candidate in candidates {
            guard let location = candidate.address?.location else {
                unassigned.append(item(account: candidate.accountId, .noLocation, "the debtor's address has no coordinates"))
                continue
            }
            let candidateZone = TimeZone(identifier: candidate.timeZone) ?? zone
            let contact = pack.contactWindow(on: date, in: candidateZone)
            let earliest = earliestStart(contact)
            let latestStart = contact.endMs - Int64(serviceSeconds * 1000)
            var violations: [TypeV1.Violation] = []
            if earliest > latestStart {
                violations.append(RuleID.advanceNotice.violation(
                    quoting: pack, subject: candidate.accountId,
                    "a visit on \(date) cannot be announced \(pack.advanceNoticeHours) h ahead inside \(pack.contactWindowText)"))
            }
            // The caps as of the earliest start the plan could give the visit.
            let visits = AccountVisitsFacts(accountID: candidate.accountId, startMs: earliest, zone: candidateZone,
                                            bookings: candidateBookings[candidate.accountId] ?? [])
            violations += VisitChecks.caps.violations(visits, under: rules)
            guard violations.isEmpty else {
                var entry = item(account: candidate.accountId, .notCompliant,
                                 "a visit would not pass: \(violations.map(\.ruleId).joined(separator: ", "))")
                entry.violations = violations
                unassigned.append(entry)
                continue
            }
            targets[nodes.count] = .candidate(candidate)
            nodes.append(VRPTWNode(x: location.latitude, y: location.longitude, demand: 1, ready: seconds(earliest),
                                   due: seconds(latestStart), serviceTime: serviceSeconds,
                                   prize: Double(candidate.expectedRecovery?.amountMinor ?? 0), isRequired: false))
        }
        return VRPTWProblem(
            nodes: nodes, vehicles: vehicles,
            travel: .haversine(roadFactor: configuration.roadFactor, speedMetersPerSecond: configuration.speedMetersPerSecond),
            costPerDistance: Double(costPerKmMinor) / 1000)
    }

    static func roundUpToMinute(_ ms: Int64) -> Int64 { (ms + 59_999) / 60_000 * 60_000 }

    /// The earliest lawful start of a visit inside `contact`: not before the window opens, and
    /// announced at least the pack's notice period ahead (from now), on a whole minute.
    func earliestStart(_ contact: ContactWindow) -> Int64 {
        Self.roundUpToMinute(max(contact.startMs, nowMs + Int64(pack.advanceNoticeHours) * 3_600_000))
    }

    func item(appointment: String, _ reason: SchedulingV1.UnassignedReason, _ detail: String) -> SchedulingV1.UnassignedItem {
        SchedulingV1.UnassignedItem(reason: reason, detail: detail, target: .appointmentId(appointment))
    }

    func item(account: String, _ reason: SchedulingV1.UnassignedReason, _ detail: String) -> SchedulingV1.UnassignedItem {
        SchedulingV1.UnassignedItem(reason: reason, detail: detail, target: .accountId(account))
    }

    func money(_ minor: Int64) -> TypeV1.Money { TypeV1.Money(amountMinor: minor, currencyCode: configuration.currency) }

    func response(problem: VRPTWProblem, solution: VRPTWSolution) -> SchedulingV1.PlanDayResponse {
        var response = SchedulingV1.PlanDayResponse()
        var totals = SchedulingV1.PlanTotals()
        var totalRecovery: Int64 = 0
        var totalCost: Int64 = 0
        for route in solution.routes {
            let crew = crews[route.vehicle]
            var out = SchedulingV1.Route(crewCollectorIds: crew.members, agencyId: crew.agencyID, startLocation: crew.home,
                                         startMs: instant(route.departure), endMs: instant(route.returnTime),
                                         capacity: Int32(crew.capacity))
            var previous = problem.vehicles[route.vehicle].startNode
            var travelSeconds = 0.0
            var recovery: Int64 = 0
            for (position, node) in route.nodes.enumerated() {
                let distance = problem.distance(previous, node)
                let travel = problem.travelTime(previous, node)
                travelSeconds += travel
                var stop = SchedulingV1.Stop(
                    sequence: Int32(position + 1), location: TypeV1.GeoPoint(latitude: problem.nodes[node].x, longitude: problem.nodes[node].y),
                    etaMs: instant(route.arrivals[position]), serviceStartMs: instant(route.serviceStarts[position]),
                    departureMs: instant(route.serviceStarts[position] + problem.nodes[node].serviceTime),
                    waitSeconds: Int32(max(0, (route.serviceStarts[position] - route.arrivals[position]).rounded())),
                    serviceSeconds: Int32(problem.nodes[node].serviceTime), travelDistanceMeters: Int32(distance.rounded()),
                    travelSeconds: Int32(travel.rounded(.up)))
                switch targets[node] {
                case .appointment(let appointment):
                    stop.target = .appointmentId(appointment.id)
                    stop.windowStartMs = appointment.windowStartMs
                    stop.windowEndMs = appointment.windowEndMs
                    totals.appointmentsRouted += 1
                case .candidate(let candidate):
                    stop.target = .accountId(candidate.accountId)
                    let window = suggestedWindow(serviceStartMs: stop.serviceStartMs, candidate: candidate)
                    stop.windowStartMs = window.start
                    stop.windowEndMs = window.end
                    stop.expectedRecovery = candidate.expectedRecovery
                    recovery += candidate.expectedRecovery?.amountMinor ?? 0
                    totals.candidatesRouted += 1
                case nil:
                    break
                }
                out.stops.append(stop)
                previous = node
            }
            let end = problem.vehicles[route.vehicle].endNode
            let returnDistance = problem.distance(previous, end)
            travelSeconds += problem.travelTime(previous, end)
            out.returnDistanceMeters = Int32(returnDistance.rounded())
            out.distanceMeters = Int64(route.distance.rounded())
            out.travelSeconds = Int64(travelSeconds.rounded(.up))
            let cost = Int64((route.distance / 1000 * Double(costPerKmMinor)).rounded())
            out.expectedRecovery = money(recovery)
            out.travelCost = money(cost)
            totalRecovery += recovery
            totalCost += cost
            totals.distanceMeters += out.distanceMeters
            totals.travelSeconds += out.travelSeconds
            totals.stops += Int32(out.stops.count)
            response.routes.append(out)
        }
        var unassigned = self.unassigned
        for node in solution.unassigned {
            switch targets[node.node] {
            case .appointment(let appointment):
                unassigned.append(item(appointment: appointment.id, reason(node, problem), detail(node, problem)))
            case .candidate(let candidate):
                unassigned.append(item(account: candidate.accountId, reason(node, problem), detail(node, problem)))
            case nil:
                break
            }
        }
        totals.routes = Int32(response.routes.count)
        totals.unassigned = Int32(unassigned.count)
        totals.expectedRecovery = money(totalRecovery)
        totals.travelCost = money(totalCost)
        totals.netValue = money(totalRecovery - totalCost)
        response.unassigned = unassigned
        response.totals = totals
        response.feasible = solution.verify(problem).isEmpty && Int(totals.appointmentsRouted) == appointmentsInScope
        return response
    }

    /// The window to book for a candidate stop: `suggestedWindowMinutes` starting at the
    /// service start rounded down to the half hour, never before the earliest lawful start,
    /// and inside the debtor's contact hours.
    func suggestedWindow(serviceStartMs: Int64, candidate: AccountsV1.VisitCandidate) -> (start: Int64, end: Int64) {
        let candidateZone = TimeZone(identifier: candidate.timeZone) ?? zone
        let midnight = SchedulingService.midnight(of: date, in: candidateZone)
        let contact = pack.contactWindow(on: date, in: candidateZone)
        let earliest = earliestStart(contact)
        let halfHour: Int64 = 1_800_000
        let start = min(serviceStartMs, max(earliest, (serviceStartMs - midnight) / halfHour * halfHour + midnight))
        let end = min(contact.endMs, start + Int64(configuration.suggestedWindowMinutes) * 60_000)
        return (start, max(end, serviceStartMs + Int64(serviceSeconds * 1000)))
    }

    func reason(_ node: UnassignedNode, _ problem: VRPTWProblem) -> SchedulingV1.UnassignedReason {
        if problem.vehicles.isEmpty { return .noCrewAvailable }
        switch node.reason {
        case .capacity: return .capacity
        case .unprofitable: return .notWorthTravel
        case .noVehicle: return .capacity
        case .timeWindow:
            let target = problem.nodes[node.node]
            let eligible = problem.vehicles.indices.filter { target.vehicle == nil || target.vehicle == $0 }
            let insideSomeShift = eligible.contains {
                target.ready < problem.vehicles[$0].shiftEnd && target.due + target.serviceTime > problem.vehicles[$0].shiftStart
            }
            return insideSomeShift ? .timeWindow : .outsideShift
        }
    }

    func detail(_ node: UnassignedNode, _ problem: VRPTWProblem) -> String {
        let target = problem.nodes[node.node]
        let window = "\(clock(target.ready))-\(clock(target.due + target.serviceTime))"
        switch reason(node, problem) {
        case .noCrewAvailable: return "no crew is available in the region on \(date)"
        case .capacity: return "every crew that could take window \(window) is full"
        case .notWorthTravel: return "expected recovery does not cover the extra travel"
        case .outsideShift: return "window \(window) lies outside every suitable crew's shift"
        default: return "no crew can reach it within window \(window)"
        }
    }

    /// "HH:MM" of seconds after local midnight.
    func clock(_ seconds: Double) -> String {
        RulePack.clockText(minutes: max(0, min(1440, Int(seconds / 60))))
    }
}
