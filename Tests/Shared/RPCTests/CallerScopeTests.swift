import RPC
import RPCWire
import Testing

/// The one place that decides what a caller sees.
@Suite("Caller scope")
struct CallerScopeTests {
    static let manager = Caller(role: .agencyManager, subject: "m", agencyID: "agy_A")
    static let collector = Caller(role: .collector, subject: "c", agencyID: "agy_A", collectorID: "col_1")

    @Test("platform, compliance and service see every agency; a manager its own; a collector its own work")
    func sees() throws {
        for role in [Caller.Role.platform, .compliance, .service] {
            let scope = try CallerScope(Caller(role: role, subject: "x"))
            #expect(scope.sees(agencyID: "agy_A") && scope.sees(agencyID: "agy_B") && scope.sees(agencyID: ""))
        }
        let agency = try CallerScope(Self.manager)
        #expect(agency == .agency("agy_A"))
        #expect(agency.sees(agencyID: "agy_A") && !agency.sees(agencyID: "agy_B") && !agency.sees(agencyID: ""))
        let own = try CallerScope(Self.collector)
        #expect(own == .collector("col_1"))
        #expect(own.sees(agencyID: "agy_A", collectorIDs: ["col_2", "col_1"]))
        #expect(!own.sees(agencyID: "agy_A", collectorIDs: ["col_2"]), "the agency alone does not make a collector's record")
    }

    @Test("list filters are narrowed, or the list is empty")
    func narrow() throws {
        let platform = try CallerScope(Caller(role: .platform, subject: "p"))
        #expect(platform.narrow(agencyID: "agy_B", collectorID: "col_9")! == ("agy_B", "col_9"))
        #expect(platform.narrow(agencyID: "", collectorID: nil)! == ("", ""))
        let agency = try CallerScope(Self.manager)
        #expect(agency.narrow(agencyID: "", collectorID: "")! == ("agy_A", ""))
        #expect(agency.narrow(agencyID: "agy_A", collectorID: "col_9")! == ("agy_A", "col_9"))
        #expect(agency.narrow(agencyID: "agy_B", collectorID: "") == nil)
        let own = try CallerScope(Self.collector)
        #expect(own.narrow(agencyID: "", collectorID: "")! == ("", "col_1"))
        #expect(own.narrow(agencyID: "", collectorID: "col_2") == nil)
        #expect(own.narrow(agencyID: "", collectorID: nil) == nil, "a list with no collector dimension shows a collector nothing")
    }

    @Test("reports: a manager's own agency whatever it asks; a collector may not ask")
    func reports() throws {
        #expect(try CallerScope(Caller(role: .compliance, subject: "c")).agency(requested: "agy_B") == "agy_B")
        #expect(try CallerScope(Self.manager).agency(requested: "agy_B") == "agy_A")
        #expect(throws: RPCError.self) { try CallerScope(Self.collector).agency(requested: "agy_A") }
    }

    @Test("a manager token without an agency, or a collector token without a collector, sees nothing")
    func incompleteTokens() {
        for caller in [Caller(role: .agencyManager, subject: "m"), Caller(role: .agencyManager, subject: "m", agencyID: ""),
                       Caller(role: .collector, subject: "c", agencyID: "agy_A")] {
            let error = #expect(throws: RPCError.self) { try CallerScope(caller) }
            #expect(error?.code == .permissionDenied)
        }
    }
}
