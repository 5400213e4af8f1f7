// rate-limiting `policy = redis`: the counters of every node in one Redis (Kong 3.10
// `policies/init.lua`, KONG-PLUGINS.md §4), checked and counted in one atomic step per request.
//
// Kong runs one INCR script per window and counts rejected requests too; here one Lua script (EVALSHA,
// loaded by the connection with SCRIPT LOAD) reads every configured window and, only when each is
// below its limit, increments all of them, so the limit is exact across nodes and workers, and a
// rejected request is counted nowhere (as the local policy). Keys are Kong's:
// `ratelimit:<route_id>:<service_id>:<identifier>:<window_start_ms>:<period>` (the instance's own scope
// ids, null → the empty uuid) and expire at the end of their window (EXPIRE on first use).
//
// `redis.ssl`: the connection runs TLS (GWRedis over GWTLS); `ssl_verify` checks the chain against the
// node's `lua_ssl_trusted_certificate` and, with `server_name`, that name (also the SNI sent).
//
// `redis.host` may be a name: the master resolves it (LogHosts, c-ares) and the handler of each
// configuration generation takes the first address of that generation's answer; no answer yet is
// Redis down (below). A changed answer is a new generation: new commands go to the new address.
//
// The request waits for the reply without blocking the worker (AccessSuspension.swift); the reply or
// the failure comes back through `finish`. Redis down, timed out or refusing (and a full pending queue)
// is Kong's store error: fault_tolerant → proxied without rate-limit headers (the connection logs the
// error at most once per interval); otherwise 500 "An unexpected error occurred".
import CCrypto
import GWHTTP
import GWRedis
import GWSystem

final class RateLimitRedis {
    /// The configured host (IP literal, `localhost` or a name), for log lines.
    let host: String
    /// Where this generation sends; nil: `host` is a name the master has no answer for yet (every
    /// request is then Kong's store error, reported at most once per interval).
    let endpoint: RedisEndpoint?
    let timeoutMs: Int
    /// The worker's connection to `endpoint`, found on the first request (none in the master).
    private var connection: RedisConnection? = nil
    private var lastReport: Int64 = -1_000_000
    private var suppressed = 0
    static let reportInterval: Int64 = 10

    /// KEYS: one per window; ARGV: the limits, then the TTLs. Answers the usages before this request,
    /// then the 1-based window that stopped it (0: allowed, counted in every window).
    static let script = RedisScript(text: scriptText, sha1Hex: sha1Hex(scriptText))
    static let scriptText = """
        local n = #KEYS
        local r = {}
        local stop = 0
        for i = 1, n do
          local v = tonumber(redis.call('GET', KEYS[i]) or '0')
          r[i] = v
          if stop == 0 and v >= tonumber(ARGV[i]) then stop = i end
        end
        if stop == 0 then
          for i = 1, n do
            if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[n + i]) end
          end
        end
        r[n + 1] = stop
        return r
        """

    /// `env.hosts`: the master's answers of this generation (LogHosts); a changed answer is a new
    /// generation, so a new handler whose endpoint (and connection) is the new address.
    init(_ c: PluginConfig, _ env: PluginEnvironment) throws(PluginError) {
        guard let r = c.object("redis") else { throw PluginError("rate-limiting: redis settings missing") }
        guard let h = try r.string("host") else { throw PluginError("rate-limiting: config.redis.host missing") }
        host = h
        let port = try r.int("port", 6379)
        var ip: String? = nil
        if LogHosts.isName(h) {
            // The first address of the master's answer (an empty answer: none yet, or the name failed).
            ip = env.hosts[h.lowercased()]?.first { SocketAddress(ip: $0, port: port) != nil }
        } else {
            var lit = h == "localhost" ? "127.0.0.1" : h
            if lit.hasPrefix("["), lit.hasSuffix("]") { lit = String(lit.dropFirst().dropLast()) }
            ip = lit
        }
        let database = try r.int("database", 0), username = try r.string("username"), password = try r.string("password")
        // Kong's ssl / ssl_verify / server_name: TLS through GWTLS, verified against lua_ssl_trusted_certificate.
        let tls = try r.bool("ssl", false) ? RedisTLS(verify: try r.bool("ssl_verify", false), serverName: try r.string("server_name")) : nil
        endpoint = ip.map { RedisEndpoint(ip: $0, port: port, database: database, username: username, password: password, tls: tls) }
        timeoutMs = try r.int("timeout", 2000)
    }

    /// Sends the check for this request and suspends it; on a failure to send, Kong's store error at once.
    func start(_ rl: RateLimiting, _ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        guard let endpoint else {
            report(ctx.now, "rate-limiting: no address for Redis host \(host) (not resolved yet, or the name failed)")
            return try storeError(rl, "rate-limiting: no address for Redis host \(host)")
        }
        if connection == nil { connection = RedisClients.worker?.connection(endpoint) }
        guard let conn = connection else { return try storeError(rl, "rate-limiting: no Redis connection on this process") }
        let now = ctx.now, n = rl.periods.count
        // The words, one after the other in the scratch buffer: EVALSHA sha numkeys keys… limits… ttls…
        var b = ctx.scratch
        ctx.scratch = []   // first: `b` is then the buffer's only owner, emptied in place
        b.removeAll(keepingCapacity: true)
        defer { ctx.scratch = b }
        var ends: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let words = 3 + 3 * n
        withUnsafeMutableBytes(of: &ends) { er in
            let e = er.bindMemory(to: Int.self)
            var w = 0
            b.append(contentsOf: "EVALSHA".utf8); e[w] = b.count; w += 1
            b.append(contentsOf: RateLimitRedis.script.sha); e[w] = b.count; w += 1
            appendDecimal(&b, Int64(n)); e[w] = b.count; w += 1
            for i in 0 ..< n {
                let p = rl.periods[i]
                b.append(contentsOf: "ratelimit:".utf8)
                b.append(contentsOf: rl.routeScope.utf8); b.append(0x3A)
                b.append(contentsOf: rl.serviceScope.utf8); b.append(0x3A)
                appendIdentifier(rl, ctx, request, &b); b.append(0x3A)
                appendDecimal(&b, p.windowStart(now) * 1000); b.append(0x3A)
                b.append(contentsOf: p.name.utf8)
                e[w] = b.count; w += 1
            }
            for i in 0 ..< n { appendDecimal(&b, rl.limits[i]); e[w] = b.count; w += 1 }
            for i in 0 ..< n {
                let p = rl.periods[i]
                appendDecimal(&b, max(1, p.windowEnd(p.windowStart(now)) - now)); e[w] = b.count; w += 1
            }
        }
        let tag = ctx.suspend()
        let sent: RedisSendResult = b.withUnsafeBytes { bytes in
            withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: words) { args in
                withUnsafeBytes(of: &ends) { er in
                    let e = er.bindMemory(to: Int.self)
                    var at = 0
                    for i in 0 ..< words { args[i] = UnsafeRawBufferPointer(rebasing: bytes[at ..< e[i]]); at = e[i] }
                }
                return conn.send(UnsafeBufferPointer(args), script: RateLimitRedis.script, waiter: ctx, tag: tag,
                                 timeoutMs: timeoutMs)
            }
        }
        if case .queued = sent { return }
        ctx.cancelSuspension()
        try storeError(rl, "rate-limiting: Redis \(endpoint.label) unavailable")
    }

    /// The reply arrived (or the command failed): headers and exit as the local policy.
    func finish(_ rl: RateLimiting, _ ctx: PluginContext) throws(PluginError) {
        let r = ctx.asyncReply
        let n = rl.periods.count
        guard r.status == .ok, r.count == n + 1 else {
            return try storeError(rl, "rate-limiting: failed to get usage from Redis \(endpoint?.label ?? host): " +
                                      (r.status == .ok ? "unexpected reply" : r.message))
        }
        let stopAt = Int(r[n]) - 1
        var usages: (Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0)
        var starts: (Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &usages) { ur in
            withUnsafeMutableBytes(of: &starts) { sr in
                let u = ur.bindMemory(to: Int64.self), s = sr.bindMemory(to: Int64.self)
                for i in 0 ..< n { u[i] = r[i]; s[i] = rl.periods[i].windowStart(ctx.now) }
                rl.finish(ctx, UnsafeBufferPointer(rebasing: u[0 ..< n]), UnsafeBufferPointer(rebasing: s[0 ..< n]),
                          stop: stopAt >= 0 && stopAt < n ? stopAt : -1)
            }
        }
        if stopAt >= 0 && stopAt < n { ctx.error(rl.errorCode, rl.errorMessage) }
    }

    /// Kong: with fault_tolerant the request goes on without headers (the error is logged by the
    /// connection, at most once per interval); without it, 500.
    private func storeError(_ rl: RateLimiting, _ message: @autoclosure () -> String) throws(PluginError) {
        if rl.faultTolerant { return }
        throw PluginError(message())
    }

    /// The worker's error log, at most once per interval for this handler (the rest are counted).
    private func report(_ now: Int64, _ message: @autoclosure () -> String) {
        guard now - lastReport >= RateLimitRedis.reportInterval else { suppressed += 1; return }
        lastReport = now
        let m = message()
        RedisClients.worker?.log(suppressed > 0 ? "\(m) (\(suppressed) more since the last report)" : m)
        suppressed = 0
    }

    /// Kong's identifier (handler.lua get_identifier), as text.
    private func appendIdentifier(_ rl: RateLimiting, _ ctx: PluginContext, _ request: borrowing HTTPRequestHead,
                                  _ b: inout [UInt8]) {
        switch rl.limitBy {
        case .consumer:
            if let c = ctx.consumer { b.append(contentsOf: c.id.utf8); return }
            if let cr = ctx.credential { b.append(contentsOf: cr.id.utf8); return }
        case .credential:
            if let cr = ctx.credential { b.append(contentsOf: cr.id.utf8); return }
        case .ip: break
        case .service:
            if let s = ctx.serviceID { b.append(contentsOf: s.utf8); return }
        case .header(let name):
            for i in 0 ..< request.headers.count where headerNameMatches(request.headers.nameBytes(at: i), name) {
                b.append(contentsOf: request.headers.valueBytes(at: i)); return
            }
        case .path(let p):
            if request.pathBytes.elementsEqual(p) { b.append(contentsOf: p); return }
        }
        b.append(contentsOf: ctx.clientIP.utf8)
    }
}

private func appendDecimal(_ b: inout [UInt8], _ v: Int64) {
    if v < 0 { b.append(0x2D) }
    var m = v.magnitude
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: enough for 20 digits
    var n = 0
    withUnsafeMutableBytes(of: &digits) { d in
        repeat { d[23 - n] = UInt8(0x30 + m % 10); m /= 10; n += 1 } while m > 0
        b.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(24 - n)...]))
    }
}

private func sha1Hex(_ s: String) -> String {
    let bytes = Array(s.utf8)
    var d = [UInt8](repeating: 0, count: 20)
    bytes.withUnsafeBufferPointer { src in
        d.withUnsafeMutableBufferPointer { dp in _ = SHA1(src.baseAddress, src.count, dp.baseAddress) }
    }
    let hex: [Character] = Array("0123456789abcdef")
    return String(d.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] })
}
