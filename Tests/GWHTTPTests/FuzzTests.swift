import Testing
import GWHTTP

struct XorShift: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}

let seeds = [
    "GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n",
    "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbodyGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nxx",
]
let interesting: [UInt8] = [0x0D, 0x0A, 0x20, 0x09, 0x00, 0x3A, 0x2C, 0x30, 0x39, 0x66, 0x7F, 0xFF, 0x3B, 0x22]

/// Mutated requests: whatever the outcome, it must not depend on how the bytes were split, and nothing may crash.
@Test func mutatedRequestsAreSplitIndependent() {
    var rng = XorShift(state: 0x9E3779B97F4A7C15)
    var errors = 0, clean = 0
    for round in 0..<240 {
        var bytes = Array(seeds[round % seeds.count].utf8)
        let mutations = 1 + Int(rng.next() % 3)
        for _ in 0..<mutations {
            let i = Int(rng.next() % UInt64(bytes.count))
            switch rng.next() % 3 {
            case 0: bytes[i] = interesting[Int(rng.next() % UInt64(interesting.count))]
            case 1: bytes.insert(interesting[Int(rng.next() % UInt64(interesting.count))], at: i)
            default: if bytes.count > 1 { bytes.remove(at: i) }
            }
        }
        let whole = transcript(request: [bytes])
        if whole.last?.hasPrefix("error") == true { errors += 1 } else { clean += 1 }
        let drip = transcript(request: bytes.map { [$0] })
        #expect(whole == drip, "round \(round): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        let k = Int(rng.next() % UInt64(bytes.count))
        let two = transcript(request: [Array(bytes[..<k]), Array(bytes[k...])])
        #expect(whole == two, "round \(round) split \(k): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
    }
    print("mutated requests: \(errors) rejected, \(clean) accepted")
    #expect(errors > 20 && clean > 5)
}

@Test func randomGarbageNeverCrashes() {
    var rng = XorShift(state: 42)
    for _ in 0..<300 {
        let n = Int(rng.next() % 200)
        var bytes: [UInt8] = []
        for _ in 0..<n { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
        _ = transcript(request: [bytes])
        _ = transcript(response: [bytes], eof: true)
    }
}
