// A request body read whole before the upstream sees any of it (nginx's request buffering, Kong's
// route `request_buffering = true`, or a plugin that reads the body in access): the decoded bytes
// (chunk framing already removed by the parser) in memory up to client_body_buffer_size, then in a
// temp file under <prefix>/client_body_temp, as nginx does. The body is then sent upstream with a
// Content-Length of our own, so no framing the client chose ever reaches the upstream, and it can be
// sent again to the next peer on a retry.
//
// Invariants: `length` = bytes appended since `reset`; bytes [0, length) are in `memory` while
// `fd < 0`, else all of them are in the file (memory was written out when the limit was crossed).
// The temp file is unlinked as soon as it is created: nothing is left behind by a crash. Memory is
// bounded by the limit; the file by client_max_body_size (0: the disk). File reads and writes are
// regular-file I/O on the worker's loop, as nginx's are. Worker-loop confined.
#if canImport(Glibc)
import Glibc
import GWHTTP
#endif

final class RequestBodyBuffer {
    let memoryLimit: Int
    let tempDirectory: String
    private(set) var memory: [UInt8] = []
    private(set) var fd: Int32 = -1
    private(set) var length = 0
    /// Why the last append failed (for the error log).
    private(set) var failure: String? = nil

    init(memoryLimit: Int, tempDirectory: String) {
        self.memoryLimit = memoryLimit
        self.tempDirectory = tempDirectory
    }

    deinit { if fd >= 0 { _ = Glibc.close(fd) } }

    var inMemory: Bool { fd < 0 }

    /// Appends a decoded piece; false when the temp file could not be written.
    func append(_ p: UnsafeRawBufferPointer) -> Bool {
        if p.count == 0 { return true }
        if fd < 0 && memory.count + p.count <= memoryLimit {
            if memory.capacity < memoryLimit { memory.reserveCapacity(memoryLimit) }
            memory.append(contentsOf: p)
            length += p.count
            return true
        }
        if fd < 0 {
            guard openTempFile() else { return false }
            let ok = memory.withUnsafeBytes { writeAll($0) }
            guard ok else { return false }
            memory.removeAll(keepingCapacity: true)
        }
        guard writeAll(p) else { return false }
        length += p.count
        return true
    }

    /// Copies up to `max` bytes of the body starting at `offset` to the end of `out`; the count copied
    /// (0 at the end, or when the file cannot be read: the caller stops sending).
    func copy(from offset: Int, max: Int, into out: inout FlatArray<UInt8>) -> Int {
        let n = Swift.min(max, length - offset)
        guard n > 0 else { return 0 }
        if fd < 0 {
            memory.withUnsafeBytes { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[offset ..< offset + n])) }
            return n
        }
        var got = 0
        out.append(upTo: n) { p in
            while got < n {
                let r = pread(fd, p + got, n - got, off_t(offset + got))
                if r < 0 && errno == EINTR { continue }
                if r <= 0 { break }
                got += r
            }
            return got
        }
        return got
    }

    /// Forgets the body: the file is closed (it was already unlinked); memory keeps its capacity.
    func reset() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
        memory.removeAll(keepingCapacity: true)
        length = 0
        failure = nil
    }

    private func openTempFile() -> Bool {
        var template = Array((tempDirectory + "/body.XXXXXX").utf8CString)
        let f = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard f >= 0 else {
            failure = "could not create a temp file in \(tempDirectory) (errno \(errno))"
            return false
        }
        _ = fcntl(f, F_SETFD, FD_CLOEXEC)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        fd = f
        return true
    }

    private func writeAll(_ p: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < p.count {
            let r = write(fd, p.baseAddress! + done, p.count - done)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 {
                failure = "could not write the request body to a temp file (errno \(errno))"
                return false
            }
            done += r
        }
        return true
    }
}

/// Free body buffers of one worker, so that requests with bodies reuse their memory (bounded).
final class RequestBodyBufferPool {
    let memoryLimit: Int
    let tempDirectory: String
    private var free: [RequestBodyBuffer] = []
    private let maxFree = 64

    init(memoryLimit: Int, tempDirectory: String) {
        self.memoryLimit = memoryLimit
        self.tempDirectory = tempDirectory
    }

    func take() -> RequestBodyBuffer {
        free.popLast() ?? RequestBodyBuffer(memoryLimit: memoryLimit, tempDirectory: tempDirectory)
    }

    func give(_ b: RequestBodyBuffer) {
        b.reset()
        if free.count < maxFree { free.append(b) }
    }
}
