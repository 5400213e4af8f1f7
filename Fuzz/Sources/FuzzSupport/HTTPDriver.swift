// Drives HTTPRequestParser / HTTPResponseParser over a byte stream fed in given pieces, following the driving
// protocol of Sources/GWHTTP/HTTPParsers.swift, and records what the caller would see as a list of events with
// absolute stream positions. Body pieces are coalesced, so the list does not depend on the split points: the
// same stream fed whole and in random pieces must give the same list (the fuzz targets' invariant).
@testable import GWHTTP

public enum HTTPEvent: Equatable, CustomStringConvertible {
    case head(at: Int, [UInt8])
    case informational(at: Int, [UInt8])
    case body([UInt8])
    case complete(at: Int)
    case upgrade(at: Int)
    case error(HTTPParseError.Kind, String)
    case eof(HTTPEOFResult)

    public var description: String {
        switch self {
        case .head(let at, let h): return "head@\(at)[\(String(decoding: h, as: UTF8.self))]"
        case .informational(let at, let h): return "1xx@\(at)[\(String(decoding: h, as: UTF8.self))]"
        case .body(let b): return "body(\(b.count))"
        case .complete(let at): return "complete@\(at)"
        case .upgrade(let at): return "upgrade@\(at)"
        case .error(let k, let r): return "error(\(k), \(r))"
        case .eof(let r): return "eof(\(r))"
        }
    }
}

/// A rendering of everything a head exposes (and a touch of every accessor, so a bad index traps).
public func render(_ h: HTTPMessageHead) -> [UInt8] {
    var o: [UInt8] = []
    func add(_ s: String) { o.append(contentsOf: s.utf8); o.append(0x7C) }
    add("\(h.methodCode) \(h.methodName) \(h.status) \(h.versionMajor).\(h.versionMinor)")
    o.append(contentsOf: h.target); o.append(0x7C)
    o.append(contentsOf: h.pathBytes); o.append(0x7C)
    if let q = h.queryBytes { o.append(contentsOf: q) }
    o.append(0x7C)
    o.append(contentsOf: h.reason); o.append(0x7C)
    add("ka=\(h.keepAlive) cl=\(String(describing: h.contentLength)) chunked=\(h.isChunked) cont=\(h.expectsContinue) up=\(h.isUpgrade) host=\(String(describing: h.hostIndex))")
    if let hb = h.hostBytes { o.append(contentsOf: hb) }
    _ = h.targetAuthority
    for i in 0 ..< h.headers.count {
        o.append(contentsOf: h.headers.nameBytes(at: i)); o.append(0x3A)
        o.append(contentsOf: h.headers.valueBytes(at: i)); o.append(0x0A)
    }
    return o
}

public protocol FuzzableHTTPParser: AnyObject {
    func execute(_ bytes: UnsafeRawBufferPointer) -> HTTPParseStep
    func finish() -> HTTPEOFResult
    var currentHead: HTTPMessageHead { get }
}
extension HTTPRequestParser: FuzzableHTTPParser { public var currentHead: HTTPMessageHead { head } }
extension HTTPResponseParser: FuzzableHTTPParser { public var currentHead: HTTPMessageHead { head } }

/// Feeds `stream` in `pieces` (each copied into its own exact-size allocation, so ASan sees any read past a
/// piece). `beforeMessage(n)` runs before message n's bytes (response parser: expectResponse);
/// `onUpgrade` returns true to resume parsing after the upgrade (request parser: refused upgrade).
public func drive<P: FuzzableHTTPParser>(_ p: P, _ stream: [UInt8], pieces: [Range<Int>],
                                         beforeMessage: (Int) -> Void = { _ in },
                                         onUpgrade: (Int) -> Bool = { _ in false },
                                         onHead: (HTTPMessageHead) -> Void = { _ in }) -> [HTTPEvent] {
    var events: [HTTPEvent] = []
    func note(_ e: HTTPEvent) {
        if case .body(let b) = e, case .body(let prev)? = events.last {
            events[events.count - 1] = .body(prev + b)
        } else { events.append(e) }
    }
    var messages = 0
    var upgrades = 0
    beforeMessage(0)
    for r in pieces {
        let piece = Array(stream[r])
        var stopped = false
        piece.withUnsafeBytes { buf in
            var off = 0
            var idle = 0
            while true {
                let step = p.execute(UnsafeRawBufferPointer(rebasing: buf[off...]))
                var consumed = 0
                switch step {
                case .needMore: return
                case .head(let c):
                    consumed = c; note(.head(at: r.lowerBound + off + c, render(p.currentHead))); onHead(p.currentHead)
                case .informational(let c):
                    consumed = c; note(.informational(at: r.lowerBound + off + c, render(p.currentHead)))
                case .body(let b, let c):
                    consumed = c
                    check(b.count <= c, "body piece longer than the bytes consumed")
                    if let base = b.baseAddress, b.count > 0 {
                        check(base >= buf.baseAddress! && base + b.count <= buf.baseAddress! + buf.count,
                              "body piece outside the caller's buffer")
                    }
                    note(.body(Array(b)))
                case .messageComplete(let c):
                    consumed = c; note(.complete(at: r.lowerBound + off + c))
                    messages += 1; beforeMessage(messages)
                case .upgrade(let c):
                    consumed = c; note(.upgrade(at: r.lowerBound + off + c))
                    upgrades += 1
                    if upgrades > 64 || !onUpgrade(upgrades) { stopped = true; return }
                    messages += 1; beforeMessage(messages)
                case .error(let e): note(.error(e.kind, e.reason)); stopped = true; return
                }
                check(consumed >= 0 && consumed <= buf.count - off, "consumed \(consumed) of \(buf.count - off) bytes")
                off += consumed
                idle = consumed == 0 ? idle + 1 : 0
                check(idle < 8, "parser makes no progress at \(r.lowerBound + off)")
            }
        }
        if stopped { return events }
    }
    note(.eof(p.finish()))
    return events
}
