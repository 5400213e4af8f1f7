// Fuzz target: declarative configuration validation (AdminAPI.declarative, as `gateway config parse`, DB-less
// start and POST /config run it): the text is parsed (JSON or YAML) and the document goes through the entity
// pipeline into a scratch in-memory SQLite store. No invariant beyond "no crash, no leak, no sanitizer report":
// any document is either accepted or refused with a DeclarativeError.
import FuzzMain
import FuzzSupport
@testable import GWAdmin
@testable import GWJSON

nonisolated(unsafe) let api: AdminAPI = {
    let store = try! AdminStore(path: ":memory:")
    return AdminAPI(store: store, context: AdminContext())
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeclarativeValidate(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = FuzzInput(data, count, controlBytes: 0).payload
    guard let doc = try? AdminAPI.parseDeclarativeText(bytes) else { return 0 }
    do { _ = try api.declarative(doc, onto: false) } catch {
        check(!error.message.isEmpty, "empty declarative error")
    }
    return 0
}

@_cdecl("fuzz_declarative_validate_main")
public func fuzz_declarative_validate_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
