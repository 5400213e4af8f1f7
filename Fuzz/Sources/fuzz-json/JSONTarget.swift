// Fuzz target: GWJSON's parser and serializer. Invariants: a document that parses serializes to text that
// parses to an equal value, and serializing that value again gives the same bytes (serialization is a fixed
// point after one round); parse(String) agrees with parse(bytes); for a top-level object, the streaming parser
// (arrays under "routes" and "services" handed out element by element) yields the same members and elements
// as the tree parser, or fails only on a duplicate top-level key.
import FuzzMain
import FuzzSupport
@testable import GWJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = FuzzInput(data, count, controlBytes: 0).payload
    let parsed: JSON
    do { parsed = try JSON.parse(bytes) } catch {
        check(error.offset >= 0 && error.offset <= bytes.count, "error offset \(error.offset) outside the input")
        return 0
    }
    let text = parsed.serialized()
    let again: JSON
    do { again = try JSON.parse(text) } catch {
        fatalError("serialized text does not parse: \(error) in \(String(decoding: text, as: UTF8.self))")
    }
    check(again == parsed, "round trip changed the value: \(String(decoding: text, as: UTF8.self))")
    check(again.serialized() == text, "second serialization differs")
    if let utf8 = String(validating: bytes, as: UTF8.self) {
        check((try? JSON.parse(utf8)).map { $0 == parsed } ?? false, "parse(String) disagrees with parse(bytes)")
    }
    if case .object(let top) = parsed {
        var streamed: [String: [JSON]] = [:]
        do {
            let rest = try JSON.parseStreamingArrays(bytes, streamed: ["routes", "services"]) { key, element in
                streamed[key, default: []].append(element)
            }
            for (k, v) in top {
                if k == "routes" || k == "services", case .array(let a) = v {
                    check(streamed[k, default: []] == a, "streamed elements of \(k) differ")
                } else {
                    check(rest[k] == v, "streamed parse lost member \(k)")
                }
            }
        } catch {
            // The streaming parser refuses a duplicate top-level key (the tree parser keeps the last one).
            check("\(error)".contains("duplicate top-level key"), "streaming parser failed on a valid object: \(error)")
        }
    }
    return 0
}

@_cdecl("fuzz_json_main")
public func fuzz_json_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
