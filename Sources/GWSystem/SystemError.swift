// GWSystem: the only layer that calls libc for processes, sockets, memory and files.
// Policy (after SwiftNIO's System.swift and swift-system): calls are retried on EINTR, EAGAIN is
// reported as "would block" to the caller, and every other failure throws a SystemError that names
// the call, so logs read like nginx's ("bind(0.0.0.0:8000) failed (98: Address already in use)").
#if canImport(Glibc)
import Glibc
#endif
import CGWShims

/// A failed system call: which call, with what, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let errno: Int32
    public let call: String

    public init(errno: Int32, call: String) {
        self.errno = errno
        self.call = call
    }

    /// Builds the error from the current errno (read in C, right after the failing call).
    @inline(never)
    public static func last(_ call: String) -> SystemError {
        SystemError(errno: gw_errno(), call: call)
    }

    public var description: String {
        "\(call) failed (\(errno): \(String(cString: strerror(errno))))"
    }
}
