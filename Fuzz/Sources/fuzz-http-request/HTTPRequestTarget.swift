// Fuzz target: GWHTTP.HTTPRequestParser over a pipelined client stream (heads, fixed and chunked bodies,
// upgrades). The first 4 input bytes seed the options (limits, refused-upgrade resumption) and the split points.
// Invariants: the stream fed whole and fed in random pieces gives the same events (heads, coalesced body bytes,
// message ends and upgrades at the same stream positions, the same error, the same EOF verdict); fed whole, the
// same with the one-pass head reader off (every message the llhttp way).
// With GW_FUZZ_VERDICT=1 it only prints the verdict for each input file (default limits, fed whole) in the format
// of Fuzz/differential/llhttp_strict_verdict.c, for the differential check (Fuzz/differential.sh).
import FuzzMain
import Glibc
import FuzzSupport
@testable import GWHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequest(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    var rng = SplitRNG(seed: input.seed)
    let stream = input.payload
    if verdictMode { printVerdict(stream); return 0 }
    var limits = HTTPParserLimits()
    if rng.below(4) == 0 {   // small limits, to reach the 413/414/494 paths with short inputs
        limits = HTTPParserLimits(maxRequestLineLength: 16 + rng.below(64), maxHeaderLineLength: 16 + rng.below(64),
                                  maxHeadBytes: 64 + rng.below(256), maxHeaderCount: 1 + rng.below(8),
                                  maxBodySize: rng.below(64))
    }
    let resume = rng.bit()
    func run(_ pieces: [Range<Int>], onePass: Bool = true) -> [HTTPEvent] {
        let p = HTTPRequestParser(limits: limits)
        p.core.allowOnePass = onePass
        return drive(p, stream, pieces: pieces, onUpgrade: { _ in
            if resume { p.resumeAfterRefusedUpgrade() }
            return resume
        })
    }
    let whole = run(stream.isEmpty ? [] : [0 ..< stream.count])
    let split = run(randomSplits(stream.count, &rng))
    check(whole == split, "whole \(whole) != split \(split)")
    // The one-pass head reader reads a subset exactly as the llhttp path does (HTTPParserCore+OnePass.swift).
    let llhttpOnly = run(stream.isEmpty ? [] : [0 ..< stream.count], onePass: false)
    check(whole == llhttpOnly, "one-pass \(whole) != llhttp \(llhttpOnly)")
    // A reused parser (reset between connections) behaves as a fresh one (checked on 1 input in 8).
    guard rng.below(8) == 0 else { return 0 }
    let p = HTTPRequestParser(limits: limits)
    _ = drive(p, Array(stream.prefix(stream.count / 2)), pieces: [0 ..< stream.count / 2])
    p.reset()
    let again = drive(p, stream, pieces: stream.isEmpty ? [] : [0 ..< stream.count], onUpgrade: { _ in
        if resume { p.resumeAfterRefusedUpgrade() }
        return resume
    })
    check(again == whole, "after reset \(again) != \(whole)")
    return 0
}

nonisolated(unsafe) let verdictMode = getenv("GW_FUZZ_VERDICT") != nil

func printVerdict(_ stream: [UInt8]) {
    let p = HTTPRequestParser()
    var out = ""
    var heads: [String] = []
    var body = 0
    let events = drive(p, stream, pieces: stream.isEmpty ? [] : [0 ..< stream.count], onHead: { h in
        let framing = h.isChunked ? "chunked" : h.contentLength.map { "length \($0)" } ?? "none"
        heads.append("M \(h.methodName) \(framing) ka=\(h.keepAlive ? 1 : 0)\n")
    })
    var next = 0
    for e in events {
        switch e {
        case .head, .informational: out += heads[next]; next += 1
        case .body(let b): body += b.count
        case .complete:
            if body > 0 { out += "B \(body)\n" }
            body = 0
            out += "E\n"
        case .upgrade: out += "upgrade\n"
        case .error(_, let r): out += "error \(r)\n"
        case .eof(let r): out += r == .clean ? "eof clean\n" : "eof truncated\n"
        }
    }
    var o = out
    o.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }   // stderr: in order with libFuzzer's "Running: <file>" lines
}

@_cdecl("fuzz_http_request_main")
public func fuzz_http_request_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
