// swift-tools-version:6.0
// Gateway: a Kong-compatible API gateway built like nginx (master + forked, exec'd workers, libev loops,
// shared-memory balancer state). Module layering, lowest first (a module imports only lower ones):
//   CGWShims, CLLHTTP, CSQLite, CAres, CYAML, CCrypto, CSSL, CPCRE2, CPQ
//                               (C: libev/libc macros, Debian's llhttp, sqlite3, c-ares, libyaml, libcrypto, libssl, pcre2, libpq)
//   CDashboardAssets            (C: the dashboard's files, embedded at compile time by clang's #embed)
//   GWSystem                    (syscalls, sockets, shared memory, clock, logging)
//   GWEvent  GWJSON             (libev loop wrappers; JSON without Foundation)
//   GWStore  GWConfig GWHTTP    (Kong entities + snapshot; gateway.conf; HTTP/1.1 on llhttp)
//   GWTLS                       (TLS on OpenSSL: server context, connections, default certificates)
//   GWRouter GWBalancer         (Kong router; balancer + health state in shared memory)
//   GWPluginState GWRedis       (rate-limit counters + proxy-cache store in shared memory; async Redis client, RESP + TLS)
//   GWPlugins                   (plugin registry and runtime: what the data path runs)
//   GWProxy  GWAdmin            (worker data path; Admin API + SQLite store + YAML in the master)
//   GWServer                    (master/worker processes, wiring)
//   gateway                     (the CLI)
import PackageDescription

// The worker's hot-path modules run on one thread per process and keep no state shared between
// threads, so Swift's dynamic exclusivity checks only cost time there (~2% of worker CPU in the
// profile); they are turned off for these modules only.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "gateway",
    products: [
        .executable(name: "gateway", targets: ["gateway"]),
        // For Fuzz/ (a separate package that depends on this one by path; built only by `make fuzz`).
        .library(name: "GatewayFuzzable", targets: ["GWHTTP", "GWJSON", "GWAdmin", "GWRouter", "GWConfig", "GWRedis"]),
    ],
    targets: [
        .target(name: "CGWShims", linkerSettings: [.linkedLibrary("ev")]),
        .target(name: "CLLHTTP", cSettings: [.unsafeFlags(["-I/usr/share/include/llhttp", "-O3"])]),
        .target(name: "CSQLite", linkerSettings: [.linkedLibrary("sqlite3")]),
        .target(name: "CAres", linkerSettings: [.linkedLibrary("cares")]),
        .target(name: "CYAML", linkerSettings: [.linkedLibrary("yaml")]),
        .target(name: "CCrypto", linkerSettings: [.linkedLibrary("crypto")]),
        .target(name: "CSSL", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .target(name: "GWTLS", dependencies: ["CSSL", "GWConfig"], swiftSettings: hotPath),
        .target(name: "CPCRE2", linkerSettings: [.linkedLibrary("pcre2-8")]),
        .target(name: "CPQ", linkerSettings: [.linkedLibrary("pq")]),
        .target(name: "CDashboardAssets"),   // #embeds Sources/GWServer/Dashboard/* (tools/dashboard/embed.py)
        .target(name: "GWRedis", dependencies: ["GWEvent", "GWSystem", "GWTLS"], swiftSettings: hotPath),
        .target(name: "GWSystem", dependencies: ["CGWShims"]),
        .target(name: "GWEvent", dependencies: ["GWSystem", "CGWShims"], swiftSettings: hotPath),
        .target(name: "GWJSON"),
        .target(name: "GWStore", dependencies: ["GWJSON"]),
        .target(name: "GWConfig", dependencies: ["GWSystem"]),
        .target(name: "GWHTTP", dependencies: ["CLLHTTP"], exclude: ["README.md"],
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
        .target(name: "GWRouter", dependencies: ["GWStore", "GWHTTP"], swiftSettings: hotPath),
        .target(name: "GWBalancer", dependencies: ["GWStore", "CGWShims"]),
        .target(name: "GWProxy", dependencies: ["CGWShims", "GWJSON", "GWSystem", "GWEvent", "GWHTTP", "GWRouter", "GWBalancer", "GWStore", "GWConfig", "GWPlugins", "GWTLS", "GWRedis"],
                swiftSettings: hotPath),
        .target(name: "GWPluginState", dependencies: ["GWSystem", "CGWShims"], swiftSettings: hotPath),
        .target(name: "GWPlugins", dependencies: ["CCrypto", "CPCRE2", "GWJSON", "GWStore", "GWHTTP", "GWPluginState", "GWEvent", "GWSystem", "GWRedis", "GWTLS"], swiftSettings: hotPath),
        .target(name: "GWAdmin", dependencies: ["GWJSON", "GWStore", "CSQLite", "CYAML", "GWPlugins", "GWPluginState", "CCrypto", "GWTLS"]),
        .target(name: "GWServer", dependencies: ["CGWShims", "CAres", "GWJSON", "GWSystem", "GWEvent", "GWConfig", "GWProxy", "GWAdmin", "GWStore", "GWBalancer", "GWHTTP", "GWPluginState", "GWPlugins", "GWTLS", "CPQ", "CDashboardAssets"],
                exclude: ["Dashboard"]),   // the dashboard's sources, embedded by CDashboardAssets
        .executableTarget(name: "gateway", dependencies: ["GWServer", "GWConfig", "GWSystem"]),
        .testTarget(name: "GWJSONTests", dependencies: ["GWJSON"]),
        .testTarget(name: "GWStoreTests", dependencies: ["GWStore", "GWJSON"]),
        .testTarget(name: "GWHTTPTests", dependencies: ["GWHTTP"]),
        .testTarget(name: "GWRouterTests", dependencies: ["GWRouter", "GWStore", "GWHTTP"]),
        .testTarget(name: "GWBalancerTests", dependencies: ["GWBalancer", "GWStore", "GWSystem"], exclude: ["alloc_counter.c"]),
        .testTarget(name: "GWAdminTests", dependencies: ["GWAdmin", "GWJSON", "GWStore"]),
        .testTarget(name: "GWConfigTests", dependencies: ["GWConfig", "GWSystem"]),
        .testTarget(name: "GWRedisTests", dependencies: ["GWRedis"]),
        .testTarget(name: "GWPluginsTests", dependencies: ["GWPlugins", "GWHTTP", "GWJSON", "GWStore", "CCrypto", "GWPluginState", "GWSystem", "GWRedis"]),
        // A helper the GWPluginState tests spawn (posix_spawn, not fork: the test process has threads)
        // to hammer the shared tables from other processes.
        .executableTarget(name: "GWPluginStateProbe", dependencies: ["GWPluginState", "GWSystem", "CGWShims"],
                          path: "Tests/GWPluginStateProbe"),
        .testTarget(name: "GWPluginStateTests", dependencies: ["GWPluginState", "GWSystem", "CGWShims", "GWPluginStateProbe"]),
        .testTarget(name: "GWTLSTests", dependencies: ["GWTLS", "CSSL"]),
        .testTarget(name: "GWEventTests", dependencies: ["GWEvent", "GWSystem"]),
        .testTarget(name: "GWSystemTests", dependencies: ["GWSystem"]),
        .testTarget(name: "GWProxyTests", dependencies: ["GWProxy", "GWSystem", "GWHTTP", "GWPlugins", "GWStore"]),
    ]
)
