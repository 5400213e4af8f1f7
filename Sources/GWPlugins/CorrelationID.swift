// correlation-id (Kong 3.10 `kong/plugins/correlation-id/handler.lua`, KONG-PLUGINS.md §3), priority 100001.
// access: a non-empty incoming `header_name` header (the first one) is kept; otherwise an id is generated
// and sent upstream. With echo_downstream, header_filter sets the header on the response — the id of
// access, or, when access did not run for this request, the incoming header or a new id — on every
// response, the gateway's own errors included.
// Generators: `uuid` (random v4, lower-case), `uuid#counter` (the worker's uuid, '#', the worker's
// counter from 1), `tracker` (server_addr-server_port-pid-connection-connection_requests-seconds.mmm).
// The id is written into the context's reusable buffer: no allocation per request. Not yet: the
// `correlation_id` log serializer field (no logging plugin runs yet).
import Glibc
import GWHTTP
import GWStore

/// The worker's id state, shared by every correlation-id instance of the process (Kong's worker_uuid
/// and worker_counter live per nginx worker): a xoshiro256** generator seeded from getentropy (getrandom).
/// Worker-loop confined (one thread per worker process).
final class WorkerIDs: @unchecked Sendable {
    static let shared = WorkerIDs()

    private var s0: UInt64 = 0, s1: UInt64 = 0, s2: UInt64 = 0, s3: UInt64 = 0
    private var seededPid: Int32 = 0
    /// The worker's uuid (36 bytes) for uuid#counter, made on first use.
    private var workerUUID: [UInt8] = []
    private var counter: UInt64 = 0

    private func seedIfNeeded() {
        let pid = getpid()
        guard pid != seededPid else { return }   // a fork gets its own stream
        seededPid = pid
        var seed: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &seed) { b in
            if getentropy(b.baseAddress, b.count) != 0 {
                var ts = timespec()
                clock_gettime(CLOCK_REALTIME, &ts)
                b.storeBytes(of: UInt64(bitPattern: Int64(ts.tv_nsec)) ^ UInt64(pid) << 32, as: UInt64.self)
            }
        }
        s0 = seed.0 | 1; s1 = seed.1; s2 = seed.2; s3 = seed.3
        workerUUID = []
        counter = 0
    }

    @inline(__always) private func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Appends a random version-4 UUID (36 lower-case characters).
    func appendUUID(to out: inout [UInt8]) {
        seedIfNeeded()
        var a = next(), b = next()
        a = (a & ~0xF000) | 0x4000                        // version 4 (bits 12-15 of the third group)
        b = (b & ~(0xC << 60)) | (0x8 << 60)              // variant 10xx
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 36) { buf in
            var i = 0
            @inline(__always) func hex(_ v: UInt64, _ digits: Int) {
                var s = (digits - 1) * 4
                while s >= 0 {
                    let d = UInt8((v >> UInt64(s)) & 15)
                    buf[i] = d < 10 ? 0x30 + d : 0x57 + d
                    i += 1; s -= 4
                }
            }
            hex(a >> 32, 8); buf[i] = 0x2D; i += 1
            hex(a >> 16, 4); buf[i] = 0x2D; i += 1
            hex(a, 4); buf[i] = 0x2D; i += 1
            hex(b >> 48, 4); buf[i] = 0x2D; i += 1
            hex(b, 12)
            out.append(contentsOf: UnsafeBufferPointer(buf))
        }
    }

    /// Appends `<worker uuid>#<counter>` (the counter counts from 1 per worker).
    func appendUUIDCounter(to out: inout [UInt8]) {
        seedIfNeeded()
        if workerUUID.isEmpty { workerUUID.reserveCapacity(36); appendUUID(to: &workerUUID) }
        counter &+= 1
        out.append(contentsOf: workerUUID)
        out.append(0x23)
        appendDecimal(counter, to: &out)
    }
}

@inline(__always) func appendDecimal(_ v: UInt64, to out: inout [UInt8]) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
        var v = v, i = 20
        repeat { i -= 1; buf[i] = 0x30 + UInt8(v % 10); v /= 10 } while v > 0
        out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i...]))
    }
}

final class CorrelationID: PluginHandler {
    static let name = "correlation-id"
    static let priority = 100001
    /// Per-request flag: access ran and left the id in `ctx.correlationID`.
    static let accessRan: UInt32 = 1

    enum Generator { case uuid, uuidCounter, tracker }

    let headerName: [UInt8]
    let generator: Generator
    let echoDownstream: Bool
    let ids = WorkerIDs.shared

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: CorrelationID.name)
        let name = try c.string("header_name", "Kong-Request-ID")
        guard !name.isEmpty, !name.utf8.contains(where: { $0 <= 0x20 || $0 == 0x3A || $0 >= 0x7F }) else {
            throw PluginError("correlation-id: header_name '\(name)' is not a header name")
        }
        headerName = Array(name.utf8)
        switch try c.string("generator", "uuid#counter") {
        case "uuid": generator = .uuid
        case "uuid#counter": generator = .uuidCounter
        case "tracker": generator = .tracker
        case let g: throw PluginError("correlation-id: unknown generator '\(g)'")
        }
        echoDownstream = try c.bool("echo_downstream", false)
        super.init(entity: entity, priority: CorrelationID.priority)
    }

    override var phases: PluginPhases { echoDownstream ? [.access, .headerFilter] : .access }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        ctx.correlationID.removeAll(keepingCapacity: true)
        if !copyIncoming(ctx, request) {
            generate(ctx)
            ctx.correlationID.withUnsafeBytes { v in
                headerName.withUnsafeBytes { n in ctx.upstreamHeaders.set(rawName: n, rawValue: v) }
            }
        }
        if echoDownstream { ctx.setFlag(CorrelationID.accessRan) }
    }

    override func headerFilter(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, status: Int, headers: borrowing HTTPHeaders) {
        guard echoDownstream else { return }
        if !ctx.flag(CorrelationID.accessRan) {
            ctx.correlationID.removeAll(keepingCapacity: true)
            if !copyIncoming(ctx, request) { generate(ctx) }
        }
        ctx.correlationID.withUnsafeBytes { v in
            headerName.withUnsafeBytes { n in ctx.responseHeaders.set(rawName: n, rawValue: v) }
        }
    }

    /// The first incoming header's value into `ctx.correlationID`; false when absent or empty.
    private func copyIncoming(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> Bool {
        let i = headerName.withUnsafeBufferPointer { request.headers.firstIndex(of: $0) }
        guard let i else { return false }
        let f = request.headers.fields[i]
        guard f.valueLength > 0 else { return false }
        request.headers.storage.withUnsafeBufferPointer { st in
            ctx.correlationID.append(contentsOf: UnsafeBufferPointer(rebasing: st[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)]))
        }
        return true
    }

    private func generate(_ ctx: PluginContext) {
        switch generator {
        case .uuid: ids.appendUUID(to: &ctx.correlationID)
        case .uuidCounter: ids.appendUUIDCounter(to: &ctx.correlationID)
        case .tracker: appendTracker(ctx)
        }
    }

    /// nginx's `server_addr-server_port-pid-connection-connection_requests-now` (now with 3 decimals).
    private func appendTracker(_ ctx: PluginContext) {
        ctx.correlationID.append(contentsOf: ctx.serverAddress)
        ctx.correlationID.append(0x2D)
        appendDecimal(UInt64(ctx.serverPort), to: &ctx.correlationID)
        ctx.correlationID.append(0x2D)
        appendDecimal(UInt64(getpid()), to: &ctx.correlationID)
        ctx.correlationID.append(0x2D)
        appendDecimal(UInt64(ctx.connectionSerial), to: &ctx.correlationID)
        ctx.correlationID.append(0x2D)
        appendDecimal(UInt64(ctx.connectionRequests), to: &ctx.correlationID)
        ctx.correlationID.append(0x2D)
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        appendDecimal(UInt64(ts.tv_sec), to: &ctx.correlationID)
        ctx.correlationID.append(0x2E)
        let ms = UInt64(ts.tv_nsec / 1_000_000)
        ctx.correlationID.append(0x30 + UInt8(ms / 100))
        ctx.correlationID.append(0x30 + UInt8(ms / 10 % 10))
        ctx.correlationID.append(0x30 + UInt8(ms % 10))
    }
}
