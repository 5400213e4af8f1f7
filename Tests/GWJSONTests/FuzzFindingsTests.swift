// Regression tests for what the libFuzzer target fuzz-json / fuzz-declarative (Fuzz/) found in GWJSON.
import Testing
@testable import GWJSON

/// A number that overflows a Double (1e999) parsed as +inf, which serializes as null: the round trip
/// parse -> serialize -> parse changed the value. Such numbers are refused now.
@Test func overflowingNumbersAreRefused() throws {
    for text in ["1e999", "-1e999", "[1, 2e400]", "{\"a\": 123456789012345678901234567890e300}"] {
        #expect(throws: JSONError.self, "\(text)") { try JSON.parse(text) }
    }
    #expect((try? JSON.parse("1.7976931348623157e308")) == .double(.greatestFiniteMagnitude))
    #expect((try? JSON.parse("1e-999")) == .double(0))   // underflow to zero round-trips
}
