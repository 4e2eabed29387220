import Models
import NIOConcurrencyHelpers
import RPCWire

/// The standard `grpc.health.v1.Health` service with real statuses: the overall status
/// (service name "") and one per registered service, changed by the process as it starts,
/// loses a dependency or drains. `Watch` streams every change.
public final class HealthService: Sendable {
    public typealias Status = HealthV1.HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = [:]
        var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher = 0
    }

    private let state = NIOLockedValueBox(State())

    /// Starts with every named service (and the overall status "") NOT_SERVING.
    public init(services: [String]) {
        state.withLockedValue { state in
            state.statuses[""] = .notServing
            for service in services { state.statuses[service] = .notServing }
        }
    }

    /// Sets the status of `service` ("" = the whole server) and notifies its watchers.
    public func setStatus(_ status: Status, for service: String = "") {
        let watchers = state.withLockedValue { state -> [AsyncStream<Status>.Continuation] in
            guard state.statuses[service] != status else { return [] }
            state.statuses[service] = status
            return state.watchers.values.filter { $0.service == service }.map(\.continuation)
        }
        for watcher in watchers { watcher.yield(status) }
    }

    /// Sets every service, and the overall status, to `status`.
    public func setAll(_ status: Status) {
        let services = state.withLockedValue { Array($0.statuses.keys) }
        for service in services { setStatus(status, for: service) }
    }

    public func status(of service: String) -> Status? {
        state.withLockedValue { $0.statuses[service] }
    }

    /// The service's methods, to merge into a server's `ServiceDefinition`. Open to every
    /// caller: probes carry no credentials.
    public var definition: ServiceDefinition {
        var definition = ServiceDefinition()
        definition.unary(HealthV1.HealthService.check, requiresAuthentication: false) { [self] request, _ in
            guard let status = status(of: request.service) else {
                throw RPCError.notFound("unknown service '\(request.service)'")
            }
            return HealthV1.HealthCheckResponse(status: status)
        }
        definition.serverStreaming(HealthV1.HealthService.watch, requiresAuthentication: false) { [self] request, _, responses in
            let (stream, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(16))
            let id = state.withLockedValue { state -> Int in
                let id = state.nextWatcher
                state.nextWatcher += 1
                state.watchers[id] = (request.service, continuation)
                return id
            }
            defer { _ = state.withLockedValue { $0.watchers.removeValue(forKey: id) } }
            // First the current status (SERVICE_UNKNOWN for a name we do not serve), then changes.
            try await responses.send(.init(status: status(of: request.service) ?? .serviceUnknown))
            for await status in stream {
                try Task.checkCancellation()
                try await responses.send(.init(status: status))
            }
        }
        return definition
    }
}
