import RPCWire

/// What one call may see, computed once per call from its caller (by ``ScopeInterceptor``,
/// read with `ServerContext.requireScope()`): the only place where "an agency manager sees
/// its agency's records, a collector its own work" is decided. Every read and list of an
/// agency-scoped resource asks it — ``sees(agencyID:collectorIDs:)`` for one
/// record, ``narrow(agencyID:collectorID:)`` for a list's filters,
/// ``agency(requested:)`` for a report about one agency.
public enum CallerScope: Sendable, Hashable {
    /// Platform, compliance and service callers: every agency.
    case unrestricted(Caller.Role)
    /// An agency manager: the records of its agency.
    case agency(String)
    /// A collector: the records it works on.
    case collector(String)

    /// The scope of `caller`. A token for an agency manager without an agency, or a collector
    /// without a collector id, may see nothing and is refused (PERMISSION_DENIED).
    public init(_ caller: Caller) throws(RPCError) {
        switch caller.role {
        case .platform, .compliance, .service:
            self = .unrestricted(caller.role)
        case .agencyManager:
            guard let agency = caller.agencyID, !agency.isEmpty else {
                throw RPCError.permissionDenied("an agency_manager token must name its agency (agency_id)")
            }
            self = .agency(agency)
        case .collector:
            guard let collector = caller.collectorID, !collector.isEmpty else {
                throw RPCError.permissionDenied("a collector token must name its collector (collector_id)")
            }
            self = .collector(collector)
        }
    }

    /// Whether a record of agency `agencyID`, worked by `collectorIDs`, is visible.
    public func sees(agencyID: String, collectorIDs: some Sequence<String> = [String]()) -> Bool {
        switch self {
        case .unrestricted: true
        case .agency(let own): agencyID == own
        case .collector(let own): collectorIDs.contains(own)
        }
    }

    /// The filters of a list narrowed to the scope: the agency and the collector the query is
    /// limited to (empty: any), or nil when the scope sees nothing of what was asked (the
    /// answer is an empty page). `collectorID` is nil for lists of records that no collector
    /// works on, which a collector scope never sees.
    public func narrow(agencyID: String, collectorID: String?) -> (agencyID: String, collectorID: String)? {
        switch self {
        case .unrestricted:
            return (agencyID, collectorID ?? "")
        case .agency(let own):
            guard agencyID.isEmpty || agencyID == own else { return nil }
            return (own, collectorID ?? "")
        case .collector(let own):
            guard let collectorID, collectorID.isEmpty || collectorID == own else { return nil }
            return (agencyID, own)
        }
    }

    /// The agency a report or plan is about: an agency manager's own (whatever it asked
    /// for), the requested one for unrestricted callers; a collector may not ask
    /// (PERMISSION_DENIED).
    public func agency(requested: String) throws(RPCError) -> String {
        switch self {
        case .unrestricted: requested
        case .agency(let own): own
        case .collector: throw RPCError.permissionDenied("a collector may not read an agency's reports")
        }
    }
}
