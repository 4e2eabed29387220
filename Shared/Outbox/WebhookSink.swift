import AsyncHTTPClient
import Foundation
import NIOCore

/// POSTs each message's payload to one URL with async-http-client.
///
/// Headers: `content-type` (default application/json), `idempotency-key: <message id>` —
/// the same on every attempt, so the receiver de-duplicates redeliveries by it — and
/// `x-doorstep-topic: <topic>`. A 2xx response acknowledges the message. HTTP 408, 425,
/// 429 and 5xx, connection failures and timeouts are retryable; any other status (400,
/// 401, 404, 413, a 3xx — redirects are not followed) rejects the message for good. Each
/// request has a deadline (default 10 s); connecting is bounded by 5 s within it.
///
/// The sink owns its `HTTPClient` (on the shared NIO event loop group; connections are
/// pooled and kept alive between deliveries): call ``shutdown()`` once, after the last
/// delivery (after the dispatcher stopped), before releasing it.
public final class WebhookSink: OutboxSink {
    /// The receiver's URL.
    public let url: String
    private let timeout: TimeAmount
    private let contentType: String
    private let client: HTTPClient

    /// Throws `WebhookURLError` unless `url` is an http or https URL with a host (checked
    /// at start-up, so a misconfigured service fails before serving).
    public init(url: String, timeout: Duration = .seconds(10), contentType: String = "application/json") throws {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = parsed.host, !host.isEmpty else {
            throw WebhookURLError(url: url)
        }
        self.url = url
        self.timeout = .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        self.contentType = contentType
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(5), read: self.timeout)
        self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// One POST; returns on 2xx (the response body is read and dropped, up to 64 KiB).
    public func deliver(_ message: OutboxMessage) async throws(OutboxSinkError) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: contentType)
        request.headers.add(name: "idempotency-key", value: message.id)
        request.headers.add(name: "x-doorstep-topic", value: message.topic)
        request.body = .bytes(ByteBuffer(bytes: message.payload))
        let status: UInt
        do {
            let response = try await client.execute(request, timeout: timeout)
            status = response.status.code
            _ = try? await response.body.collect(upTo: 64 * 1024)
        } catch {
            throw .retryable("\(error)")
        }
        switch status {
        case 200..<300: return
        case 408, 425, 429, 500..<600: throw .retryable("HTTP \(status)")
        default: throw .permanent("HTTP \(status)")
        }
    }

    /// Closes the HTTP client's connections; call once, at shutdown.
    public func shutdown() async throws {
        try await client.shutdown()
    }
}

/// A webhook address that is not an http:// or https:// URL with a host.
public struct WebhookURLError: Error, Sendable, CustomStringConvertible {
    /// The address as configured.
    public let url: String
    public var description: String { "'\(url)' is not an http:// or https:// URL with a host" }
}
