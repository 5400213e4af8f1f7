// Fuzz target: the Admin API body decoders (Sources/GWAdmin/Body.swift, AdminAPI.body): JSON, 
// x-www-form-urlencoded (Kong's a.b[1][] notations) and multipart/form-data. Input: the first line is the
// Content-Type header value, the rest is the body. Invariant: a decoded body is a JSON object that serializes
// and parses back to an equal value (what the entity pipeline and the store see).
import FuzzMain
import FuzzSupport
@testable import GWAdmin
@testable import GWJSON

nonisolated(unsafe) let api: AdminAPI = {
    let store = try! AdminStore(path: ":memory:")
    return AdminAPI(store: store, context: AdminContext())
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAdminBody(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = FuzzInput(data, count, controlBytes: 0).payload
    let nl = bytes.firstIndex(of: 0x0A) ?? bytes.count
    let contentType = String(decoding: bytes[..<nl], as: UTF8.self)
    let body = Array(bytes[min(nl + 1, bytes.count)...])
    let raw = AdminRequest(method: "POST", target: "/services", headers: [("Content-Type", contentType)], body: body)
    let req = AdminAPI.Req(method: "POST", segs: ["services"], path: "/services", query: [], raw: raw)
    guard let (obj, _) = try? api.body(req) else { return 0 }
    let v = JSON.object(obj)
    let back = try? JSON.parse(v.serialized())
    check(back.map { $0 == v } ?? false, "decoded body does not round-trip through JSON")
    return 0
}

@_cdecl("fuzz_admin_body_main")
public func fuzz_admin_body_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
