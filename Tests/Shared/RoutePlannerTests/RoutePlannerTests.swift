import Foundation
import Testing

@testable import RoutePlanner

// MARK: - Helpers

/// A random instance: depot at (50, 50) with window [0, 1000], `count` required customers
/// in [0, 100]², demand 1–20, service 10, windows of width 60–260 placed so each is
/// reachable from the depot.
private func randomInstance(count: Int, seed: UInt64, vehicles: Int? = nil, capacity: Int = 200) -> VRPTWProblem {
    var rng = SplitMix64(seed: seed)
    var nodes = [VRPTWNode(x: 50, y: 50, ready: 0, due: 1000)]
    for _ in 0..<count {
        let x = rng.unit() * 100
        let y = rng.unit() * 100
        let direct = ((x - 50) * (x - 50) + (y - 50) * (y - 50)).squareRoot()
        let width = 60 + rng.unit() * 200
        let ready = direct + rng.unit() * (1000 - 2 * direct - width - 10)
        nodes.append(
            VRPTWNode(
                x: x, y: y, demand: 1 + rng.below(20), ready: ready, due: ready + width, serviceTime: 10))
    }
    return VRPTWProblem(nodes: nodes, vehicleCount: vehicles, capacity: capacity)
}

/// Minimum total distance over every assignment of the customers to ordered routes of the
/// problem's vehicles (brute force: permutations × cut points), checked with `verify`.
private func bruteForceOptimum(_ problem: VRPTWProblem) -> Double {
    let customers = problem.customers
    let vehicleCount = problem.vehicles.count
    var best = Double.infinity
    func permutations(_ items: [Int]) -> [[Int]] {
        if items.count <= 1 { return [items] }
        var result: [[Int]] = []
        for (i, x) in items.enumerated() {
            var rest = items
            rest.remove(at: i)
            for p in permutations(rest) { result.append([x] + p) }
        }
        return result
    }
    // Each permutation is split into `vehicleCount` consecutive (possibly empty) routes.
    func splits(_ seq: [Int], _ parts: Int) -> [[[Int]]] {
        if parts == 1 { return [[seq]] }
        var result: [[[Int]]] = []
        for cut in 0...seq.count {
            for tail in splits(Array(seq[cut...]), parts - 1) { result.append([Array(seq[..<cut])] + tail) }
        }
        return result
    }
    for perm in permutations(customers) {
        for split in splits(perm, vehicleCount) {
            let routes = split.enumerated().map { (vehicle: $0.offset, nodes: $0.element) }
            let solution = VRPTWSolution.make(problem: problem, routes: routes)
            if solution.isFeasible && solution.totalDistance < best { best = solution.totalDistance }
        }
    }
    return best
}

private func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        .appendingPathComponent(name)
}

// MARK: - Parser

@Suite("SolomonFormat: `N CAPACITY` + node rows")
struct SolomonFormatTests {
    @Test("parses the tiny fixture, blank lines included")
    func parsesFixture() throws {
        let text = try String(contentsOf: fixtureURL("tiny.txt"), encoding: .utf8)
        let problem = try SolomonFormat.parse(text)
        #expect(problem.nodes.count == 5)
        #expect(problem.vehicles.count == 4)  // unlimited = one per customer
        #expect(problem.vehicles.allSatisfy { $0.capacity == 20 && $0.startNode == 0 && $0.shiftEnd == 100 })
        #expect(problem.nodes[4] == VRPTWNode(x: -5, y: 0, demand: 10, ready: 20, due: 60, serviceTime: 2))
        #expect(problem.customers == [1, 2, 3, 4])
        #expect(problem.distance(0, 1) == 10)
        #expect(problem.travelTime(1, 2) == 10)
    }

    @Test("Windows (CRLF) and old Mac (CR) line endings parse as Unix ones do; error lines are counted the same")
    func lineEndings() throws {
        let unix = try String(contentsOf: fixtureURL("tiny.txt"), encoding: .utf8)
        let expected = try SolomonFormat.parse(unix)
        for ending in ["\r\n", "\r"] {
            let text = unix.replacingOccurrences(of: "\n", with: ending)
            #expect(!text.contains("\n") || ending.contains("\n"))
            let problem = try SolomonFormat.parse(text)
            #expect(problem.nodes == expected.nodes && problem.vehicles == expected.vehicles)
            let bad = "2 10\n\n0 0 0 0 0 50 0\n1 1 1 x 0 50 0\n2 1 1 1 0 50 0\n".replacingOccurrences(of: "\n", with: ending)
            #expect(throws: SolomonFormatError(line: 4, message: "demand `x` is not an integer")) { try SolomonFormat.parse(bad) }
        }
    }

    @Test("optional VEHICLES field and N counting all nodes")
    func vehiclesAndNodeCount() throws {
        let problem = try SolomonFormat.parse("2 10 3\n0 0 0 0 0 50 0\n1 3 4 1 0 50 0\n")
        #expect(problem.nodes.count == 2)
        #expect(problem.vehicles.count == 3)
        #expect(problem.distance(0, 1) == 5)
    }

    @Test("errors name the offending line")
    func errorsNameLine() {
        let bad = "2 10\n\n0 0 0 0 0 50 0\n1 1 1 x 0 50 0\n2 1 1 1 0 50 0\n"
        #expect(throws: SolomonFormatError(line: 4, message: "demand `x` is not an integer")) {
            try SolomonFormat.parse(bad)
        }
        do {
            _ = try SolomonFormat.parse("2 10\n0 0 0 0 0 50 0\n1 1 1 1 0 50\n2 1 1 1 0 50 0\n")
            Issue.record("expected an error")
        } catch let error as SolomonFormatError {
            #expect(error.line == 3)
            #expect(error.description.hasPrefix("line 3:"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
        #expect(throws: SolomonFormatError.self) { try SolomonFormat.parse("hello world\n") }
        #expect(throws: SolomonFormatError.self) { try SolomonFormat.parse("") }
    }
}

// MARK: - verify()

@Suite("VRPTWSolution.verify catches every violation kind")
struct VerifyTests {
    /// Depot (0,0) [0,100]; customer 1 at (10,0) due 5 (unreachable in time), 2 at (0,10)
    /// due 50, demand 15 each, capacity 20.
    let problem = VRPTWProblem(
        nodes: [
            VRPTWNode(x: 0, y: 0, ready: 0, due: 100),
            VRPTWNode(x: 10, y: 0, demand: 15, ready: 0, due: 5, serviceTime: 1),
            VRPTWNode(x: 0, y: 10, demand: 15, ready: 0, due: 50, serviceTime: 1),
            VRPTWNode(x: 0, y: 20, demand: 1, ready: 0, due: 90, serviceTime: 1),
        ],
        vehicleCount: 3, capacity: 20)

    @Test("a feasible plan has no violation")
    func feasible() {
        let s = VRPTWSolution.make(
            problem: problem, routes: [(vehicle: 0, nodes: [2, 3])],
            unassigned: [UnassignedNode(node: 1, reason: .timeWindow)])
        #expect(s.verify(problem) == [])
        #expect(s.isFeasible)
        #expect(abs(s.totalDistance - 40) < 1e-9)
        #expect(s.routes[0].arrivals == [10, 21])
        #expect(s.routes[0].returnTime == 42)
    }

    @Test("late arrival")
    func late() {
        let s = VRPTWSolution.make(problem: problem, routes: [(vehicle: 0, nodes: [1]), (vehicle: 1, nodes: [2, 3])])
        #expect(s.verify(problem) == [.lateArrival(vehicle: 0, node: 1, serviceStart: 10, due: 5)])
        #expect(!s.isFeasible)
    }

    @Test("over capacity")
    func overCapacity() {
        var p = problem
        p.nodes[1].due = 100
        let s = VRPTWSolution.make(problem: p, routes: [(vehicle: 0, nodes: [1, 2, 3])])
        #expect(s.verify(p).contains(.overCapacity(vehicle: 0, load: 31, capacity: 20)))
    }

    @Test("shift end")
    func shiftEnd() {
        var p = problem
        p.vehicles[0].shiftEnd = 30
        let s = VRPTWSolution.make(
            problem: p, routes: [(vehicle: 0, nodes: [2, 3])], unassigned: [UnassignedNode(node: 1, reason: .timeWindow)])
        #expect(s.verify(p) == [.shiftEnd(vehicle: 0, returnTime: 42, shiftEnd: 30)])
    }

    @Test("missing, duplicate, base and forged schedule")
    func bookkeeping() {
        var s = VRPTWSolution.make(problem: problem, routes: [(vehicle: 0, nodes: [2, 3])])
        #expect(s.verify(problem) == [.missingNode(node: 1)])
        s.unassigned = [UnassignedNode(node: 1, reason: .noVehicle), UnassignedNode(node: 2, reason: .noVehicle)]
        #expect(s.verify(problem) == [.duplicateNode(node: 2)])
        s.unassigned = [UnassignedNode(node: 1, reason: .noVehicle)]
        s.routes[0].arrivals[0] = 1  // faster than light
        #expect(s.verify(problem) == [.inconsistentSchedule(vehicle: 0, node: 2)])
        s.routes[0].arrivals[0] = 10
        s.routes[0].distance = 1
        #expect(s.verify(problem) == [.reportedValueMismatch(vehicle: 0)])
        let withBase = VRPTWSolution.make(
            problem: problem, routes: [(vehicle: 0, nodes: [0, 2, 3])],
            unassigned: [UnassignedNode(node: 1, reason: .noVehicle)])
        #expect(withBase.verify(problem).contains(.baseVisited(vehicle: 0, node: 0)))
    }
}

// MARK: - Solver

@Suite("VRPTWSolver")
struct SolverTests {
    @Test("finds the brute-force optimum of a 5-customer instance")
    func tinyOptimum() {
        let nodes = [
            VRPTWNode(x: 0, y: 0, ready: 0, due: 200),
            VRPTWNode(x: 10, y: 0, demand: 4, ready: 0, due: 40, serviceTime: 2),
            VRPTWNode(x: 10, y: 10, demand: 4, ready: 30, due: 80, serviceTime: 2),
            VRPTWNode(x: 0, y: 12, demand: 3, ready: 0, due: 200, serviceTime: 2),
            VRPTWNode(x: -8, y: 4, demand: 5, ready: 50, due: 70, serviceTime: 2),
            VRPTWNode(x: -3, y: -9, demand: 2, ready: 0, due: 30, serviceTime: 2),
        ]
        let problem = VRPTWProblem(nodes: nodes, vehicleCount: 2, capacity: 10)
        let optimum = bruteForceOptimum(problem)
        #expect(optimum.isFinite)
        let solution = VRPTWSolver.solve(problem, timeLimit: .seconds(5), seed: 7, maxIterations: 1000)
        #expect(solution.verify(problem) == [])
        #expect(solution.unassigned.isEmpty)
        #expect(abs(solution.totalDistance - optimum) < 1e-6)
    }

    @Test("200 random customers with windows: feasible, all served")
    func randomFeasible() {
        let problem = randomInstance(count: 200, seed: 42)
        let solution = VRPTWSolver.solve(problem, timeLimit: .milliseconds(500), seed: 1)
        #expect(solution.verify(problem) == [])
        #expect(solution.isFeasible)
        #expect(solution.unassigned.isEmpty)
        #expect(solution.routes.reduce(0) { $0 + $1.nodes.count } == 200)
    }

    @Test("haversine travel with home bases and shifts")
    func haversineHomeBases() {
        // Two collectors' homes (nodes 0, 1) and 6 visits around Lisbon.
        var nodes = [VRPTWNode(x: 38.72, y: -9.14), VRPTWNode(x: 38.75, y: -9.20)]
        for i in 0..<6 {
            nodes.append(
                VRPTWNode(
                    x: 38.70 + 0.01 * Double(i), y: -9.15 - 0.01 * Double(i % 3), demand: 1, ready: 9 * 3600,
                    due: 17 * 3600, serviceTime: 900))
        }
        let vehicles = [
            Vehicle(startNode: 0, shiftStart: 8 * 3600, shiftEnd: 18 * 3600, capacity: 4),
            Vehicle(startNode: 1, shiftStart: 9 * 3600, shiftEnd: 13 * 3600, capacity: 4),
        ]
        let problem = VRPTWProblem(
            nodes: nodes, vehicles: vehicles, travel: .haversine(roadFactor: 1.3, speedMetersPerSecond: 8))
        #expect(problem.customers == Array(2..<8))
        let solution = VRPTWSolver.solve(problem, timeLimit: .seconds(5), seed: 3, maxIterations: 100)
        #expect(solution.verify(problem) == [])
        #expect(solution.unassigned.isEmpty)
        // Nodes 2 and 5 differ by 0.03° of latitude: ~3.336 km, × road factor.
        #expect(abs(problem.distance(2, 5) / 1.3 - 3336) < 10)
        #expect(abs(problem.travelTime(2, 5) - problem.distance(2, 5) / 8) < 1e-9)
    }

    @Test("prize collection drops a far, unprofitable optional visit")
    func prizeCollection() {
        let nodes = [
            VRPTWNode(x: 0, y: 0, ready: 0, due: 10_000),
            VRPTWNode(x: 5, y: 0, demand: 1, ready: 0, due: 100),  // required appointment
            VRPTWNode(x: 0, y: 5, demand: 1, prize: 100, isRequired: false),  // near, worth it
            VRPTWNode(x: 1000, y: 0, demand: 1, prize: 10, isRequired: false),  // far, not worth it
        ]
        let problem = VRPTWProblem(nodes: nodes, vehicleCount: 2, capacity: 10)
        let solution = VRPTWSolver.solve(problem, timeLimit: .seconds(5), seed: 11, maxIterations: 200)
        #expect(solution.verify(problem) == [])
        #expect(solution.unassigned == [UnassignedNode(node: 3, reason: .unprofitable)])
        let served = Set(solution.routes.flatMap(\.nodes))
        #expect(served == [1, 2])
        #expect(abs(solution.objective - (100 - solution.totalDistance)) < 1e-9)
    }

    @Test("unservable required nodes are reported with reasons")
    func reasons() {
        let nodes = [
            VRPTWNode(x: 0, y: 0, ready: 0, due: 100),
            VRPTWNode(x: 10, y: 0, demand: 50, ready: 0, due: 100),  // too heavy
            VRPTWNode(x: 90, y: 0, demand: 1, ready: 0, due: 100),  // cannot get back in time
            VRPTWNode(x: 0, y: 10, demand: 1, ready: 0, due: 100),
        ]
        let problem = VRPTWProblem(nodes: nodes, vehicleCount: 1, capacity: 10)
        let solution = VRPTWSolver.solve(problem, timeLimit: .seconds(5), seed: 1, maxIterations: 50)
        #expect(solution.verify(problem) == [])
        #expect(
            solution.unassigned == [
                UnassignedNode(node: 1, reason: .capacity), UnassignedNode(node: 2, reason: .timeWindow),
            ])
        #expect(!solution.allRequiredServed(problem))
    }

    @Test("same seed, same plan")
    func deterministic() {
        let problem = randomInstance(count: 60, seed: 5, vehicles: 15, capacity: 100)
        let a = VRPTWSolver.solve(problem, timeLimit: .seconds(30), seed: 99, maxIterations: 150)
        let b = VRPTWSolver.solve(problem, timeLimit: .seconds(30), seed: 99, maxIterations: 150)
        #expect(a.routes == b.routes)
        #expect(a.totalDistance == b.totalDistance)
        #expect(a.verify(problem) == [])
    }

    @Test("a node pinned to a vehicle is served by that vehicle only, or left out")
    func pinnedVehicle() {
        // Two depots far apart; each appointment is pinned to the far depot's vehicle.
        let nodes = [
            VRPTWNode(x: 0, y: 0),
            VRPTWNode(x: 100, y: 0),
            VRPTWNode(x: 1, y: 0, demand: 1, ready: 0, due: 1_000, vehicle: 1),
            VRPTWNode(x: 99, y: 0, demand: 1, ready: 0, due: 1_000, vehicle: 0),
            VRPTWNode(x: 2, y: 0, demand: 1, ready: 0, due: 10, vehicle: 1),  // unreachable by vehicle 1 in time
        ]
        let vehicles = [Vehicle(startNode: 0, shiftStart: 0, shiftEnd: 1_000, capacity: 5),
                        Vehicle(startNode: 1, shiftStart: 0, shiftEnd: 1_000, capacity: 5)]
        let problem = VRPTWProblem(nodes: nodes, vehicles: vehicles)
        let solution = VRPTWSolver.solve(problem, timeLimit: .seconds(5), seed: 3, maxIterations: 100)
        #expect(solution.verify(problem) == [])
        let byVehicle = Dictionary(uniqueKeysWithValues: solution.routes.map { ($0.vehicle, Set($0.nodes)) })
        #expect(byVehicle[1] == [2])
        #expect(byVehicle[0] == [3])
        #expect(solution.unassigned == [UnassignedNode(node: 4, reason: .timeWindow)])
        // verify() catches a pinned node on the wrong vehicle.
        let forged = VRPTWSolution.make(problem: problem, routes: [(vehicle: 0, nodes: [2])], unassigned: [])
        #expect(forged.verify(problem).contains(.wrongVehicle(vehicle: 0, node: 2)))
    }
}

@Suite("SplitMix64")
struct SplitMix64Tests {
    @Test("gives the reference sequence (splitmix64.c, seed 1234567): the same seed, the same plans and demo city everywhere")
    func referenceSequence() {
        var rng = SplitMix64(seed: 1_234_567)
        let first = (0..<5).map { _ in rng.next() }
        #expect(first == [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                          4_593_380_528_125_082_431, 16_408_922_859_458_223_821])
        var unit = SplitMix64(seed: 1_234_567)
        #expect(unit.unit() == Double(6_457_827_717_110_365_317 >> 11) * 0x1p-53)
        var below = SplitMix64(seed: 1_234_567)
        #expect(below.below(10) == Int(6_457_827_717_110_365_317 % 10))
    }
}
