// Serialization into caller-owned, reused `[UInt8]` buffers: status lines, headers, integers, chunked framing.
// Nothing here creates Strings; appending a `String` argument copies its UTF-8 bytes only.

public enum HTTPWriter {
    /// Appends `v` in decimal ASCII.
    @inlinable public static func appendDecimal(_ v: Int, into out: inout [UInt8]) {
        if v < 0 {
            out.append(0x2D)
            appendDecimal(UInt(v.magnitude), into: &out)
        } else {
            appendDecimal(UInt(v), into: &out)
        }
    }

    @inlinable public static func appendDecimal(_ v: UInt, into out: inout [UInt8]) {
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
    @inlinable public static func appendHex(_ v: Int, into out: inout [UInt8]) {
        precondition(v >= 0)
        let hex: StaticString = "0123456789abcdef"
        var shift = 60
        while shift > 0 && (v >> shift) & 0xF == 0 { shift -= 4 }
        while shift >= 0 {
            out.append(hex.utf8Start[(v >> shift) & 0xF])
            shift -= 4
        }
    }

    @inlinable public static func append(_ s: StaticString, into out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Disfavoured so that a string literal picks the StaticString overload (a plain memcpy) instead of
    /// going through String.UTF8View (bridge-object retain/release and a generic copy per call).
    @_disfavoredOverload
    @inlinable public static func append(_ s: String, into out: inout [UInt8]) {
        out.append(contentsOf: s.utf8)
    }

    /// `HTTP/1.1 <status> <reason>\r\n` (reason from `reasonPhrase` when nil).
    public static func appendStatusLine(status: Int, reason: String? = nil, versionMinor: UInt8 = 1,
                                        into out: inout [UInt8]) {
        append(versionMinor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", into: &out)
        appendDecimal(status, into: &out)
        out.append(0x20)
        if let r = reason { append(r, into: &out) } else { append(reasonPhrase(status), into: &out) }
        append("\r\n", into: &out)
    }

    /// `<method> <target> HTTP/1.1\r\n`.
    public static func appendRequestLine<T: Collection>(method: HTTPMethod, methodName: String? = nil, target: T,
                                                        into out: inout [UInt8]) where T.Element == UInt8 {
        if let m = methodName { append(m, into: &out) } else { append(method.name, into: &out) }
        out.append(0x20)
        out.append(contentsOf: target)
        append(" HTTP/1.1\r\n", into: &out)
    }

    /// `name: value\r\n`.
    @inlinable public static func appendHeader(_ name: StaticString, _ value: String, into out: inout [UInt8]) {
        append(name, into: &out); append(": ", into: &out); append(value, into: &out); append("\r\n", into: &out)
    }
    @_disfavoredOverload
    @inlinable public static func appendHeader(_ name: String, _ value: String, into out: inout [UInt8]) {
        append(name, into: &out); append(": ", into: &out); append(value, into: &out); append("\r\n", into: &out)
    }
    @inlinable public static func appendHeader(_ name: StaticString, _ value: Int, into out: inout [UInt8]) {
        append(name, into: &out); append(": ", into: &out); appendDecimal(value, into: &out); append("\r\n", into: &out)
    }
    /// Copies header `i` of `headers` verbatim (name as received).
    @inlinable public static func appendHeader(_ headers: HTTPHeaders, at i: Int, into out: inout [UInt8]) {
        out.append(contentsOf: headers.nameBytes(at: i)); append(": ", into: &out)
        out.append(contentsOf: headers.valueBytes(at: i)); append("\r\n", into: &out)
    }
    @inlinable public static func appendEndOfHead(into out: inout [UInt8]) { append("\r\n", into: &out) }

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
    @inlinable public func appendChunk(_ data: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard data.count > 0 else { return }
        appendChunkHeader(size: data.count, into: &out)
        out.append(contentsOf: data)
        HTTPWriter.append("\r\n", into: &out)
    }

    /// Only the size line, for writev-style sending of the data from its own buffer; follow the data
    /// with `appendChunkTrailer`.
    @inlinable public func appendChunkHeader(size: Int, into out: inout [UInt8]) {
        HTTPWriter.appendHex(size, into: &out)
        HTTPWriter.append("\r\n", into: &out)
    }
    @inlinable public func appendChunkTrailer(into out: inout [UInt8]) { HTTPWriter.append("\r\n", into: &out) }

    /// The last chunk with no trailers: `0\r\n\r\n`.
    @inlinable public func appendLastChunk(into out: inout [UInt8]) { HTTPWriter.append("0\r\n\r\n", into: &out) }
}

