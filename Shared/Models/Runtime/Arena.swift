internal import CProtobufC

/// A bump allocator that owns every C allocation made while one message is converted.
///
/// Ownership rule (the only one in the conversion layer): every pointer handed to a
/// protobuf-c struct during `encode` — strings, byte buffers, arrays, sub-messages — and
/// every allocation `protobuf_c_message_unpack` makes during `decode` comes from one
/// `Arena`. Nothing is freed individually (`free` callbacks are no-ops); the whole arena
/// is released when it is deinitialised, which happens when the conversion call returns.
/// No pointer into an arena may outlive that call: decoded values are copied into Swift
/// values before it returns, and encoded bytes are copied out of the C buffer.
///
/// An arena is used by one thread for the duration of one synchronous call, so it is not
/// `Sendable`.
final class Arena {
    /// Size of the first chunk; later chunks double, capped at `maxChunk`.
    private static let firstChunk = 2048
    private static let maxChunk = 1 << 20

    private var chunks: [UnsafeMutableRawPointer] = []
    private var cursor: UnsafeMutableRawPointer?
    private var remaining = 0
    private var nextChunkSize = Arena.firstChunk

    init() {}

    deinit {
        for chunk in chunks { chunk.deallocate() }
    }

    /// Returns `byteCount` bytes aligned to `alignment` (a power of two), valid until the
    /// arena is deinitialised. The memory is uninitialised.
    func allocate(byteCount: Int, alignment: Int = 16) -> UnsafeMutableRawPointer {
        if let cursor {
            let misalignment = Int(bitPattern: cursor) & (alignment - 1)
            let padding = misalignment == 0 ? 0 : alignment - misalignment
            if padding + byteCount <= remaining {
                let result = cursor + padding
                self.cursor = result + byteCount
                remaining -= padding + byteCount
                return result
            }
        }
        return allocateSlow(byteCount: byteCount, alignment: alignment)
    }

    private func allocateSlow(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let size = max(nextChunkSize, byteCount + alignment)
        nextChunkSize = min(nextChunkSize * 2, Arena.maxChunk)
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: max(alignment, 16))
        chunks.append(chunk)
        cursor = chunk + byteCount
        remaining = size - byteCount
        return chunk
    }

    /// Uninitialised storage for one `T`.
    func allocate<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        allocate(byteCount: MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: 1)
    }

    /// Uninitialised storage for `count` values of `T` (`count` may be zero).
    func allocate<T>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        allocate(byteCount: MemoryLayout<T>.stride * max(count, 1), alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A protobuf-c allocator whose allocations come from this arena. The returned value
    /// holds an unretained reference: use it only while the arena is alive.
    func protobufCAllocator() -> ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { data, size in
                Unmanaged<Arena>.fromOpaque(data!).takeUnretainedValue().allocate(byteCount: size)
            },
            free: { _, _ in },
            allocator_data: Unmanaged.passUnretained(self).toOpaque()
        )
    }
}
