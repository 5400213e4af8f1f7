// A raw scan of chunked framing, run over exactly the body bytes llhttp consumed (HTTPParserCore.execute).
// Debian's llhttp 8.1 is built non-strict, and there it does not check the line ends of the framing: after a
// chunk's data it skips any two bytes where CRLF belongs, and after a chunk-size line's CR any byte where LF
// belongs. The proxy relays chunked bodies raw, with their framing, so an upstream (or, for responses, a client)
// that checks them would frame the same bytes differently: "5\r\nhelloXX0\r\n\r\n" is one 5-byte chunk to
// llhttp. Likewise it takes any byte after the CR that ends the trailer section as its LF, so the message
// ended where a strict upstream did not see it end. This scan refuses what strict llhttp refuses there. It only
// follows the framing (line ends, data lengths); the size, extension and trailer field syntax are llhttp's.
// Invariant: the verdict depends only on the bytes, not on how they were split (state carries over calls).

struct ChunkFraming {
    enum State { case inactive, sizeDigits, sizeRest, sizeLF, data, dataCR, dataLF, trailerStart, trailerLine, trailerLF,
                      endLF, done }
    var state = State.inactive
    var size: UInt64 = 0
    var remaining: UInt64 = 0

    /// A chunked body follows the head just parsed.
    mutating func start() { state = .sizeDigits; size = 0; remaining = 0 }
    mutating func stop() { state = .inactive }
    var isScanning: Bool { state != .inactive && state != .done }

    /// Scans `n` bytes; the error names the first violation.
    mutating func scan(_ p: UnsafePointer<UInt8>, _ n: Int) -> HTTPParseError? {
        var i = 0
        while i < n {
            let c = p[i]
            switch state {
            case .inactive, .done:
                return nil
            case .sizeDigits:
                if let v = hexValue(c) {
                    // an overflowing size is llhttp's error ("Chunk size overflow"); saturate until then
                    size = size > (UInt64.max >> 4) ? UInt64.max : size << 4 | UInt64(v)
                } else if c == 0x0D {
                    state = .sizeLF
                } else if c == 0x0A {
                    endSizeLine()
                } else {
                    state = .sizeRest
                }
            case .sizeRest:                     // extensions (llhttp checks their syntax)
                if c == 0x0D { state = .sizeLF } else if c == 0x0A { endSizeLine() }
            case .sizeLF:
                guard c == 0x0A else { return HTTPParseError(.badRequest, "Expected LF after chunk size") }
                endSizeLine()
            case .data:
                let take = UInt64(n - i) < remaining ? UInt64(n - i) : remaining
                remaining -= take
                i += Int(take)
                if remaining == 0 { state = .dataCR }
                continue
            case .dataCR:
                guard c == 0x0D else { return HTTPParseError(.badRequest, "Expected CRLF after chunk") }
                state = .dataLF
            case .dataLF:
                guard c == 0x0A else { return HTTPParseError(.badRequest, "Expected CRLF after chunk") }
                state = .sizeDigits; size = 0
            case .trailerStart:                 // after the last chunk: trailer fields, then an empty line
                state = c == 0x0D ? .endLF : (c == 0x0A ? .done : .trailerLine)
            case .trailerLine:
                if c == 0x0D { state = .trailerLF } else if c == 0x0A { state = .trailerStart }
            case .trailerLF:
                guard c == 0x0A else { return HTTPParseError(.badRequest, "bare CR in trailer") }
                state = .trailerStart
            case .endLF:
                guard c == 0x0A else { return HTTPParseError(.badRequest, "Expected LF after headers") }
                state = .done
            }
            i += 1
        }
        return nil
    }

    private mutating func endSizeLine() {
        if size == 0 { state = .trailerStart; return }   // last chunk
        remaining = size
        state = .data
    }

    private func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}
