// Asynchronous DNS for target host names, in the master, on its libev loop (c-ares; KONG.md §4.2).
//
// c-ares tells us which sockets it wants watched (ARES_OPT_SOCK_STATE_CB): each gets an IOWatcher,
// and one TimerWatcher follows `ares_timeout`, so a lookup never blocks the loop (Admin API, health
// probes and worker channels keep running while a server is slow or unreachable).
//
// Order per name (Kong `dns_order = LAST,SRV,A,CNAME`, hosts-file entries first as Kong's client does):
//   /etc/hosts (ares_gethostbyname_file, a local file read) → SRV (ares_query; top priority records, each
//   SRV target resolved with ares_getaddrinfo) → A (ares_getaddrinfo AF_INET, which also reads /etc/hosts,
//   TTLs from the answers) → AAAA, only if the name exists without A records.
// Answers are cached per name and re-queried when their TTL expires (stale answers stay in use while
// refreshing); a failed name is retried every 30 s. `onChange` runs (from a zero-delay timer, never
// inside a c-ares callback) when a name's answer changes: addresses added/removed, failure ↔ success.
#if canImport(Glibc)
import Glibc
#endif
import CAres
import GWBalancer
import GWEvent
import GWSystem

final class DNSResolver {
    /// The cached result for one name. `ok == false` ⇒ resolution failed (DNS_ERROR).
    struct Answer: Equatable {
        var ok: Bool
        var addresses: [DNSAddress]
        var expires: Double   // monotonic seconds
        var source: String    // hosts | srv | a | aaaa | error text (for logs)

        static func == (a: Answer, b: Answer) -> Bool { a.ok == b.ok && Set(a.addresses) == Set(b.addresses) }
    }

    let loop: EventLoop
    let log: ErrorLog
    private var channel: ares_channel?
    private var watchers: [Int32: IOWatcher] = [:]
    private var timeoutTimer: TimerWatcher!
    private var refreshTimer: TimerWatcher!
    private var notifyTimer: TimerWatcher!
    private var answers: [String: Answer] = [:]
    private var pending: Set<String> = []
    private var wanted: Set<String> = []
    /// Called (from the loop, not from inside c-ares) after answers changed.
    var onChange: (() -> Void)?

    init(loop: EventLoop, log: ErrorLog, servers: String) {
        self.loop = loop
        self.log = log
        timeoutTimer = TimerWatcher(loop: loop) { [unowned self] in
            if let ch = self.channel { ares_process_fd(ch, CAres_socket_bad(), CAres_socket_bad()) }
            self.rearmTimeout()
        }
        refreshTimer = TimerWatcher(loop: loop) { [unowned self] in self.refreshExpired() }
        notifyTimer = TimerWatcher(loop: loop) { [unowned self] in self.onChange?() }
        _ = ares_library_init(ARES_LIB_INIT_ALL)
        var opts = ares_options()
        opts.sock_state_cb = { data, fd, readable, writable in
            guard let data else { return }
            Unmanaged<DNSResolver>.fromOpaque(data).takeUnretainedValue()
                .socketState(fd: fd, readable: readable != 0, writable: writable != 0)
        }
        opts.sock_state_cb_data = Unmanaged.passUnretained(self).toOpaque()
        opts.timeout = 1000        // ms per try (c-ares doubles it on each round)
        opts.tries = 2
        var ch: ares_channel?
        let rc = ares_init_options(&ch, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)
        if rc != ARES_SUCCESS {
            log.log(.alert, "DNS resolver: ares_init_options failed: \(String(cString: ares_strerror(rc))); host name targets will not resolve")
            return
        }
        channel = ch
        if !servers.isEmpty {
            let src = ares_set_servers_ports_csv(ch, servers)
            if src != ARES_SUCCESS {
                log.log(.error, "dns_resolver '\(servers)': \(String(cString: ares_strerror(src))); using /etc/resolv.conf")
            }
        }
    }

    // MARK: cache API (the publisher's side)

    /// The cached answer for `name` (possibly stale), starting a lookup when there is none yet or it expired.
    func answer(for name: String) -> Answer? {
        wanted.insert(name)
        if let a = answers[name], a.expires > now() { return a }
        start(name, fromPublish: true)   // hosts-file names answer synchronously: this publish has them
        return answers[name]
    }

    /// Forget names no target uses any more (called after each publish with the names it asked for).
    func keepOnly(_ names: Set<String>) {
        wanted = names
        for k in answers.keys where !names.contains(k) { answers[k] = nil }
        scheduleRefresh()
    }

    var pendingCount: Int { pending.count }

    // MARK: lookups

    private final class Lookup {
        let name: String
        unowned let resolver: DNSResolver
        var family: Int32 = AF_INET
        // SRV stage
        var srv: [SRVRecord] = []
        var srvTTL: Int?
        var remaining = 0
        var collected: [DNSAddress] = []
        var minTTL: Int?
        init(name: String, resolver: DNSResolver) { self.name = name; self.resolver = resolver }
    }

    private func now() -> Double { Double(Clock.monotonicMicros()) / 1_000_000 }

    private func start(_ name: String, fromPublish: Bool = false) {
        guard let ch = channel, !pending.contains(name) else { return }
        // Hosts-file entries (e.g. localhost) answer at once: Kong's client preloads /etc/hosts.
        if let ips = hostsFile(ch, name) {
            finish(name, Answer(ok: true, addresses: ips.map { DNSAddress(ip: $0) }, expires: 0, source: "hosts"), ttl: nil,
                   notify: !fromPublish)
            return
        }
        pending.insert(name)
        let l = Lookup(name: name, resolver: self)
        ares_query(ch, name, CAres_class_in(), CAres_type_srv(), { arg, status, _, abuf, alen in
            let l = Unmanaged<Lookup>.fromOpaque(arg!).takeRetainedValue()
            l.resolver.srvDone(l, status: status, abuf: abuf, alen: Int(alen))
        }, Unmanaged.passRetained(l).toOpaque())
        rearmTimeout()
    }

    private func hostsFile(_ ch: ares_channel, _ name: String) -> [String]? {
        for family in [AF_INET, AF_INET6] {
            var he: UnsafeMutablePointer<hostent>?
            guard ares_gethostbyname_file(ch, name, family, &he) == ARES_SUCCESS, let h = he else { continue }
            defer { ares_free_hostent(h) }
            var out: [String] = []
            var i = 0
            while let list = h.pointee.h_addr_list, let p = list[i] {
                var buf = [CChar](repeating: 0, count: 64)
                if inet_ntop(h.pointee.h_addrtype, p, &buf, 64) != nil {
                    let s = String(nulTerminated: buf)
                    if !out.contains(s) { out.append(s) }
                }
                i += 1
            }
            if !out.isEmpty { return out }
        }
        return nil
    }

    private func srvDone(_ l: Lookup, status: Int32, abuf: UnsafeMutablePointer<UInt8>?, alen: Int) {
        guard status != ARES_EDESTRUCTION, status != ARES_ECANCELLED, let ch = channel else { return }
        var records: [SRVRecord] = []
        if status == ARES_SUCCESS, let abuf {
            var reply: UnsafeMutablePointer<ares_srv_reply>?
            if ares_parse_srv_reply(abuf, Int32(alen), &reply) == ARES_SUCCESS {
                var cur = reply
                while let r = cur {
                    if let h = r.pointee.host {
                        records.append(SRVRecord(target: String(cString: h), port: Int(r.pointee.port),
                                                 priority: Int(r.pointee.priority), weight: Int(r.pointee.weight)))
                    }
                    cur = r.pointee.next
                }
                if let reply { ares_free_data(reply) }
            }
            l.srvTTL = TargetAddresses.minAnswerTTL(UnsafeRawBufferPointer(start: abuf, count: alen))
        }
        let top = TargetAddresses.topPriority(records)
        if top.isEmpty {
            // No SRV: A next (then AAAA if the name has no A records).
            getaddrinfo(ch, l, host: l.name, family: AF_INET) { me, l, status, addrs, ttl in
                me.addressDone(l, status: status, addrs: addrs, ttl: ttl)
            }
            return
        }
        l.srv = top
        l.minTTL = l.srvTTL
        l.remaining = top.count
        for rec in top {
            aThenAAAA(ch, l, host: rec.target) { me, l, status, addrs, ttl in
                if status == ARES_SUCCESS {
                    for ip in addrs {
                        let a = DNSAddress(ip: ip, srvPort: rec.port, srvWeight: rec.weight)
                        if !l.collected.contains(a) { l.collected.append(a) }
                    }
                    if let t = ttl { l.minTTL = min(l.minTTL ?? t, t) }
                }
                l.remaining -= 1
                if l.remaining == 0 {
                    if l.collected.isEmpty {
                        me.finish(l.name, Answer(ok: false, addresses: [], expires: 0, source: "SRV targets did not resolve"), ttl: nil)
                    } else {
                        me.finish(l.name, Answer(ok: true, addresses: l.collected, expires: 0, source: "SRV"), ttl: l.minTTL ?? 0)
                    }
                }
            }
        }
    }

    private func addressDone(_ l: Lookup, status: Int32, addrs: [String], ttl: Int?) {
        if status == ARES_SUCCESS && !addrs.isEmpty {
            finish(l.name, Answer(ok: true, addresses: addrs.map { DNSAddress(ip: $0) }, expires: 0,
                                  source: l.family == AF_INET ? "A" : "AAAA"), ttl: ttl ?? 0)
            return
        }
        if l.family == AF_INET && (status == ARES_ENODATA || (status == ARES_SUCCESS && addrs.isEmpty)), let ch = channel {
            l.family = AF_INET6
            getaddrinfo(ch, l, host: l.name, family: AF_INET6) { me, l, status, addrs, ttl in
                me.addressDone(l, status: status, addrs: addrs, ttl: ttl)
            }
            return
        }
        finish(l.name, Answer(ok: false, addresses: [], expires: 0, source: String(cString: ares_strerror(status))), ttl: nil)
    }

    /// A records of `host`; its AAAA records only if the name exists without A records (Kong's default
    /// dns_order has no AAAA; this keeps IPv6-only names usable without doubling dual-stack names).
    private func aThenAAAA(_ ch: ares_channel, _ l: Lookup, host: String,
                           done: @escaping (DNSResolver, Lookup, Int32, [String], Int?) -> Void) {
        getaddrinfo(ch, l, host: host, family: AF_INET) { me, l, status, addrs, ttl in
            if (status == ARES_ENODATA || (status == ARES_SUCCESS && addrs.isEmpty)), let ch = me.channel {
                me.getaddrinfo(ch, l, host: host, family: AF_INET6, done: done)
            } else {
                done(me, l, status, addrs, ttl)
            }
        }
    }

    private final class AddrInfoRequest {
        let lookup: Lookup
        let done: (DNSResolver, Lookup, Int32, [String], Int?) -> Void
        init(lookup: Lookup, done: @escaping (DNSResolver, Lookup, Int32, [String], Int?) -> Void) {
            self.lookup = lookup; self.done = done
        }
    }

    private func getaddrinfo(_ ch: ares_channel, _ l: Lookup, host: String, family: Int32,
                             done: @escaping (DNSResolver, Lookup, Int32, [String], Int?) -> Void) {
        var hints = ares_addrinfo_hints()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        let req = AddrInfoRequest(lookup: l, done: done)
        ares_getaddrinfo(ch, host, nil, &hints, { arg, status, _, result in
            let req = Unmanaged<AddrInfoRequest>.fromOpaque(arg!).takeRetainedValue()
            var ips: [String] = []
            var ttl: Int?
            if let result {
                var node = result.pointee.nodes
                while let n = node {
                    if let sa = n.pointee.ai_addr, n.pointee.ai_family == AF_INET || n.pointee.ai_family == AF_INET6 {
                        var st = sockaddr_storage()
                        withUnsafeMutableBytes(of: &st) { dst in
                            dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(n.pointee.ai_addrlen)))
                        }
                        let ip = SocketAddress(storage: st, length: n.pointee.ai_addrlen).ip
                        if !ips.contains(ip) { ips.append(ip) }
                        let t = Int(n.pointee.ai_ttl)
                        ttl = min(ttl ?? t, t)
                    }
                    node = n.pointee.ai_next
                }
                ares_freeaddrinfo(result)
            }
            guard status != ARES_EDESTRUCTION, status != ARES_ECANCELLED else { return }
            req.done(req.lookup.resolver, req.lookup, status, ips, ttl)
        }, Unmanaged.passRetained(req).toOpaque())
    }

    private func finish(_ name: String, _ result: Answer, ttl: Int?, notify: Bool = true) {
        pending.remove(name)
        var a = result
        a.expires = now() + (a.ok ? TargetAddresses.refreshDelay(ttl: ttl) : TargetAddresses.failureRetry)
        // A name no target uses any more (removed while its lookup ran) is dropped.
        guard wanted.contains(name) else { answers[name] = nil; scheduleRefresh(); return }
        let old = answers[name]
        answers[name] = a
        if old == nil || old! != a {
            if a.ok {
                log.log(.info, "DNS: \(name) → \(a.addresses.map { a in a.srvPort.map { "\(a.ip):\($0) w=\(a.srvWeight ?? 0)" } ?? a.ip }.joined(separator: ", ")) (\(a.source), refresh in \(Int(a.expires - now())) s)")
            } else {
                log.log(.error, "DNS: \(name) could not be resolved (\(a.source)); retry in \(Int(TargetAddresses.failureRetry)) s")
            }
            if notify && !notifyTimer.isActive { notifyTimer.start(after: 0) }
        }
        scheduleRefresh()
    }

    private func scheduleRefresh() {
        var next: Double?
        for n in wanted { if let a = answers[n], !pending.contains(n) { next = min(next ?? a.expires, a.expires) } }
        guard let at = next else { refreshTimer.stop(); return }
        refreshTimer.start(after: max(0.05, at - now()))
    }

    private func refreshExpired() {
        let t = now()
        for n in wanted { if let a = answers[n], a.expires <= t { start(n) } }
        scheduleRefresh()
    }

    // MARK: c-ares ↔ libev

    private func socketState(fd: Int32, readable: Bool, writable: Bool) {
        var ev = IOEvents(rawValue: 0)
        if readable { ev.insert(.read) }
        if writable { ev.insert(.write) }
        if let w = watchers[fd] {
            // Never released while c-ares may be calling us from its handler: stopped and kept for reuse.
            if ev.isEmpty { w.stop(); return }
            w.set(events: ev)
            w.start()
            return
        }
        guard !ev.isEmpty else { return }
        let w = IOWatcher(loop: loop, fd: fd, events: ev) { [unowned self] revents in
            guard let ch = self.channel else { return }
            ares_process_fd(ch, revents.contains(.read) ? fd : CAres_socket_bad(),
                            revents.contains(.write) ? fd : CAres_socket_bad())
            self.rearmTimeout()
        }
        watchers[fd] = w
        w.start()
    }

    private func rearmTimeout() {
        guard let ch = channel else { return }
        var tv = timeval()
        if let t = ares_timeout(ch, nil, &tv) {
            timeoutTimer.start(after: Double(t.pointee.tv_sec) + Double(t.pointee.tv_usec) / 1_000_000)
        } else {
            timeoutTimer.stop()
        }
    }
}
