// Config schema of prometheus (Kong 3.10 `kong/plugins/prometheus/schema.lua`): seven booleans, all
// default false. ai_metrics and wasm_metrics are refused when true (no AI proxy, no Wasm filters run
// here: a flag the data path would ignore is a 400, not a silent no-op).
import GWJSON

enum MetricsSchemas {
    static let unsupported: @Sendable (JSON) -> String? = { v in
        v.boolValue == true ? "not supported by this gateway (no AI or Wasm plugins run here)" : nil
    }

    static let plugins: [String: Schemas.PluginDef] = [
        "prometheus": Schemas.PluginDef(priority: 13, config: [
            Field("per_consumer", .boolean, default: false),
            Field("status_code_metrics", .boolean, default: false),
            Field("ai_metrics", .boolean, default: false, custom: unsupported),
            Field("latency_metrics", .boolean, default: false),
            Field("bandwidth_metrics", .boolean, default: false),
            Field("upstream_health_metrics", .boolean, default: false),
            Field("wasm_metrics", .boolean, default: false, custom: unsupported),
        ]),
    ]
}
