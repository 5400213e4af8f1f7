// Fuzz target: the router's path normalisation (GWRouter KongPath.normalize: percent-decoding of unreserved
// bytes, `//` merging, dot-segment removal) and the upstream path builder. Invariants: normalisation is
// idempotent; a normalised absolute path has no "." or ".." segment left (no traversal reaches the router);
// KongPath.escape leaves only safe bytes (`%` is one: Kong's escape keeps it).
import FuzzMain
import FuzzSupport
@testable import GWRouter

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPath(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = FuzzInput(data, count, controlBytes: 0).payload
    let n = KongPath.normalize(bytes)
    // Idempotent, except where decoding made a new escape ("%6%66" -> "%6f"): Kong's normalize (kong/tools/uri.lua)
    // decodes in one pass too, and the gateway routes on what Kong routes on.
    let n2 = KongPath.normalize(Array(n.utf8))
    if n2 != n {
        let u = Array(n.utf8)
        // an escape the first pass leaves is reserved and upper-case; any other one was made by decoding
        let madeEscape = u.indices.contains { k in
            guard u[k] == 0x25, k + 2 < u.count, let h = KongPath.hexValue(u[k + 1]), let l = KongPath.hexValue(u[k + 2])
            else { return false }
            return !KongPath.isReserved(h << 4 | l) || KongPath.upperHex(u[k + 1]) != u[k + 1]
                || KongPath.upperHex(u[k + 2]) != u[k + 2]
        }
        check(madeEscape, "not idempotent: \(n) -> \(n2)")
    }
    if bytes.first == 0x2F && String(validating: bytes, as: UTF8.self) != nil {
        for seg in n.utf8.split(separator: 0x2F, omittingEmptySubsequences: false) {
            check(!seg.elementsEqual([0x2E]) && !seg.elementsEqual([0x2E, 0x2E]), "dot segment left in \(n)")
        }
    }
    let e = KongPath.escape(n)
    for b in e.utf8 { check(KongPath.isEscapeSafe(b), "unsafe byte \(b) left by escape in \(e)") }
    return 0
}

@_cdecl("fuzz_path_main")
public func fuzz_path_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    gw_fuzz_main(argc, argv)
}
