// file-log (Kong 3.10 `kong/plugins/file-log/{handler,schema}.lua`, KONG-PLUGINS.md §7), priority 9.
// Each exchange's serialized entry (LogSerializer) + "\n" goes to the worker's FileSink for `path`:
// buffered and written by the worker's flush timer (one write per batch, O_APPEND|O_CREAT, 0644), not by
// a write per request as Kong does. `reopen: true` closes and reopens the file before each batch
// (Kong: before each entry). `custom_fields_by_lua` is refused by the Admin API (no Lua).
import GWStore

final class FileLog: PluginHandler {
    static let name = "file-log"
    static let priority = 9

    let path: String
    let reopen: Bool
    private var sink: FileSink?

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: FileLog.name)
        guard let p = try c.string("path") else { throw PluginError("file-log: config.path is required") }
        path = p
        reopen = try c.bool("reopen", false)
        super.init(entity: entity, priority: FileLog.priority)
    }

    override var phases: PluginPhases { .log }

    override func log(_ ctx: PluginContext, status: Int) {
        if sink == nil { sink = LogSinks.worker?.file(path) }
        sink?.append(ctx.logEntry, reopen: reopen)
    }
}
