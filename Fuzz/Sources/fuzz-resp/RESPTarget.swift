// Fuzz target: GWRedis.RESP, the Redis reply reader (bytes from a Redis server, or from whatever answers on
// its port). Invariants: any bytes give a reply, "incomplete" or "invalid", never a trap; a reply's length is
// within the input; the same reply is read from exactly its own bytes, and every shorter prefix of it is
// incomplete (so a reply split over reads is read the same once whole); "incomplete" only below maxReply;
// a stream of replies is read one after another to its end the same way.
import FuzzMain
import FuzzSupport
@testable import GWRedis

func same(_ a: RedisReply, _ b: RedisReply) -> Bool {
    guard a.status == b.status, a.count == b.count, a.message == b.message else { return false }
    for i in 0 ..< 8 where a[i] != b[i] { return false }
    return true
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    var rng = SplitRNG(seed: input.seed)
    let bytes = input.payload
    bytes.withUnsafeBytes { all in
        var at = 0
        var replies = 0
        while at < all.count && replies < 64 {
            let rest = UnsafeRawBufferPointer(rebasing: all[at...])
            switch RESP.parse(rest) {
            case .reply(let r, let length):
                check(length > 0 && length <= rest.count, "reply length \(length) outside \(rest.count) bytes")
                if case .reply(let again, let l2) = RESP.parse(UnsafeRawBufferPointer(rebasing: rest[..<length])) {
                    check(l2 == length && same(again, r), "the reply read from its own bytes differs")
                } else {
                    check(false, "the reply's own bytes are not a reply")
                }
                for _ in 0 ..< 3 {
                    let k = rng.below(length)
                    if case .incomplete = RESP.parse(UnsafeRawBufferPointer(rebasing: rest[..<k])) { continue }
                    check(false, "a \(k)-byte prefix of a \(length)-byte reply is not incomplete")
                }
                at += length
                replies += 1
            case .incomplete:
                check(rest.count < RESP.maxReply, "incomplete at \(rest.count) bytes")
                return
            case .invalid:
                return
            }
        }
    }
    return 0
}

@_cdecl("fuzz_resp_main")
public func fuzz_resp_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
