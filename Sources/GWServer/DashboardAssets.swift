// The dashboard's files as the dashboard listener serves them: the read-only table that
// CDashboardAssets embeds at compile time (clang's `#embed` of Sources/GWServer/Dashboard/*, listed
// by tools/dashboard/embed.py), copied once into Swift arrays on first use (master loop only), each
// with an ETag hashed from its bytes (FNV-1a 64: changes whenever the file does, nothing to regenerate).

import CDashboardAssets

enum DashboardAssets {
    struct File: Sendable {
        let path: String
        let contentType: String
        let etag: String
        let bytes: [UInt8]
    }

    static func index(of path: String) -> Int? { files.firstIndex { $0.path == path } }

    static let files: [File] = (0..<gw_dashboard_asset_count()).map { i in
        let a = gw_dashboard_asset_at(i)!.pointee
        let bytes = Array(UnsafeBufferPointer(start: a.bytes, count: a.length))
        return File(path: String(cString: a.path), contentType: String(cString: a.content_type),
                    etag: etag(bytes), bytes: bytes)
    }

    /// `"` + 16 lowercase hex digits of the bytes' FNV-1a 64-bit hash + `"`.
    static func etag(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return "\"" + String(repeating: "0", count: 16 - hex.count) + hex + "\""
    }
}
