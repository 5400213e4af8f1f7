// A compiled PCRE2 pattern (Kong's ngx.re uses PCRE with the same syntax). Compiled once per
// configuration generation; the match data block is made once per pattern and reused, so a match
// allocates nothing. Worker-loop confined (the match data is not shared between threads).
import CPCRE2

public final class Regex: @unchecked Sendable {
    private let code: OpaquePointer
    private let matchData: OpaquePointer
    public let pattern: String

    /// nil with PCRE2's message when the pattern does not compile. `utf: false` matches bytes, as
    /// ngx.re does without the "u" option (a subject that is not UTF-8 still matches).
    public static func compile(_ pattern: String, anchored: Bool = false, utf: Bool = true) -> (Regex?, String?) {
        var err: Int32 = 0
        var offset = 0
        let options: UInt32 = (anchored ? PCRE2_ANCHORED : 0) | (utf ? PCRE2_UTF : 0)
        let code = pattern.withCString { p in
            pcre2_compile_8(UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), pattern.utf8.count, options, &err, &offset, nil)
        }
        guard let code else {
            var buf = [UInt8](repeating: 0, count: 256)
            let n = pcre2_get_error_message_8(err, &buf, buf.count)
            return (nil, String(decoding: buf.prefix(max(0, Int(n))), as: UTF8.self) + " at offset \(offset)")
        }
        guard let md = pcre2_match_data_create_from_pattern_8(code, nil) else {
            pcre2_code_free_8(code)
            return (nil, "out of memory")
        }
        return (Regex(code: code, matchData: md, pattern: pattern), nil)
    }

    private init(code: OpaquePointer, matchData: OpaquePointer, pattern: String) {
        self.code = code; self.matchData = matchData; self.pattern = pattern
    }

    deinit {
        pcre2_match_data_free_8(matchData)
        pcre2_code_free_8(code)
    }

    /// True when the pattern matches somewhere in `subject` (or at its start, for `anchored` patterns).
    public func matches(_ subject: UnsafeRawBufferPointer, anchored: Bool = false) -> Bool {
        let base = subject.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer<UInt8>(bitPattern: 1)!
        let rc = pcre2_match_8(code, base, subject.count, 0, anchored ? PCRE2_ANCHORED : 0, matchData, nil)
        return rc >= 0
    }

    public func matches<C: Collection>(_ subject: C, anchored: Bool = false) -> Bool where C.Element == UInt8 {
        if let r = subject.withContiguousStorageIfAvailable({ matches(UnsafeRawBufferPointer($0), anchored: anchored) }) { return r }
        return Array(subject).withUnsafeBytes { matches($0, anchored: anchored) }
    }
}
