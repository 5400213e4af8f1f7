// Fuzz target: gateway.conf parsing and validation (GWConfig ConfigLoader.load(text:): defaults + the text, no
// file, no environment). Invariant: an accepted configuration, written back as `key = value` lines from its
// resolved entries, loads again to the same entries.
import FuzzMain
import FuzzSupport
@testable import GWConfig

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGatewayConf(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = FuzzInput(data, count, controlBytes: 0).payload
    guard let conf = try? ConfigLoader.load(text: bytes) else { return 0 }
    var text = ""
    for (k, v) in conf.entries { text += "\(k) = \(v)\n" }
    if let t = conf.adminToken { text += "admin_token = \(t)\n" }
    let again: GatewayConfig
    do { again = try ConfigLoader.load(text: Array(text.utf8)) } catch {
        fatalError("written-back configuration refused: \(error)\n\(text)")
    }
    check(again.entries.elementsEqual(conf.entries, by: { $0 == $1 }), "entries differ after a round trip")
    return 0
}

@_cdecl("fuzz_gateway_conf_main")
public func fuzz_gateway_conf_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
