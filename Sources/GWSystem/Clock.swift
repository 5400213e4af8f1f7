#if canImport(Glibc)
import Glibc
#endif

/// Monotonic and wall clocks. Plain functions over clock_gettime; no allocation.
public enum Clock {
    /// Monotonic milliseconds (never goes back; not wall time).
    @inline(__always)
    public static func monotonicMillis() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1000 &+ UInt64(ts.tv_nsec / 1_000_000)
    }

    /// Monotonic microseconds.
    @inline(__always)
    public static func monotonicMicros() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000 &+ UInt64(ts.tv_nsec / 1000)
    }

    /// CPU time this process has used, in µs (unlike wall time, not inflated by other processes on the cores).
    public static func processCPUMicros() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000 &+ UInt64(ts.tv_nsec / 1000)
    }

    /// Wall-clock seconds since the epoch.
    public static func wallSeconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int(ts.tv_sec)
    }

    /// Wall-clock seconds with a fraction (milliseconds precision).
    public static func wallSecondsFraction() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec / 1_000_000) / 1000
    }
}
