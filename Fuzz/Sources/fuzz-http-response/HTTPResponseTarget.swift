// Fuzz target: GWHTTP.HTTPResponseParser over an upstream stream of pipelined responses (1xx interim heads,
// fixed, chunked and read-until-close bodies, responses to HEAD). The first 4 input bytes seed which responses
// answer a HEAD request, the limits and the split points.
// Invariants: the stream fed whole and fed in random pieces gives the same events and the same EOF verdict; fed
// whole, the same with the one-pass head reader off (every message the llhttp way).
import FuzzMain
import FuzzSupport
@testable import GWHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPResponse(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    var rng = SplitRNG(seed: input.seed)
    let stream = input.payload
    let headMask = rng.next()
    var limits = HTTPParserLimits(maxRequestLineLength: 8192, maxHeaderLineLength: 8192, maxHeadBytes: 65536)
    if rng.below(4) == 0 {
        limits = HTTPParserLimits(maxRequestLineLength: 16 + rng.below(64), maxHeaderLineLength: 16 + rng.below(64),
                                  maxHeadBytes: 64 + rng.below(256), maxHeaderCount: 1 + rng.below(8),
                                  maxBodySize: rng.below(64))
    }
    func run(_ pieces: [Range<Int>], onePass: Bool = true) -> [HTTPEvent] {
        let p = HTTPResponseParser(limits: limits)
        p.core.allowOnePass = onePass
        return drive(p, stream, pieces: pieces, beforeMessage: { n in
            p.expectResponse(to: (headMask >> UInt64(n % 64)) & 1 == 1 ? .head : .get)
        })
    }
    let whole = run(stream.isEmpty ? [] : [0 ..< stream.count])
    let split = run(randomSplits(stream.count, &rng))
    check(whole == split, "whole \(whole) != split \(split)")
    // The one-pass head reader reads a subset exactly as the llhttp path does (HTTPParserCore+OnePass.swift).
    let llhttpOnly = run(stream.isEmpty ? [] : [0 ..< stream.count], onePass: false)
    check(whole == llhttpOnly, "one-pass \(whole) != llhttp \(llhttpOnly)")
    return 0
}

@_cdecl("fuzz_http_response_main")
public func fuzz_http_response_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
