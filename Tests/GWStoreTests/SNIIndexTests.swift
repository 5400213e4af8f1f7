import Testing
import GWStore

// Kong's certificate choice for a TLS server name (kong/runloop/certificate.lua).

@Test func sniCandidatesInKongOrder() {
    #expect(SNIIndex.candidates("www.domain.test") == ["www.domain.test", "*.domain.test", "www.domain.*", "*"])
    #expect(SNIIndex.candidates("domain.test") == ["domain.test", "domain.*", "*"])     // no prefix wildcard with 2 labels
    #expect(SNIIndex.candidates("foo.www.domain.test") == ["foo.www.domain.test", "*.www.domain.test", "foo.www.domain.*", "*"])
    #expect(SNIIndex.candidates("localhost") == ["localhost", "*"])
    #expect(SNIIndex.candidates("*.domain.test") == ["*.domain.test", "*"])
    for bad in ["127.0.0.1", "a.example.com:600", "256.256.256.256", "*.exam*le.com", "a.exam*le.com", "::1", ""] {
        #expect(SNIIndex.candidates(bad).isEmpty, "\(bad)")
    }
}

@Test func sniIndexSelection() {
    let snis = [SNI(id: "1", name: "*.wildcard.com", certificateID: "A"), SNI(id: "2", name: "wildcard.*", certificateID: "A"),
                SNI(id: "3", name: "wildcard.org", certificateID: "B"), SNI(id: "4", name: "test.wildcard.*", certificateID: "B"),
                SNI(id: "5", name: "*.www.wildcard.com", certificateID: "B")]
    let idx = SNIIndex(snis)
    #expect(idx.certificateID(for: "test.wildcard.com") == "A")
    #expect(idx.certificateID(for: "wildcard.eu") == "A")
    #expect(idx.certificateID(for: "wildcard.org") == "B")       // exact wins over wildcard.*
    #expect(idx.certificateID(for: "test.wildcard.org") == "B")
    #expect(idx.certificateID(for: "test.www.wildcard.com") == "B")
    #expect(idx.certificateID(for: "unknown.test") == nil)
    #expect(idx.certificateID(for: "") == nil)
    let withStar = SNIIndex(snis + [SNI(id: "6", name: "*", certificateID: "C")])
    #expect(withStar.certificateID(for: "unknown.test") == "C")
    #expect(withStar.certificateID(for: "127.0.0.1") == nil)      // an invalid SNI: the default, never `*`
}
