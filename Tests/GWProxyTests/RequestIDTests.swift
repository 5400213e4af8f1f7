// RequestID: the word-at-a-time hex digits equal the byte-wise reference, and an id is the seed's 16 digits
// then the mixed counter's 16 (the format Kong's X-Kong-Request-Id has: 32 lower-case hex digits).
import Testing
@testable import GWProxy

@Suite struct RequestIDTests {
    @Test func hexDigitsEqualTheByteWiseReference() {
        var values: [UInt64] = [0, 1, 9, 10, 15, 16, 0xABCD_EF01_2345_6789, .max, 0x9999_AAAA_0000_FFFF]
        var x: UInt64 = 0x1234_5678_9ABC_DEF1
        for _ in 0..<10_000 {   // xorshift: every nibble value in every position many times
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            values.append(x)
        }
        for v in values {
            let (lo, hi) = RequestID.hexDigits(v)
            var bytes: [UInt8] = []
            withUnsafeBytes(of: lo) { bytes += $0 }
            withUnsafeBytes(of: hi) { bytes += $0 }
            #expect(bytes == RequestID.hexDigitsByteWise(v), "value \(v)")
        }
    }

    @Test func idIsSeedDigitsThenCounterDigits() {
        let seed: UInt64 = 0x0123_4567_89AB_CDEF
        let id = RequestID(seed: RequestID.Seed(seed), counter: 42)
        let s = id.string
        #expect(s.utf8.count == 32)
        #expect(s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        #expect(Array(s.utf8.prefix(16)) == RequestID.hexDigitsByteWise(seed))
        #expect(Array(s.utf8.suffix(16)) == RequestID.hexDigitsByteWise(42 &* 0x9E37_79B9_7F4A_7C15 ^ seed.byteSwapped))
        #expect(RequestID(seed: seed, counter: 42).string == s)
        #expect(RequestID(seed: seed, counter: 43).string != s)
    }
}
