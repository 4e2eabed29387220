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
/// The arena's memory is a chain of heap chunks, each starting with the address of the
/// chunk before it; `deinit` walks the chain. A decode sizes the first chunk from the
/// input (``init(expecting:)``), so that a typical message unpacks into one chunk.
///
/// An arena is used by one thread for the duration of one synchronous call, so it is not
/// `Sendable`.
final class Arena {
    /// Size of the first chunk when nothing is known of what will be allocated (a typical
    /// `Account` encodes in about 7.5 KiB of arena); later chunks double, capped at `maxChunk`.
    private static let firstChunk = 8192
    private static let maxChunk = 1 << 20
    /// Bytes at the start of every chunk holding the address of the previous chunk (16, to
    /// keep the chunk's allocations 16-byte aligned).
    private static let header = 16

    private var cursor: UnsafeMutableRawPointer?
    private var remaining = 0
    private var nextChunkSize: Int
    /// The newest chunk (nil before the first allocation).
    private var lastChunk: UnsafeMutableRawPointer?

    init() {
        nextChunkSize = Arena.firstChunk
    }

    /// An arena whose first chunk holds `byteCount` bytes (at most `maxChunk`), allocated
    /// on first use.
    init(expecting byteCount: Int) {
        nextChunkSize = min(max(byteCount, Arena.firstChunk), Arena.maxChunk)
    }

    deinit {
        var chunk = lastChunk
        while let current = chunk {
            chunk = current.load(as: UnsafeMutableRawPointer?.self)
            current.deallocate()
        }
    }

    /// Returns `byteCount` bytes aligned to `alignment` (a power of two, at most 16), valid
    /// until the arena is deinitialised. The memory is uninitialised.
    @inline(__always)
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
        return allocateSlow(byteCount: byteCount)
    }

    /// A new chunk; an allocation larger than the next chunk gets one of its own, and the
    /// current chunk stays in use for the allocations after it.
    private func allocateSlow(byteCount: Int) -> UnsafeMutableRawPointer {
        if Arena.header + byteCount > nextChunkSize {
            return newChunk(byteCount: Arena.header + byteCount) + Arena.header
        }
        let size = nextChunkSize
        nextChunkSize = min(nextChunkSize * 2, Arena.maxChunk)
        let start = newChunk(byteCount: size) + Arena.header
        cursor = start + byteCount
        remaining = size - Arena.header - byteCount
        return start
    }

    /// Allocates a chunk of `byteCount` bytes and links it into the chain.
    private func newChunk(byteCount: Int) -> UnsafeMutableRawPointer {
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 16)
        chunk.storeBytes(of: lastChunk, as: UnsafeMutableRawPointer?.self)
        lastChunk = chunk
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
    /// holds an unretained reference: use it only while the arena is alive. The callback
    /// borrows the arena without retaining it (protobuf-c calls it once per string, array
    /// and sub-message it unpacks); its allocations are 8-byte aligned, the largest
    /// alignment a protobuf-c struct member has (pointers, 64-bit integers, doubles).
    func protobufCAllocator() -> ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { data, size in
                Unmanaged<Arena>.fromOpaque(data!)._withUnsafeGuaranteedRef {
                    $0.allocate(byteCount: size, alignment: 8)
                }
            },
            free: { _, _ in },
            allocator_data: Unmanaged.passUnretained(self).toOpaque()
        )
    }
}
