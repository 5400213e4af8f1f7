// GWSystem: text from the fixed-size char buffers C calls fill in (getcwd, inet_ntop, the TLS shims'
// error messages). Invariant: never reads past the buffer, whether or not the C side wrote a NUL.

extension String {
    /// The text of `buf` up to its first NUL (all of it if there is none), decoded as UTF-8 (invalid bytes
    /// repaired). Replaces `String(cString: [CChar])`, deprecated because it trusts the NUL.
    public init(nulTerminated buf: [CChar]) {
        let end = buf.firstIndex(of: 0) ?? buf.endIndex
        self = buf[..<end].withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }
}
