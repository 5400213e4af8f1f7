// Serialization into caller-owned, reused byte buffers (`ByteSink`: [UInt8], or the FlatArray<UInt8> of an
// output queue): status lines, headers, integers, chunked framing.
// Nothing here creates Strings; appending a `String` argument copies its UTF-8 bytes only.

/// A growable byte buffer the writers append to: `[UInt8]` and `FlatArray<UInt8>`.
public protocol ByteSink {
    var count: Int { get }
    subscript(i: Int) -> UInt8 { get set }
    mutating func append(_ b: UInt8)
    mutating func append(contentsOf p: UnsafeRawBufferPointer)
    mutating func append(contentsOf p: UnsafeBufferPointer<UInt8>)
    mutating func append<S: Sequence>(contentsOf s: S) where S.Element == UInt8
}

extension Array: ByteSink where Element == UInt8 {}
extension FlatArray: ByteSink where Element == UInt8 {}

public enum HTTPWriter {
    /// Appends `v` in decimal ASCII.
    @inlinable public static func appendDecimal(_ v: Int, into out: inout some ByteSink) {
        if v < 0 {
            out.append(0x2D)
            appendDecimal(UInt(v.magnitude), into: &out)
        } else {
            appendDecimal(UInt(v), into: &out)
        }
    }

    @inlinable public static func appendDecimal(_ v: UInt, into out: inout some ByteSink) {
        if v < 10 { out.append(0x30 &+ UInt8(v)); return }
        var digits = 1
        var t = v
        while t >= 10 { t /= 10; digits += 1 }
        let start = out.count
        for _ in 0..<digits { out.append(0x30) }
        var x = v
        var i = start + digits - 1
        while true {
            out[i] = 0x30 &+ UInt8(x % 10)
            x /= 10
            if x == 0 { break }
            i -= 1
        }
    }

    /// Appends `v` in lowercase hexadecimal (chunk sizes).
    @inlinable public static func appendHex(_ v: Int, into out: inout some ByteSink) {
        precondition(v >= 0)
        let hex: StaticString = "0123456789abcdef"
        var shift = 60
        while shift > 0 && (v >> shift) & 0xF == 0 { shift -= 4 }
        while shift >= 0 {
            out.append(hex.utf8Start[(v >> shift) & 0xF])
            shift -= 4
        }
    }

    @inlinable public static func append(_ s: StaticString, into out: inout some ByteSink) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Disfavoured so that a string literal picks the StaticString overload (a plain memcpy) instead of
    /// going through String.UTF8View (bridge-object retain/release and a generic copy per call).
    @_disfavoredOverload
    @inlinable public static func append(_ s: String, into out: inout some ByteSink) {
        out.append(contentsOf: s.utf8)
    }

    /// `HTTP/1.1 <status> <reason>\r\n` (reason from `reasonPhrase` when nil).
    public static func appendStatusLine(status: Int, reason: String? = nil, versionMinor: UInt8 = 1,
                                        into out: inout some ByteSink) {
        append(versionMinor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", into: &out)
        appendDecimal(status, into: &out)
        out.append(0x20)
        if let r = reason { append(r, into: &out) } else { append(reasonPhrase(status), into: &out) }
        append("\r\n", into: &out)
    }

    /// `<method> <target> HTTP/1.1\r\n`.
    public static func appendRequestLine<T: Collection>(method: HTTPMethod, methodName: String? = nil, target: T,
                                                        into out: inout some ByteSink) where T.Element == UInt8 {
        if let m = methodName { append(m, into: &out) } else { append(method.name, into: &out) }
        out.append(0x20)
        out.append(contentsOf: target)
        append(" HTTP/1.1\r\n", into: &out)
    }

    /// `name: value\r\n`.
    @inlinable public static func appendHeader(_ name: StaticString, _ value: String, into out: inout some ByteSink) {
        append(name, into: &out); append(": ", into: &out); append(value, into: &out); append("\r\n", into: &out)
    }
    @_disfavoredOverload
    @inlinable public static func appendHeader(_ name: String, _ value: String, into out: inout some ByteSink) {
        append(name, into: &out); append(": ", into: &out); append(value, into: &out); append("\r\n", into: &out)
    }
    @inlinable public static func appendHeader(_ name: StaticString, _ value: Int, into out: inout some ByteSink) {
        append(name, into: &out); append(": ", into: &out); appendDecimal(value, into: &out); append("\r\n", into: &out)
    }
    /// Copies header `i` of `headers` verbatim (name as received).
    @inlinable public static func appendHeader(_ headers: HTTPHeaders, at i: Int, into out: inout some ByteSink) {
        out.append(contentsOf: headers.nameBytes(at: i)); append(": ", into: &out)
        out.append(contentsOf: headers.valueBytes(at: i)); append("\r\n", into: &out)
    }
    @inlinable public static func appendEndOfHead(into out: inout some ByteSink) { append("\r\n", into: &out) }

    public static func reasonPhrase(_ status: Int) -> StaticString {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Moved Temporarily"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Not Allowed"
        case 408: return "Request Time-out"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Request Entity Too Large"
        case 414: return "Request-URI Too Large"
        case 415: return "Unsupported Media Type"
        case 416: return "Requested Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Temporarily Unavailable"
        case 504: return "Gateway Time-out"
        case 505: return "HTTP Version Not Supported"
        default: return "Unknown"
        }
    }
}

/// Chunked transfer coding of body pieces into a reusable buffer.
public struct ChunkedEncoder {
    public init() {}

    /// Appends one chunk (`<hex size>\r\n<data>\r\n`). An empty piece writes nothing (it would end the body).
    @inlinable public func appendChunk(_ data: UnsafeRawBufferPointer, into out: inout some ByteSink) {
        guard data.count > 0 else { return }
        appendChunkHeader(size: data.count, into: &out)
        out.append(contentsOf: data)
        HTTPWriter.append("\r\n", into: &out)
    }

    /// Only the size line, for writev-style sending of the data from its own buffer; follow the data
    /// with `appendChunkTrailer`.
    @inlinable public func appendChunkHeader(size: Int, into out: inout some ByteSink) {
        HTTPWriter.appendHex(size, into: &out)
        HTTPWriter.append("\r\n", into: &out)
    }
    @inlinable public func appendChunkTrailer(into out: inout some ByteSink) { HTTPWriter.append("\r\n", into: &out) }

    /// The last chunk with no trailers: `0\r\n\r\n`.
    @inlinable public func appendLastChunk(into out: inout some ByteSink) { HTTPWriter.append("0\r\n\r\n", into: &out) }
}

#if canImport(Glibc)
import Glibc
#endif

/// Writes a message head into caller-owned raw memory (a per-worker scratch area): every piece is one
/// bounds check and a copy, without the uniqueness and capacity checks of `[UInt8].append` (which cost
/// ~50 instructions per piece; a proxied head is 60–80 pieces). A write that does not fit sets `overflow`
/// and is dropped; the caller then writes the head again into a larger area.
public struct HeadWriter {
    @usableFromInline let base: UnsafeMutablePointer<UInt8>
    @usableFromInline let limit: Int
    @usableFromInline var used = 0
    @usableFromInline var over = false

    @inlinable public init(base: UnsafeMutablePointer<UInt8>, capacity: Int) {
        self.base = base
        limit = capacity
    }

    /// Bytes written so far.
    @inlinable public var count: Int { used }
    /// A write did not fit: the head is incomplete and must be written again into a larger area.
    @inlinable public var overflow: Bool { over }
    /// The bytes written so far.
    @inlinable public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: used) }

    @inlinable @inline(__always) public mutating func put(_ p: UnsafeRawPointer?, _ k: Int) {
        guard k > 0 else { return }
        guard k <= limit &- used else { over = true; return }
        memcpy(base + used, p!, k)
        used &+= k
    }

    @inlinable @inline(__always) public mutating func put(_ s: StaticString) { put(UnsafeRawPointer(s.utf8Start), s.utf8CodeUnitCount) }
    @inlinable @inline(__always) public mutating func put(_ p: UnsafeRawBufferPointer) { put(p.baseAddress, p.count) }
    @inlinable @inline(__always) public mutating func put(_ p: UnsafeBufferPointer<UInt8>) { put(UnsafeRawPointer(p.baseAddress), p.count) }
    @inlinable public mutating func put(_ a: [UInt8]) { a.withUnsafeBytes { put($0) } }
    @inlinable public mutating func put(_ a: FlatArray<UInt8>) { a.withUnsafeBytes { put($0) } }
    /// Disfavoured: a string literal must pick put(StaticString) (a memcpy), not this.
    @_disfavoredOverload
    @inlinable public mutating func put(_ s: String) {
        var s = s
        s.withUTF8 { put($0) }
    }

    @inlinable @inline(__always) public mutating func put(_ b: UInt8) {
        guard used < limit else { over = true; return }
        base[used] = b
        used &+= 1
    }

    /// Up to `maxBytes` written by `body` straight into the area; `body` returns how many it wrote.
    @inlinable public mutating func putRaw(maxBytes: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        guard maxBytes <= limit &- used else { over = true; return }
        used &+= body(base + used)
    }

    /// The `k` bytes written earlier at offset `from`, again (a value the head carries twice).
    @inlinable public mutating func putAgain(from: Int, count k: Int) {
        precondition(from >= 0 && k >= 0 && from + k <= used)
        put(UnsafeRawPointer(base + from), k)
    }

    /// `v` in decimal ASCII.
    @inlinable public mutating func putDecimal(_ v: Int) {
        guard 21 <= limit &- used else { over = true; return }
        if v < 0 { base[used] = 0x2D; used &+= 1 }
        var x = v.magnitude
        // (the digit count by comparisons: the values written are small, statuses, ports, latencies)
        var digits = x < 10 ? 1 : x < 100 ? 2 : x < 1000 ? 3 : x < 10000 ? 4 : 5
        if digits == 5 {
            var t = x / 10000
            while t >= 10 { t /= 10; digits &+= 1 }
        }
        var i = used &+ digits &- 1
        while true {
            base[i] = 0x30 &+ UInt8(truncatingIfNeeded: x % 10)
            x /= 10
            if x == 0 { break }
            i &-= 1
        }
        used &+= digits
    }

    /// A header as received, `name: value\r\n`, from the bytes of its `HTTPHeaders.storage`.
    @inlinable public mutating func putHeader(_ storage: UnsafeBufferPointer<UInt8>, _ f: HTTPHeaders.Field) {
        let nl = Int(f.nameLength), vl = Int(f.valueLength)
        guard nl &+ vl &+ 4 <= limit &- used else { over = true; return }
        let st = storage.baseAddress!
        memcpy(base + used, st + Int(f.nameStart), nl)
        used &+= nl
        base[used] = 0x3A; base[used &+ 1] = 0x20
        used &+= 2
        if vl > 0 { memcpy(base + used, st + Int(f.valueStart), vl) }
        used &+= vl
        base[used] = 0x0D; base[used &+ 1] = 0x0A
        used &+= 2
    }
}

/// A reusable raw area for HeadWriter (one per worker), grown for the rare head that does not fit.
public final class HeadScratch {
    public private(set) var base: UnsafeMutablePointer<UInt8>
    public private(set) var capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    /// Runs `body` with a writer over the area, growing the area and running it again until the head fits,
    /// then appends the head to `out` (one copy).
    @inlinable public func write(appendingTo out: inout some ByteSink, _ body: (inout HeadWriter) -> Void) {
        while true {
            var w = HeadWriter(base: base, capacity: capacity)
            body(&w)
            if !w.overflow {
                out.append(contentsOf: w.bytes)
                return
            }
            grow()
        }
    }

    @usableFromInline func grow() {
        base.deallocate()
        capacity *= 2
        base = .allocate(capacity: capacity)
    }
}
