// proxy-cache's Hit as a typed exit (like RateLimitHeaders, a typed output the data path writes
// directly): the stored status, header lines and body are borrowed from the context's CacheBuffer and
// written by the data path in one pass (status line, the gateway's own headers, X-Cache-Key, the
// stored lines, Age, X-Cache-Status, body), instead of being turned into header edits and an exit
// body that a generated head is then rewritten from.
// Invariants: `cachedAnswer` is set only together with `exitStatus` (the first exit), by the one
// collected proxy-cache instance that answered in access; its buffers point into `cacheBuffer`, which
// nothing touches again before the response is written (the data path answers the exit right after
// access) and which lives as long as the context. The answer is written directly only when nothing
// else would change the head (`cachedAnswerIsDirect`); otherwise `materializeCachedAnswer()` turns it
// into the exact edits and exit body the generic path used before, in the same order.
import GWHTTP

public struct CachedAnswer {
    public let status: Int
    /// The stored `Name: value\r\n` lines to serve (borrowed; see the invariants above).
    public let headerLines: UnsafeRawBufferPointer
    /// The stored body (borrowed).
    public let body: UnsafeRawBufferPointer
    /// The Age header's value; < 0: no Age header (response_headers.age off, no Kong-Debug).
    public let age: Int
    /// X-Cache-Status: Hit / X-Cache-Key are written (response_headers flags or Kong-Debug).
    public let writesStatus: Bool
    public let writesKey: Bool
    /// The stored lines carry a Date / a Server header: the gateway does not write its own.
    public let storedDate: Bool
    public let storedServer: Bool
    /// The stored lines name none of the headers the Hit writes itself.
    let clashFree: Bool
}

extension PluginContext {
    /// Answers with a cached response (proxy-cache Hit). Ignored after a first exit.
    func exitCached(_ answer: CachedAnswer) {
        guard exitStatus == 0 else { return }
        setExitStatus(answer.status)
        cachedAnswer = answer
        servedFromCache = true
    }

    /// True when the cached answer can be written as it is: no other plugin edits the response head
    /// (no response header edits, no header_filter / body_filter handler other
    /// than proxy-cache's, which do nothing on a Hit) and the stored lines clash with no header the
    /// Hit writes. Rate-limit headers (typed) are written after X-Cache-Status, where the generic path
    /// put them (their stored copies are never served, so no name clashes).
    public var cachedAnswerIsDirect: Bool {
        guard let a = cachedAnswer, a.clashFree, responseHeaders.isEmpty else { return false }
        for i in 0 ..< collectedCount {
            let h = collected(i)
            if h is ProxyCache { continue }
            if h.phases.contains(.headerFilter) || h.phases.contains(.bodyFilter) { return false }
        }
        return true
    }

    /// Turns the cached answer into response header edits and an exit body, exactly as the Hit set
    /// them before the typed exit existed (X-Cache-Key, the stored headers: set for a name's first
    /// line and add for the next ones, Age, X-Cache-Status). Idempotent; nothing to do without one.
    public func materializeCachedAnswer() {
        guard let a = cachedAnswer else { return }
        cachedAnswer = nil
        if a.writesKey { responseHeaders.set("X-Cache-Key", bytes: cacheKeyHex) }
        let lines = a.headerLines
        CachedResponse.forEachLine(lines, 0 ..< lines.count) { name, value in
            // A repeated name (Set-Cookie) keeps every value: set the first, add the next ones.
            if !CachedAnswer.seenBefore(name, in: lines) { responseHeaders.set(rawName: name, rawValue: value) } else { responseHeaders.add(rawName: name, rawValue: value) }
        }
        if a.age >= 0 { responseHeaders.set("Age", a.age) }
        if a.writesStatus { responseHeaders.set("X-Cache-Status", "Hit") }
        setExitBody(a.body)
    }
}

extension CachedAnswer {
    /// True when a line before `name` (a slice of `lines`) has the same name (case-insensitive).
    static func seenBefore(_ name: UnsafeRawBufferPointer, in lines: UnsafeRawBufferPointer) -> Bool {
        let upTo = name.baseAddress! - lines.baseAddress!
        var seen = false
        CachedResponse.forEachLine(lines, 0 ..< upTo) { n, _ in
            guard !seen, n.count == name.count else { return }
            var eq = true
            for k in 0 ..< n.count where (n[k] &- 0x41 < 26 ? n[k] | 0x20 : n[k]) != (name[k] &- 0x41 < 26 ? name[k] | 0x20 : name[k]) {
                eq = false
                break
            }
            seen = eq
        }
        return seen
    }
}
