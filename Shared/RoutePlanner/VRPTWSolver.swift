import Foundation

/// Heuristic solver for `VRPTWProblem`: greedy insertion construction, then ruin-and-recreate
/// (SISR, Christiaens & Vanden Berghe 2020) with simulated-annealing acceptance until the
/// time limit or iteration budget; returns the best solution seen.
///
/// Feasibility of inserting a node is checked in O(1) per position from per-route caches of
/// earliest service starts (forward) and latest allowed service starts (backward). Only
/// routes holding one of the node's k nearest neighbours (plus one empty vehicle per
/// distinct vehicle kind) are tried, so the work per insertion does not grow with the
/// instance; small fleets (≤ 64 vehicles) try every route.
public enum VRPTWSolver {
    /// Solves `problem`, stopping after `timeLimit` (or `maxIterations` ruin-and-recreate
    /// iterations, whichever first). With `maxIterations` set and a time limit that is not
    /// reached, the result depends only on (`problem`, `seed`, `maxIterations`); with the
    /// time limit alone it also depends on machine speed.
    public static func solve(
        _ problem: VRPTWProblem, timeLimit: Duration, seed: UInt64, maxIterations: Int? = nil
    ) -> VRPTWSolution {
        let engine = SearchEngine(problem: problem, seed: seed)
        engine.construct()
        let iterations = engine.search(timeLimit: timeLimit, maxIterations: maxIterations)
        return engine.bestSolution(iterations: iterations)
    }
}

/// Mutable search state. Route index == vehicle index.
final class SearchEngine {
    let problem: VRPTWProblem
    var rng: SplitMix64

    // Flattened node data.
    let n: Int
    let ready: [Double]
    let due: [Double]
    let service: [Double]
    let demand: [Int]
    let prize: [Double]
    let required: [Bool]
    /// The vehicle each node is pinned to, -1 = any.
    let pinned: [Int]
    let customers: [Int]
    let neighbours: [[Int]]
    let vehicleKind: [Int]
    let kindCount: Int
    // Travel oracle data.
    let travelKind: Int  // 0 euclidean, 1 haversine, 2 matrix
    let xs: [Double]
    let ys: [Double]
    let roadFactor: Double
    let speed: Double
    let distMatrix: [Double]
    let timeMatrix: [Double]

    // Routes and their caches.
    var routes: [[Int]]
    var startTime: [[Double]]
    var latest: [[Double]]
    var load: [Int]
    var routeDist: [Double]
    var routeCost: [Double]
    var totalRouteCost = 0.0
    var routeOf: [Int]
    var pool: [Int] = []
    var emptyByKind: [[Int]]
    var inEmptyList: [Bool]
    let penalty: Double
    let timeEps = 1e-9

    // Undo log of one iteration.
    var savedRoutes: [(Int, [Int])] = []
    var savedStamp: [Int]
    var iterationStamp = 0
    var savedPool: [Int] = []
    // Scratch.
    var routeStamp: [Int]
    var routeStampCounter = 0

    init(problem: VRPTWProblem, seed: UInt64) {
        self.problem = problem
        rng = SplitMix64(seed: seed ^ 0x5EED_0F_D00D)
        n = problem.nodes.count
        ready = problem.nodes.map(\.ready)
        due = problem.nodes.map(\.due)
        service = problem.nodes.map(\.serviceTime)
        demand = problem.nodes.map(\.demand)
        prize = problem.nodes.map(\.prize)
        required = problem.nodes.map(\.isRequired)
        pinned = problem.nodes.map { $0.vehicle ?? -1 }
        customers = problem.customers
        xs = problem.nodes.map(\.x)
        ys = problem.nodes.map(\.y)
        switch problem.travel {
        case .euclidean:
            travelKind = 0
            roadFactor = 1
            speed = 1
            distMatrix = []
            timeMatrix = []
        case .haversine(let factor, let mps):
            travelKind = 1
            roadFactor = factor
            speed = mps
            distMatrix = []
            timeMatrix = []
        case .matrix(let d, let t):
            travelKind = 2
            roadFactor = 1
            speed = 1
            distMatrix = d
            timeMatrix = t
        }
        // Vehicle kinds: identical vehicles are interchangeable when empty.
        var kinds: [Vehicle: Int] = [:]
        var kindOf: [Int] = []
        for v in problem.vehicles {
            if let k = kinds[v] {
                kindOf.append(k)
            } else {
                kinds[v] = kinds.count
                kindOf.append(kinds.count - 1)
            }
        }
        vehicleKind = kindOf
        kindCount = kinds.count
        let vCount = problem.vehicles.count
        routes = Array(repeating: [], count: vCount)
        startTime = Array(repeating: [], count: vCount)
        latest = Array(repeating: [], count: vCount)
        load = Array(repeating: 0, count: vCount)
        routeDist = Array(repeating: 0, count: vCount)
        routeCost = Array(repeating: 0, count: vCount)
        routeOf = Array(repeating: -1, count: problem.nodes.count)
        var empties = Array(repeating: [Int](), count: kinds.count)
        for v in stride(from: vCount - 1, through: 0, by: -1) { empties[kindOf[v]].append(v) }
        emptyByKind = empties
        inEmptyList = Array(repeating: true, count: vCount)
        savedStamp = Array(repeating: 0, count: vCount)
        routeStamp = Array(repeating: 0, count: vCount)
        neighbours = SearchEngine.nearestNeighbours(problem: problem, customers: problem.customers, k: 40)
        // A missed required node must outweigh any distance or prize.
        let maxPrize = problem.nodes.map { abs($0.prize) }.max() ?? 0
        var span = 0.0
        if let first = problem.customers.first {
            for c in problem.customers { span = max(span, problem.distance(first, c)) }
            for v in problem.vehicles { span = max(span, problem.distance(v.startNode, first)) }
        }
        penalty = 1000 * (maxPrize + problem.costPerDistance * span * 2 + problem.vehicleFixedCost + 1)
            + 1e6
    }

    // MARK: Travel

    @inline(__always) func dist(_ i: Int, _ j: Int) -> Double {
        switch travelKind {
        case 0:
            let dx = xs[i] - xs[j]
            let dy = ys[i] - ys[j]
            return (dx * dx + dy * dy).squareRoot()
        case 1:
            return VRPTWProblem.haversineMeters(problem.nodes[i], problem.nodes[j]) * roadFactor
        default:
            return distMatrix[i * n + j]
        }
    }

    @inline(__always) func time(_ i: Int, _ j: Int) -> Double {
        switch travelKind {
        case 0: return dist(i, j)
        case 1: return dist(i, j) / speed
        default: return timeMatrix[i * n + j]
        }
    }

    /// k nearest customers of each customer by distance (planar projection for haversine),
    /// brute force with a bounded sorted buffer: O(n² + n·k) time, O(n·k) memory.
    static func nearestNeighbours(problem: VRPTWProblem, customers: [Int], k: Int) -> [[Int]] {
        var result = Array(repeating: [Int](), count: problem.nodes.count)
        let kk = min(k, max(customers.count - 1, 0))
        guard kk > 0 else { return result }
        var px = [Double](repeating: 0, count: problem.nodes.count)
        var py = [Double](repeating: 0, count: problem.nodes.count)
        var useMatrix = false
        switch problem.travel {
        case .euclidean:
            for c in customers {
                px[c] = problem.nodes[c].x
                py[c] = problem.nodes[c].y
            }
        case .haversine:
            let meanLat = customers.reduce(0.0) { $0 + problem.nodes[$1].x } / Double(customers.count)
            let scale = cos(meanLat * Double.pi / 180)
            for c in customers {
                px[c] = problem.nodes[c].x
                py[c] = problem.nodes[c].y * scale
            }
        case .matrix:
            useMatrix = true
        }
        var bestD = [Double](repeating: 0, count: kk)
        var bestI = [Int](repeating: 0, count: kk)
        for c in customers {
            var filled = 0
            for o in customers where o != c {
                let d: Double
                if useMatrix {
                    d = problem.distance(c, o) + problem.distance(o, c)
                } else {
                    let dx = px[c] - px[o]
                    let dy = py[c] - py[o]
                    d = dx * dx + dy * dy
                }
                if filled == kk && d >= bestD[kk - 1] { continue }
                var p = filled == kk ? kk - 1 : filled
                if filled < kk { filled += 1 }
                while p > 0 && bestD[p - 1] > d {
                    bestD[p] = bestD[p - 1]
                    bestI[p] = bestI[p - 1]
                    p -= 1
                }
                bestD[p] = d
                bestI[p] = o
            }
            result[c] = Array(bestI[0..<filled])
        }
        return result
    }

    // MARK: Route caches

    /// Recomputes route `r`'s schedule, load, distance and cost; fixes `routeOf` and the
    /// empty-vehicle lists.
    func update(_ r: Int) {
        let v = problem.vehicles[r]
        let seq = routes[r]
        let m = seq.count
        var st = [Double](repeating: 0, count: m)
        var lt = [Double](repeating: 0, count: m)
        var prev = v.startNode
        var depart = v.shiftStart
        var d = 0.0
        var l = 0
        var p = 0.0
        for i in 0..<m {
            let c = seq[i]
            let s = max(ready[c], depart + time(prev, c))
            st[i] = s
            depart = s + service[c]
            d += dist(prev, c)
            l += demand[c]
            p += prize[c]
            routeOf[c] = r
            prev = c
        }
        var next = v.endNode
        var bound = v.shiftEnd
        if m > 0 {
            d += dist(prev, v.endNode)
            for i in stride(from: m - 1, through: 0, by: -1) {
                let c = seq[i]
                bound = min(due[c], bound - time(c, next) - service[c])
                lt[i] = bound
                next = c
            }
        }
        startTime[r] = st
        latest[r] = lt
        load[r] = l
        routeDist[r] = d
        let cost = m == 0 ? 0 : problem.costPerDistance * d - p + problem.vehicleFixedCost
        totalRouteCost += cost - routeCost[r]
        routeCost[r] = cost
        if m == 0 && !inEmptyList[r] {
            emptyByKind[vehicleKind[r]].append(r)
            inEmptyList[r] = true
        } else if m > 0 && inEmptyList[r] {
            let k = vehicleKind[r]
            if emptyByKind[k].last == r {
                emptyByKind[k].removeLast()
            } else if let at = emptyByKind[k].firstIndex(of: r) {
                emptyByKind[k].remove(at: at)
            }
            inEmptyList[r] = false
        }
    }

    func cost() -> Double {
        var missed = 0
        for u in pool where required[u] { missed += 1 }
        return totalRouteCost + penalty * Double(missed)
    }

    // MARK: Insertion

    struct Insertion {
        var route: Int
        var position: Int
        var delta: Double
    }

    /// Best feasible insertion of `u` into route `r`, improving on `best`.
    @inline(__always)
    func evaluate(_ u: Int, into r: Int, best: inout Insertion?, blinkRate: Double) {
        let v = problem.vehicles[r]
        if pinned[u] >= 0 && pinned[u] != r { return }
        if load[r] + demand[u] > v.capacity { return }
        let seq = routes[r]
        let m = seq.count
        let fixed = m == 0 ? problem.vehicleFixedCost : 0
        var prev = v.startNode
        var depart = v.shiftStart
        let st = startTime[r]
        let lt = latest[r]
        for p in 0...m {
            let next = p < m ? seq[p] : v.endNode
            let arrU = depart + time(prev, u)
            if arrU > due[u] + timeEps { break }  // later positions arrive no earlier
            let su = max(ready[u], arrU)
            let arrNext = su + service[u] + time(u, next)
            let bound = p < m ? lt[p] : v.shiftEnd
            if arrNext <= bound + timeEps {
                let delta =
                    problem.costPerDistance * (dist(prev, u) + dist(u, next) - dist(prev, next)) + fixed
                if best == nil || delta < best!.delta {
                    if blinkRate == 0 || rng.unit() >= blinkRate {
                        best = Insertion(route: r, position: p, delta: delta)
                    }
                }
            }
            if p < m {
                depart = st[p] + service[next]
                prev = next
            }
        }
    }

    /// Cheapest feasible insertion of `u` among nearby routes and one empty vehicle per kind;
    /// every route when the fleet is small or (for required nodes) nothing nearby fits.
    func bestInsertion(_ u: Int, blinkRate: Double) -> Insertion? {
        var best: Insertion? = nil
        let vCount = routes.count
        if pinned[u] >= 0 {
            if pinned[u] < vCount { evaluate(u, into: pinned[u], best: &best, blinkRate: blinkRate) }
            return best
        }
        if vCount <= 64 {
            for r in 0..<vCount where !routes[r].isEmpty { evaluate(u, into: r, best: &best, blinkRate: blinkRate) }
        } else {
            routeStampCounter += 1
            for o in neighbours[u] {
                let r = routeOf[o]
                if r >= 0 && routeStamp[r] != routeStampCounter {
                    routeStamp[r] = routeStampCounter
                    evaluate(u, into: r, best: &best, blinkRate: blinkRate)
                }
            }
        }
        for k in 0..<kindCount {
            if let r = emptyByKind[k].last { evaluate(u, into: r, best: &best, blinkRate: blinkRate) }
        }
        if best == nil && required[u] && vCount > 64 {
            for r in 0..<vCount where !routes[r].isEmpty && routeStamp[r] != routeStampCounter {
                evaluate(u, into: r, best: &best, blinkRate: blinkRate)
            }
        }
        return best
    }

    /// Saves route `r` for undo (once per iteration).
    @inline(__always) func touch(_ r: Int) {
        if savedStamp[r] != iterationStamp {
            savedStamp[r] = iterationStamp
            savedRoutes.append((r, routes[r]))
        }
    }

    /// Inserts `candidates` greedily in the given order; returns those left out.
    func recreate(_ candidates: [Int], blinkRate: Double) -> [Int] {
        var left: [Int] = []
        for u in candidates {
            guard let ins = bestInsertion(u, blinkRate: blinkRate) else {
                left.append(u)
                continue
            }
            if !required[u] && prize[u] - ins.delta <= 1e-9 {
                left.append(u)
                continue
            }
            touch(ins.route)
            routes[ins.route].insert(u, at: ins.position)
            update(ins.route)
        }
        return left
    }

    // MARK: Construction and search

    func construct() {
        iterationStamp += 1
        let base = problem.vehicles.first?.startNode ?? 0
        var order = customers
        order.sort { a, b in
            if required[a] != required[b] { return required[a] }
            if required[a] {
                let da = dist(base, a)
                let db = dist(base, b)
                return da != db ? da > db : a < b
            }
            return prize[a] != prize[b] ? prize[a] > prize[b] : a < b
        }
        pool = recreate(order, blinkRate: 0)
        savedRoutes.removeAll()
    }

    /// SISR string removal around a random seed customer (plus, sometimes, random removal).
    func ruin() -> [Int] {
        var assigned = 0
        var used = 0
        for r in routes.indices where !routes[r].isEmpty {
            assigned += routes[r].count
            used += 1
        }
        guard assigned > 0 else { return [] }
        let cBar = Double(max(2, min(15, assigned / 10)))
        let avgLen = Double(assigned) / Double(used)
        let lsMax = min(10.0, avgLen)
        let ksMax = 4 * cBar / (1 + lsMax) - 1
        let strings = Int(rng.unit() * ksMax) + 1
        var removed: [Int] = []
        if rng.unit() < 0.1 {
            // Random removal of about cBar assigned customers.
            let target = Int(cBar)
            var tries = 0
            while removed.count < target && tries < target * 10 {
                tries += 1
                let c = customers[rng.below(customers.count)]
                let r = routeOf[c]
                if r < 0 { continue }
                touch(r)
                if let at = routes[r].firstIndex(of: c) {
                    routes[r].remove(at: at)
                    routeOf[c] = -1
                    removed.append(c)
                }
            }
        } else {
            // Seed: a random assigned customer.
            var seedNode = -1
            for _ in 0..<100 {
                let c = customers[rng.below(customers.count)]
                if routeOf[c] >= 0 {
                    seedNode = c
                    break
                }
            }
            guard seedNode >= 0 else { return [] }
            routeStampCounter += 1
            var ruined = 0
            for c in [seedNode] + neighbours[seedNode] {
                if ruined >= strings { break }
                let r = routeOf[c]
                if r < 0 || routeStamp[r] == routeStampCounter { continue }
                routeStamp[r] = routeStampCounter
                ruined += 1
                touch(r)
                let seq = routes[r]
                guard let pos = seq.firstIndex(of: c) else { continue }
                let lMax = min(Double(seq.count), lsMax)
                let length = max(1, min(seq.count, Int(rng.unit() * lMax) + 1))
                let lo = max(0, pos - length + 1)
                let hi = min(pos, seq.count - length)
                let from = lo + rng.below(hi - lo + 1)
                for i in from..<(from + length) {
                    routeOf[seq[i]] = -1
                    removed.append(seq[i])
                }
                routes[r].removeSubrange(from..<(from + length))
            }
        }
        for (r, _) in savedRoutes { update(r) }
        return removed
    }

    func orderForRecreate(_ nodes: inout [Int]) {
        let base = problem.vehicles.first?.startNode ?? 0
        switch rng.below(10) {
        case 0...3:
            nodes.shuffle(using: &rng)
        case 4...5:
            nodes.sort { demand[$0] != demand[$1] ? demand[$0] > demand[$1] : $0 < $1 }
        case 6...7:
            nodes.sort { dist(base, $0) != dist(base, $1) ? dist(base, $0) > dist(base, $1) : $0 < $1 }
        case 8:
            nodes.sort { due[$0] != due[$1] ? due[$0] < due[$1] : $0 < $1 }
        default:
            nodes.sort { dist(base, $0) != dist(base, $1) ? dist(base, $0) < dist(base, $1) : $0 < $1 }
        }
        // Required before optional so appointments get first pick of capacity.
        nodes.sort { required[$0] && !required[$1] }
    }

    func revert() {
        for (r, seq) in savedRoutes.reversed() {
            for c in routes[r] { routeOf[c] = -1 }
            routes[r] = seq
        }
        for (r, _) in savedRoutes { update(r) }
        pool = savedPool
        for u in pool { routeOf[u] = -1 }
    }

    /// Runs ruin-and-recreate with simulated annealing; returns the iteration count.
    func search(timeLimit: Duration, maxIterations: Int?) -> Int {
        guard !customers.isEmpty else { return 0 }
        let clock = ContinuousClock()
        let started = clock.now
        let limitSeconds = max(1e-9, Double(timeLimit.components.seconds) + Double(timeLimit.components.attoseconds) * 1e-18)
        var current = cost()
        best = routes
        bestPool = pool
        bestCost = current
        // Temperatures scale with the average edge cost of the start solution (SISR's 100 → 1
        // for Solomon coordinates, whose good solutions have edges of ~10–15).
        var edges = 0
        for r in routes.indices where !routes[r].isEmpty { edges += routes[r].count + 1 }
        let avgEdge = edges > 0 ? max(1e-9, (totalRouteCost + prize.reduce(0, +)) / Double(edges)) : 1
        let t0 = 5 * avgEdge
        let tf = 0.05 * avgEdge
        var iteration = 0
        var fraction = 0.0
        while true {
            if let maxIterations {
                if iteration >= maxIterations { break }
                fraction = Double(iteration) / Double(maxIterations)
            }
            if iteration & 7 == 0 {
                let elapsed = clock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                if seconds >= limitSeconds { break }
                if maxIterations == nil { fraction = seconds / limitSeconds }
            }
            let temperature = t0 * pow(tf / t0, fraction)
            iterationStamp += 1
            savedRoutes.removeAll(keepingCapacity: true)
            savedPool = pool
            var candidates = ruin()
            // Retry the left-out: all required, and a few optional ones.
            var optionalTried = 0
            var rest: [Int] = []
            for u in pool {
                if required[u] || (optionalTried < 10 && rng.unit() < 0.5) {
                    if !required[u] { optionalTried += 1 }
                    candidates.append(u)
                } else {
                    rest.append(u)
                }
            }
            orderForRecreate(&candidates)
            pool = rest + recreate(candidates, blinkRate: 0.01)
            let next = cost()
            let threshold = current - temperature * log(max(rng.unit(), 1e-300))
            if next < threshold {
                current = next
                if next < bestCost - 1e-9 {
                    bestCost = next
                    best = routes
                    bestPool = pool
                }
            } else {
                revert()
            }
            iteration += 1
        }
        return iteration
    }

    var best: [[Int]] = []
    var bestPool: [Int] = []
    var bestCost = Double.infinity

    /// Restores the best routes and reports them with a reason for every unassigned node.
    func bestSolution(iterations: Int) -> VRPTWSolution {
        if !best.isEmpty {
            for r in routes.indices {
                for c in routes[r] { routeOf[c] = -1 }
                routes[r] = best[r]
            }
            for r in routes.indices { update(r) }
            pool = bestPool
        }
        var unassigned: [UnassignedNode] = []
        for u in pool.sorted() {
            unassigned.append(UnassignedNode(node: u, reason: reason(for: u)))
        }
        var list: [(vehicle: Int, nodes: [Int])] = []
        for r in routes.indices where !routes[r].isEmpty { list.append((vehicle: r, nodes: routes[r])) }
        return VRPTWSolution.make(problem: problem, routes: list, unassigned: unassigned, iterations: iterations)
    }

    func reason(for u: Int) -> UnassignedReason {
        if problem.vehicles.isEmpty { return .noVehicle }
        var capacityFits = false
        var aloneFits = false
        for (index, v) in problem.vehicles.enumerated() where v.capacity >= demand[u] && (pinned[u] < 0 || pinned[u] == index) {
            capacityFits = true
            let s = max(ready[u], v.shiftStart + time(v.startNode, u))
            if s <= due[u] + timeEps && s + service[u] + time(u, v.endNode) <= v.shiftEnd + timeEps {
                aloneFits = true
                break
            }
        }
        if !capacityFits { return .capacity }
        if !aloneFits { return .timeWindow }
        if !required[u] {
            var best: Insertion? = nil
            for r in routes.indices { evaluate(u, into: r, best: &best, blinkRate: 0) }
            if best != nil { return .unprofitable }
        }
        return .noVehicle
    }
}
