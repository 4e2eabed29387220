/// The `grpc-timeout` header. PROTOCOL-HTTP2: Timeout → TimeoutValue TimeoutUnit, where
/// TimeoutValue is 1 to 8 ASCII digits and TimeoutUnit one of H M S m u n.
public enum GRPCTimeout {
    /// Parses a header value; nil when it does not follow the grammar (`99999999S` is
    /// valid, `100000000S` is not; no sign, no space, no empty value).
    public static func parse(_ text: String) -> Duration? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8.count <= 9 else { return nil }
        var value: Int64 = 0
        for byte in utf8.dropLast() {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int64(byte - 0x30)
        }
        switch utf8.last! {
        case UInt8(ascii: "H"): return .seconds(value * 3600)
        case UInt8(ascii: "M"): return .seconds(value * 60)
        case UInt8(ascii: "S"): return .seconds(value)
        case UInt8(ascii: "m"): return .milliseconds(value)
        case UInt8(ascii: "u"): return .microseconds(value)
        case UInt8(ascii: "n"): return .nanoseconds(value)
        default: return nil
        }
    }

    /// Formats a timeout with the finest unit whose value fits in 8 digits, rounding up so
    /// the peer never sees a shorter deadline than ours. Negative durations become `0n`.
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, !(seconds == 0 && attoseconds <= 0) else { return "0n" }
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let units: [(divisor: Int64, unit: String)] = [(1, "n"), (1000, "u"), (1_000_000, "m"),
                                                       (1_000_000_000, "S"), (60_000_000_000, "M"), (3_600_000_000_000, "H")]
        if !nanoseconds.overflow {
            let total = nanoseconds.partialValue + (attoseconds + 999_999_999) / 1_000_000_000
            for (divisor, unit) in units {
                let value = (total + divisor - 1) / divisor
                if value <= 99_999_999 { return "\(value)\(unit)" }
            }
        }
        let hours = min((seconds + 3599) / 3600, 99_999_999)
        return "\(hours)H"
    }
}
