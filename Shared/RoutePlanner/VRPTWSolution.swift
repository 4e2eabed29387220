import Foundation

/// One vehicle's route in a solution.
public struct VRPTWRoute: Sendable, Hashable {
    /// Index into `VRPTWProblem.vehicles`.
    public var vehicle: Int
    /// Customers in visiting order (the vehicle's start and end bases excluded).
    public var nodes: [Int]
    /// Arrival time (ETA) at each of `nodes`.
    public var arrivals: [Double]
    /// Start of service at each of `nodes` (= max(arrival, ready)).
    public var serviceStarts: [Double]
    /// Time the vehicle leaves its start base.
    public var departure: Double
    /// Time the vehicle is back at its end base.
    public var returnTime: Double
    /// Distance driven, base to base.
    public var distance: Double
    /// Total demand of `nodes`.
    public var load: Int

    public init(
        vehicle: Int, nodes: [Int], arrivals: [Double], serviceStarts: [Double], departure: Double,
        returnTime: Double, distance: Double, load: Int
    ) {
        self.vehicle = vehicle
        self.nodes = nodes
        self.arrivals = arrivals
        self.serviceStarts = serviceStarts
        self.departure = departure
        self.returnTime = returnTime
        self.distance = distance
        self.load = load
    }
}

/// Why a customer is not in any route.
public enum UnassignedReason: String, Sendable, Hashable, CaseIterable {
    /// No vehicle can reach it within its window (and get back within its shift), even
    /// with nothing else on its route.
    case timeWindow
    /// Its demand exceeds every vehicle's capacity.
    case capacity
    /// It could be served by an empty vehicle, but every vehicle is busy with other visits
    /// and it fits in no route.
    case noVehicle
    /// Optional visit whose prize does not pay for the extra travel.
    case unprofitable
}

/// A customer left out of the plan, with the reason.
public struct UnassignedNode: Sendable, Hashable {
    public var node: Int
    public var reason: UnassignedReason
    public init(node: Int, reason: UnassignedReason) {
        self.node = node
        self.reason = reason
    }
}

/// A rule broken by a solution, as found by `VRPTWSolution.verify(_:)`.
public enum VRPTWViolation: Sendable, Hashable {
    /// Route names a vehicle index outside the fleet.
    case unknownVehicle(vehicle: Int)
    /// Two routes use the same vehicle.
    case vehicleUsedTwice(vehicle: Int)
    /// Route or unassigned list names a node index outside the problem.
    case unknownNode(node: Int)
    /// A base (some vehicle's start or end) is visited as a customer.
    case baseVisited(vehicle: Int, node: Int)
    /// A customer appears more than once (in routes and/or the unassigned list).
    case duplicateNode(node: Int)
    /// A customer is neither in a route nor in the unassigned list.
    case missingNode(node: Int)
    /// Route arrays (`arrivals`, `serviceStarts`) do not have one entry per node.
    case malformedRoute(vehicle: Int)
    /// Service starts after the node's due time.
    case lateArrival(vehicle: Int, node: Int, serviceStart: Double, due: Double)
    /// Reported times are impossible: arrival before the vehicle could get there, service
    /// before arrival or before the window opens, or departure before the shift starts.
    case inconsistentSchedule(vehicle: Int, node: Int)
    /// Total demand exceeds the vehicle's capacity.
    case overCapacity(vehicle: Int, load: Int, capacity: Int)
    /// The vehicle is back at its end base after its shift end.
    case shiftEnd(vehicle: Int, returnTime: Double, shiftEnd: Double)
    /// Reported distance or load differs from the recomputed one.
    case reportedValueMismatch(vehicle: Int)
    /// A node pinned to one vehicle is served by another.
    case wrongVehicle(vehicle: Int, node: Int)
}

/// A plan: routes with ETAs, and the customers left out with reasons.
public struct VRPTWSolution: Sendable {
    /// Non-empty routes, ordered by vehicle index.
    public var routes: [VRPTWRoute]
    /// Customers in no route.
    public var unassigned: [UnassignedNode]
    /// Σ route distances.
    public var totalDistance: Double
    /// Number of non-empty routes.
    public var vehiclesUsed: Int
    /// Σ prize of served nodes − costPerDistance × totalDistance − vehicleFixedCost × vehiclesUsed
    /// (higher is better; for Solomon it is −totalDistance).
    public var objective: Double
    /// True when `verify(problem)` found no violation for the problem it was built for.
    public var isFeasible: Bool
    /// Number of search iterations run (0 for hand-built solutions).
    public var iterations: Int

    /// Builds a solution from vehicle routes, scheduling each as early as possible: the
    /// vehicle leaves its base at shift start, waits for windows to open. Infeasible routes
    /// are kept as given (`isFeasible` is then false), which is what tests of `verify` need.
    public static func make(
        problem: VRPTWProblem, routes: [(vehicle: Int, nodes: [Int])], unassigned: [UnassignedNode] = [],
        iterations: Int = 0
    ) -> VRPTWSolution {
        var built: [VRPTWRoute] = []
        var prizes = 0.0
        for (vehicle, nodes) in routes where !nodes.isEmpty {
            guard problem.vehicles.indices.contains(vehicle),
                nodes.allSatisfy({ problem.nodes.indices.contains($0) })
            else {
                // Cannot schedule against unknown indices; keep the sequence for verify to report.
                built.append(
                    VRPTWRoute(
                        vehicle: vehicle, nodes: nodes, arrivals: [], serviceStarts: [], departure: 0,
                        returnTime: 0, distance: 0, load: 0))
                continue
            }
            let v = problem.vehicles[vehicle]
            var arrivals: [Double] = []
            var starts: [Double] = []
            arrivals.reserveCapacity(nodes.count)
            starts.reserveCapacity(nodes.count)
            var prev = v.startNode
            var time = v.shiftStart
            var distance = 0.0
            var load = 0
            for n in nodes {
                let node = problem.nodes[n]
                let arrival = time + problem.travelTime(prev, n)
                let start = max(arrival, node.ready)
                arrivals.append(arrival)
                starts.append(start)
                distance += problem.distance(prev, n)
                load += node.demand
                prizes += node.prize
                time = start + node.serviceTime
                prev = n
            }
            distance += problem.distance(prev, v.endNode)
            let back = time + problem.travelTime(prev, v.endNode)
            built.append(
                VRPTWRoute(
                    vehicle: vehicle, nodes: nodes, arrivals: arrivals, serviceStarts: starts,
                    departure: v.shiftStart, returnTime: back, distance: distance, load: load))
        }
        built.sort { $0.vehicle < $1.vehicle }
        let total = built.reduce(0) { $0 + $1.distance }
        var solution = VRPTWSolution(
            routes: built, unassigned: unassigned.sorted { $0.node < $1.node }, totalDistance: total,
            vehiclesUsed: built.count,
            objective: prizes - problem.costPerDistance * total - problem.vehicleFixedCost * Double(built.count),
            isFeasible: false, iterations: iterations)
        solution.isFeasible = solution.verify(problem).isEmpty
        return solution
    }

    /// True when no required customer is unassigned.
    public func allRequiredServed(_ problem: VRPTWProblem) -> Bool {
        unassigned.allSatisfy { !problem.nodes.indices.contains($0.node) || !problem.nodes[$0.node].isRequired }
    }

    /// Checks every route independently against `problem`, using the solution's reported
    /// times and recomputing travel from the problem: each customer served at most once and
    /// accounted for (routed or unassigned), arrivals reachable, service within windows,
    /// load within capacity, return within the shift, reported distance/load correct.
    /// Returns every violation found (empty = feasible). Tolerance: 1e-6 (relative for
    /// distances).
    public func verify(_ problem: VRPTWProblem) -> [VRPTWViolation] {
        let eps = 1e-6
        var violations: [VRPTWViolation] = []
        let bases = problem.baseNodes
        var seen = [Bool](repeating: false, count: problem.nodes.count)
        var vehicleUsed = Set<Int>()

        func account(_ node: Int) -> Bool {
            guard problem.nodes.indices.contains(node) else {
                violations.append(.unknownNode(node: node))
                return false
            }
            if seen[node] { violations.append(.duplicateNode(node: node)) }
            seen[node] = true
            return true
        }

        for route in routes {
            let vi = route.vehicle
            guard problem.vehicles.indices.contains(vi) else {
                violations.append(.unknownVehicle(vehicle: vi))
                for n in route.nodes { _ = account(n) }
                continue
            }
            if !vehicleUsed.insert(vi).inserted { violations.append(.vehicleUsedTwice(vehicle: vi)) }
            var known = true
            for n in route.nodes {
                if !account(n) {
                    known = false
                } else if bases.contains(n) {
                    violations.append(.baseVisited(vehicle: vi, node: n))
                } else if let pin = problem.nodes[n].vehicle, pin != vi {
                    violations.append(.wrongVehicle(vehicle: vi, node: n))
                }
            }
            guard known else { continue }
            guard route.arrivals.count == route.nodes.count, route.serviceStarts.count == route.nodes.count
            else {
                violations.append(.malformedRoute(vehicle: vi))
                continue
            }
            let v = problem.vehicles[vi]
            if route.departure < v.shiftStart - eps {
                violations.append(.inconsistentSchedule(vehicle: vi, node: v.startNode))
            }
            var prev = v.startNode
            var time = route.departure
            var distance = 0.0
            var load = 0
            for (k, n) in route.nodes.enumerated() {
                let node = problem.nodes[n]
                let earliest = time + problem.travelTime(prev, n)
                let arrival = route.arrivals[k]
                let start = route.serviceStarts[k]
                if arrival < earliest - eps || start < arrival - eps || start < node.ready - eps {
                    violations.append(.inconsistentSchedule(vehicle: vi, node: n))
                }
                // Judge lateness on the later of reported and achievable service start.
                let effectiveStart = max(start, earliest, node.ready)
                if effectiveStart > node.due + eps {
                    violations.append(.lateArrival(vehicle: vi, node: n, serviceStart: effectiveStart, due: node.due))
                }
                distance += problem.distance(prev, n)
                load += node.demand
                time = effectiveStart + node.serviceTime
                prev = n
            }
            distance += problem.distance(prev, v.endNode)
            let back = time + problem.travelTime(prev, v.endNode)
            if load > v.capacity {
                violations.append(.overCapacity(vehicle: vi, load: load, capacity: v.capacity))
            }
            let reportedBack = max(back, route.returnTime)
            if reportedBack > v.shiftEnd + eps {
                violations.append(.shiftEnd(vehicle: vi, returnTime: reportedBack, shiftEnd: v.shiftEnd))
            }
            if abs(distance - route.distance) > eps * max(1, abs(distance)) || load != route.load {
                violations.append(.reportedValueMismatch(vehicle: vi))
            }
        }
        for u in unassigned {
            if account(u.node), bases.contains(u.node) {
                violations.append(.baseVisited(vehicle: -1, node: u.node))
            }
        }
        for c in problem.nodes.indices where !bases.contains(c) && !seen[c] {
            violations.append(.missingNode(node: c))
        }
        return violations
    }
}
