// A fixed-capacity byte buffer over malloc'd memory: [start, end) holds unread bytes.
// Buffers come from a per-worker free list (BufferPool) and go back when a connection is idle,
// so an idle keep-alive client holds no buffer at all (nginx frees idle buffers the same way).
// Invariant: 0 <= start <= end <= capacity. Worker-loop confined.
#if canImport(Glibc)
import Glibc
#endif

final class IOBuffer {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var start = 0
    var end = 0

    init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// A buffer with no room, held by a connection that lent its buffer back while idle (reads into it
    /// see no free space; `BufferPool.give` ignores it). One per worker process.
    nonisolated(unsafe) static let none = IOBuffer(capacity: 0)

    @inline(__always) var count: Int { end - start }
    @inline(__always) var isEmpty: Bool { end == start }
    @inline(__always) var freeSpace: Int { capacity - end }
    @inline(__always) var readable: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + start, count: end - start) }

    @inline(__always) func reset() { start = 0; end = 0 }

    /// Moves unread bytes to the front so that there is room to read more.
    @inline(__always) func compact() {
        if start == 0 { return }
        if start == end { start = 0; end = 0; return }
        memmove(base, base + start, end - start)
        end -= start
        start = 0
    }
}

/// A free list of equally sized buffers. Worker-loop confined.
final class BufferPool {
    let bufferSize: Int
    private var free: [IOBuffer] = []
    private let maxFree: Int

    init(bufferSize: Int, maxFree: Int = 1024) {
        self.bufferSize = bufferSize
        self.maxFree = maxFree
        free.reserveCapacity(maxFree)
    }

    @inline(__always) func take() -> IOBuffer {
        if let b = free.popLast() { b.reset(); return b }
        return IOBuffer(capacity: bufferSize)
    }

    /// `consuming`: a caller that moves its buffer in (`give(x.take()!)`) hands its reference over
    /// without a retain and a release.
    @inline(__always) func give(_ b: consuming IOBuffer) {
        if free.count < maxFree && b.capacity > 0 { free.append(b) }
    }
}
