import Foundation

/// One location of a routing problem: a customer (an appointment or an optional visit) or a
/// vehicle base (depot, collector's home).
///
/// Times (`ready`, `due`, `serviceTime`) are in the same unit as the problem's travel times
/// (seconds for `.haversine`, "distance units" for `.euclidean`, where time = distance).
public struct VRPTWNode: Sendable, Hashable {
    /// Euclidean x, or latitude in degrees for `TravelModel.haversine`.
    public var x: Double
    /// Euclidean y, or longitude in degrees for `TravelModel.haversine`.
    public var y: Double
    /// Capacity consumed by visiting the node (0 for bases).
    public var demand: Int
    /// Earliest start of service; a vehicle arriving earlier waits.
    public var ready: Double
    /// Latest start of service (Solomon convention: arrival after `due` is late).
    public var due: Double
    /// Time spent at the node.
    public var serviceTime: Double
    /// Value of serving the node (expected recovery). Counted in the objective for every
    /// served node; for required nodes it is a constant, so it only matters for optional ones.
    public var prize: Double
    /// Required nodes (fixed appointments) must be served; optional ones may be dropped
    /// when serving them costs more travel than their prize.
    public var isRequired: Bool
    /// The only vehicle that may serve the node (an appointment keeps its booked crew);
    /// nil = any vehicle.
    public var vehicle: Int?

    public init(
        x: Double, y: Double, demand: Int = 0, ready: Double = 0, due: Double = .greatestFiniteMagnitude,
        serviceTime: Double = 0, prize: Double = 0, isRequired: Bool = true, vehicle: Int? = nil
    ) {
        self.x = x
        self.y = y
        self.demand = demand
        self.ready = ready
        self.due = due
        self.serviceTime = serviceTime
        self.prize = prize
        self.isRequired = isRequired
        self.vehicle = vehicle
    }
}

/// How distance and travel time between two nodes are obtained.
public enum TravelModel: Sendable, Hashable {
    /// Straight-line distance between (x, y); travel time = distance (Solomon). Not rounded.
    case euclidean
    /// Great-circle (haversine, mean Earth radius 6 371 008.8 m) distance between
    /// (latitude = x, longitude = y) in degrees, multiplied by `roadFactor`, in metres;
    /// travel time = that distance / `speedMetersPerSecond`, in seconds.
    case haversine(roadFactor: Double, speedMetersPerSecond: Double)
    /// Precomputed row-major n×n matrices: `distance[i * n + j]`, `time[i * n + j]`.
    case matrix(distance: [Double], time: [Double])
}

/// A vehicle (a collector's crew): where it starts and ends, its shift and its capacity.
public struct Vehicle: Sendable, Hashable {
    /// Node index the vehicle leaves from (a base, never served as a customer).
    public var startNode: Int
    /// Node index the vehicle returns to (usually `startNode`).
    public var endNode: Int
    /// The vehicle leaves `startNode` at this time.
    public var shiftStart: Double
    /// The vehicle must be back at `endNode` by this time.
    public var shiftEnd: Double
    /// Maximum total demand of the nodes on its route.
    public var capacity: Int

    public init(startNode: Int, endNode: Int? = nil, shiftStart: Double, shiftEnd: Double, capacity: Int) {
        self.startNode = startNode
        self.endNode = endNode ?? startNode
        self.shiftStart = shiftStart
        self.shiftEnd = shiftEnd
        self.capacity = capacity
    }
}

/// A vehicle routing problem with time windows, optionally prize-collecting.
///
/// Nodes that are some vehicle's `startNode` or `endNode` are bases; every other node is a
/// customer to be served at most once (required ones exactly once if possible).
///
/// The objective (to maximise) is Σ prize of served nodes − `costPerDistance` × total
/// distance − `vehicleFixedCost` × vehicles used. With zero prizes, all nodes required and
/// `costPerDistance` = 1 (Solomon) this is "minimise total distance".
public struct VRPTWProblem: Sendable {
    public var nodes: [VRPTWNode]
    public var vehicles: [Vehicle]
    public var travel: TravelModel
    /// Cost of one unit of distance (e.g. currency per metre), compared with prizes.
    public var costPerDistance: Double
    /// Cost of using a vehicle at all (0 for Solomon distance minimisation).
    public var vehicleFixedCost: Double

    public init(
        nodes: [VRPTWNode], vehicles: [Vehicle], travel: TravelModel = .euclidean,
        costPerDistance: Double = 1, vehicleFixedCost: Double = 0
    ) {
        self.nodes = nodes
        self.vehicles = vehicles
        self.travel = travel
        self.costPerDistance = costPerDistance
        self.vehicleFixedCost = vehicleFixedCost
    }

    /// A Solomon-style problem: `vehicleCount` identical vehicles (nil = one per customer,
    /// i.e. unlimited) based at node 0, whose shift is node 0's [ready, due] window.
    public init(
        nodes: [VRPTWNode], vehicleCount: Int?, capacity: Int, travel: TravelModel = .euclidean,
        costPerDistance: Double = 1, vehicleFixedCost: Double = 0
    ) {
        let depot = nodes.first ?? VRPTWNode(x: 0, y: 0)
        let count = vehicleCount ?? max(nodes.count - 1, 1)
        let vehicle = Vehicle(startNode: 0, shiftStart: depot.ready, shiftEnd: depot.due, capacity: capacity)
        self.init(
            nodes: nodes, vehicles: Array(repeating: vehicle, count: count), travel: travel,
            costPerDistance: costPerDistance, vehicleFixedCost: vehicleFixedCost)
    }

    /// Node indices used as some vehicle's start or end.
    public var baseNodes: Set<Int> {
        var set = Set<Int>()
        for v in vehicles {
            set.insert(v.startNode)
            set.insert(v.endNode)
        }
        return set
    }

    /// Node indices to be served (every node that is not a base), ascending.
    public var customers: [Int] {
        let bases = baseNodes
        return nodes.indices.filter { !bases.contains($0) }
    }

    /// Distance from node `i` to node `j` (metres for `.haversine`).
    public func distance(_ i: Int, _ j: Int) -> Double {
        switch travel {
        case .euclidean:
            return Self.euclidean(nodes[i], nodes[j])
        case .haversine(let roadFactor, _):
            return Self.haversineMeters(nodes[i], nodes[j]) * roadFactor
        case .matrix(let distance, _):
            return distance[i * nodes.count + j]
        }
    }

    /// Travel time from node `i` to node `j` (seconds for `.haversine`).
    public func travelTime(_ i: Int, _ j: Int) -> Double {
        switch travel {
        case .euclidean:
            return Self.euclidean(nodes[i], nodes[j])
        case .haversine(let roadFactor, let speed):
            return Self.haversineMeters(nodes[i], nodes[j]) * roadFactor / speed
        case .matrix(_, let time):
            return time[i * nodes.count + j]
        }
    }

    @inline(__always)
    static func euclidean(_ a: VRPTWNode, _ b: VRPTWNode) -> Double {
        let dx = a.x - b.x
        let dy = a.y - b.y
        return (dx * dx + dy * dy).squareRoot()
    }

    /// Great-circle distance in metres between (lat = x, lon = y) in degrees.
    @inline(__always)
    static func haversineMeters(_ a: VRPTWNode, _ b: VRPTWNode) -> Double {
        Geo.haversineMeters(latitude1: a.x, longitude1: a.y, latitude2: b.x, longitude2: b.y)
    }
}

/// Great-circle geometry shared by the planner and the services' travel checks.
public enum Geo {
    /// Mean Earth radius (IUGG), metres.
    public static let earthRadiusMeters = 6_371_008.8

    /// Great-circle (haversine) distance in metres between two points given in degrees.
    @inline(__always)
    public static func haversineMeters(latitude1: Double, longitude1: Double, latitude2: Double, longitude2: Double) -> Double {
        let toRad = Double.pi / 180
        let lat1 = latitude1 * toRad
        let lat2 = latitude2 * toRad
        let dLat = lat2 - lat1
        let dLon = (longitude2 - longitude1) * toRad
        let s1 = sin(dLat / 2)
        let s2 = sin(dLon / 2)
        let h = s1 * s1 + cos(lat1) * cos(lat2) * s2 * s2
        return 2 * earthRadiusMeters * asin(min(1, h.squareRoot()))
    }
}
