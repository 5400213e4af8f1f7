// RESP.swift: commands as Redis reads them, replies read whole or reported incomplete at every split,
// and arbitrary bytes never trapping (bounded length, nesting and integers).
import Testing
@testable import GWRedis

private func parse(_ s: [UInt8]) -> RESP.Parsed { s.withUnsafeBytes { RESP.parse($0) } }
private func parse(_ s: String) -> RESP.Parsed { parse(Array(s.utf8)) }

private func whole(_ s: String) -> (RedisReply, Int)? {
    if case .reply(let r, let n) = parse(s) { return (r, n) }
    return nil
}

@Suite struct RESPTests {
    @Test func formatsCommandsAsBulkArrays() {
        var out: [UInt8] = []
        let words: [[UInt8]] = [Array("EVALSHA".utf8), [], Array("k:1".utf8)]
        let views = words.map { w in w.withUnsafeBytes { UnsafeRawBufferPointer(start: $0.baseAddress, count: w.count) } }
        // The views point into `words`, alive for the call.
        withExtendedLifetime(words) {
            views.withUnsafeBufferPointer { RESP.appendCommand(&out, $0) }
        }
        #expect(String(decoding: out, as: UTF8.self) == "*3\r\n$7\r\nEVALSHA\r\n$0\r\n\r\n$3\r\nk:1\r\n")
        out.removeAll()
        RESP.appendCommand(&out, words: [Array("SELECT".utf8), Array("12".utf8)])
        #expect(String(decoding: out, as: UTF8.self) == "*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n")
    }

    @Test func readsTheReplyKinds() {
        let i = whole(":-42\r\nrest")
        #expect(i?.0.count == 1 && i?.0[0] == -42 && i?.1 == 6)
        let a = whole("*4\r\n:3\r\n:9223372036854775807\r\n$2\r\nab\r\n:0\r\n")
        #expect(a?.0.count == 4 && a?.0[0] == 3 && a?.0[1] == Int64.max && a?.0[2] == 0 && a?.0[3] == 0)
        let e = whole("-NOSCRIPT No matching script\r\n")
        #expect(e?.0.status == .error && e?.0.message == "NOSCRIPT No matching script")
        #expect(whole("+OK\r\n")?.0.count == 0 && whole("+OK\r\n")?.0.status == .ok)
        #expect(whole("$-1\r\n")?.1 == 5)
        #expect(whole("*-1\r\n")?.1 == 5)
        #expect(whole("$40\r\n" + String(repeating: "a", count: 40) + "\r\n")?.1 == 47)
        // Nested arrays are read whole; only top-level integers are kept (at most 8).
        let n = whole("*3\r\n*2\r\n:1\r\n:2\r\n:7\r\n-ERR x\r\n")
        #expect(n?.0.count == 3 && n?.0[0] == 0 && n?.0[1] == 7 && n?.0.status == .ok)
        let big = whole("*10\r\n" + String(repeating: ":5\r\n", count: 10))
        #expect(big?.0.count == 8 && big?.0[7] == 5)
    }

    @Test func everySplitIsIncompleteUntilTheLastByte() {
        let replies = ["*3\r\n:1\r\n:22\r\n:0\r\n", "-ERR wrong\r\n", "$3\r\nabc\r\n", "+OK\r\n", ":12345\r\n",
                       "*2\r\n*1\r\n$1\r\nx\r\n:4\r\n"]
        for r in replies {
            let b = Array(r.utf8)
            for cut in 0 ..< b.count {
                guard case .incomplete = parse(Array(b[0 ..< cut])) else { Issue.record("\(r) cut at \(cut)"); continue }
            }
            guard case .reply(_, let n) = parse(b) else { Issue.record("\(r) whole"); continue }
            #expect(n == b.count)
        }
    }

    @Test func refusesWhatIsNotRESP() {
        for bad in ["?x\r\n", ":\r\n", ":12a\r\n", ":-\r\n", ":99999999999999999999\r\n", "$-2\r\n", "*-5\r\n",
                    "$3\r\nabcXY", "$999999999\r\n", "*999999999\r\n", "*2\r\n:1\r\n:1x\r\n"] {
            guard case .invalid = parse(bad) else { Issue.record("not refused: \(bad)"); continue }
        }
        // Nesting deeper than the bound.
        if case .invalid = parse(String(repeating: "*1\r\n", count: 20) + ":1\r\n") {} else { Issue.record("deep nesting") }
        // A reply that never ends within the buffer size is invalid, not incomplete forever.
        let long = Array(("+" + String(repeating: "x", count: RESP.maxReply)).utf8)
        if case .invalid = parse(long) {} else { Issue.record("unbounded line") }
    }

    @Test func mutatedRepliesNeverTrap() {
        var rng = SystemRandomNumberGenerator()
        let seeds = ["*3\r\n:1\r\n:22\r\n:0\r\n", "-NOSCRIPT x\r\n", "$3\r\nabc\r\n", "*2\r\n*1\r\n$1\r\nx\r\n:4\r\n",
                     ":9223372036854775807\r\n", "*-1\r\n$-1\r\n+OK\r\n"].map { Array($0.utf8) }
        for _ in 0 ..< 50000 {
            var b = seeds.randomElement(using: &rng)!
            for _ in 0 ..< Int.random(in: 1 ... 4, using: &rng) {
                let at = Int.random(in: 0 ... b.count, using: &rng)
                switch Int.random(in: 0 ..< 3, using: &rng) {
                case 0: if at < b.count { b[at] = UInt8.random(in: 0 ... 255, using: &rng) }
                case 1: b.insert(UInt8.random(in: 0 ... 255, using: &rng), at: at)
                default: b = Array(b[0 ..< at])
                }
            }
            switch parse(b) {
            case .reply(_, let len):
                #expect(len > 0 && len <= b.count)
                // The same reply read from exactly its own bytes.
                if case .reply(_, let again) = parse(Array(b[0 ..< len])) { #expect(again == len) } else { Issue.record("\(b)") }
            case .incomplete: #expect(b.count < RESP.maxReply)
            case .invalid: break
            }
        }
    }

    @Test func randomBytesNeverTrap() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("*$:+-\r\n0123456789-abc".utf8)
        for _ in 0 ..< 20000 {
            let n = Int.random(in: 0 ..< 40, using: &rng)
            let b = (0 ..< n).map { _ in alphabet.randomElement(using: &rng)! }
            switch parse(b) {
            case .reply(_, let len): #expect(len > 0 && len <= b.count)
            case .incomplete, .invalid: break
            }
        }
    }
}
