// Fuzz target: the declarative configuration loader's text entry point (AdminAPI.parseDeclarativeText: JSON when
// the text starts with `{`, else YAML through libyaml, YAML.swift) and the YAML emitter used by db_export.
// Invariant: a document that parses, emitted as YAML (YAML.emit), parses back to an equal value.
// The full validation (AdminAPI.declarative: a scratch SQLite store per call, ~100x slower) is the separate
// target fuzz-declarative-validate.
import FuzzMain
import FuzzSupport
@testable import GWAdmin
@testable import GWJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeclarative(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = FuzzInput(data, count, controlBytes: 0).payload
    guard let doc = try? AdminAPI.parseDeclarativeText(bytes) else { return 0 }
    let yaml = YAML.emit(doc)
    let back: JSON?
    do { back = try YAML.parse(Array(yaml.utf8)) } catch {
        fatalError("emitted YAML does not parse: \(error)\n\(yaml)")
    }
    check(back.map { $0 == doc } ?? false, "YAML round trip changed the value:\n\(yaml)\nfrom "
          + String(decoding: doc.serialized(), as: UTF8.self) + "\nto " + String(decoding: (back ?? .null).serialized(), as: UTF8.self))
    return 0
}

@_cdecl("fuzz_declarative_main")
public func fuzz_declarative_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
