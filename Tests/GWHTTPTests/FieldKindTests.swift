// The one-pass reader's word-at-a-time header-name classifier (fieldKindOfToken) against the byte-wise one
// (fieldKind), on every token name it can be given: the seven names in every letter case, each with every
// token byte substituted at every position, and names of other lengths.
import Testing
@testable import GWHTTP

@Suite struct FieldKindTests {
    static let names = ["host", "expect", "upgrade", "connection", "content-length", "proxy-connection",
                        "transfer-encoding"]

    func kinds(_ name: [UInt8]) -> (HTTPParserCore.FieldKind, HTTPParserCore.FieldKind) {
        name.withUnsafeBufferPointer { b in
            (HTTPParserCore.fieldKindOfToken(b.baseAddress!, b.count), HTTPParserCore.fieldKind(b.baseAddress!, b.count))
        }
    }

    @Test func everyCaseOfEveryNameMatches() {
        for name in Self.names {
            let lower = Array(name.utf8)
            // every letter upper or lower, by the bits of k (names have at most 17 letters: sample 4,096 masks)
            for k in 0 ..< 4096 {
                var n = lower
                for j in n.indices where n[j] >= 0x61 && (k >> (j % 12)) & 1 == 1 { n[j] -= 0x20 }
                let (fast, ref) = kinds(n)
                #expect(fast == ref, "\(String(decoding: n, as: UTF8.self))")
                #expect(fast != .other)
            }
        }
    }

    @Test func everyTokenByteAtEveryPositionAgrees() {
        let tokenBytes = (0 ..< 256).map(UInt8.init).filter { HTTPParserCore.isTokenByte($0) }
        for name in Self.names {
            let base = Array(name.utf8)
            for j in base.indices {
                for b in tokenBytes {
                    var n = base
                    n[j] = b
                    let (fast, ref) = kinds(n)
                    #expect(fast == ref, "\(String(decoding: n, as: UTF8.self))")
                }
            }
        }
    }

    @Test func otherLengthsAndNamesAreOther() {
        for name in ["date", "server", "etag", "via", "te", "x-forwarded-for", "content-type", "hosts", "hos",
                     "connectiom", "content_length", "transfer-encodinG", "Proxy-Connection", "UPGRADE"] {
            let (fast, ref) = kinds(Array(name.utf8))
            #expect(fast == ref, "\(name)")
        }
    }
}
