import Testing
@testable import GWSystem

@Suite struct CStringTests {
    @Test func stopsAtTheFirstNul() {
        #expect(String(nulTerminated: [0x31, 0x32, 0x37, 0, 0x39, 0]) == "127")
        #expect(String(nulTerminated: [0, 0x41]) == "")
        #expect(String(nulTerminated: []) == "")
    }

    @Test func aBufferWithoutNulIsReadToItsEndAndNoFurther() {
        #expect(String(nulTerminated: [0x6F, 0x6B]) == "ok")
    }

    @Test func invalidUTF8IsRepaired() {
        // 0xC3 0x28: a lead byte followed by a non-continuation byte
        #expect(String(nulTerminated: [CChar(bitPattern: 0xC3), 0x28, 0]) == "\u{FFFD}(")
    }
}
