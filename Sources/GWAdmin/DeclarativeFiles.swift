// File-level declarative tools for the CLI (`gateway config parse|db_import|db_export`) and DB-less startup.
import Glibc
import GWJSON

public enum Declarative {
    public static func readFile(path: String) throws(DeclarativeError) -> [UInt8] {
        guard let f = fopen(path, "rb") else {
            throw DeclarativeError("cannot read declarative configuration '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { fread($0.baseAddress!, 1, 65536, f) }
            if n > 0 { out.append(contentsOf: buf[0..<n]) }
            if n < 65536 {
                if ferror(f) != 0 { throw DeclarativeError("cannot read declarative configuration '\(path)'") }
                break
            }
        }
        return out
    }

    static func writeFile(path: String, _ text: String) throws(DeclarativeError) {
        guard let f = fopen(path, "wb") else {
            throw DeclarativeError("cannot write '\(path)': \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, f) }
        let ok = fflush(f) == 0 && fsync(fileno(f)) == 0
        fclose(f)
        if n != bytes.count || !ok { throw DeclarativeError("cannot write '\(path)'") }
    }

    /// `gateway config parse FILE`: validates the file; returns entity counts.
    @discardableResult
    public static func parseFile(path: String) throws(DeclarativeError) -> [EntityKind: Int] {
        let store: AdminStore
        do { store = try AdminStore(path: ":memory:") } catch { throw DeclarativeError(error.message) }
        return try AdminAPI(store: store, context: AdminContext()).parseDeclarative(readFile(path: path))
    }

    /// `gateway config db_import FILE`: upserts the file's entities into `store` (one transaction).
    /// `sharedDatabase`: the store is PostgreSQL's (rate-limiting's policy cluster is accepted).
    @discardableResult
    public static func importFile(path: String, into store: AdminStore, sharedDatabase: Bool = false) throws(DeclarativeError) -> [EntityKind: Int] {
        var context = AdminContext()
        context.sharedDatabase = sharedDatabase
        return try AdminAPI(store: store, context: context).dbImport(readFile(path: path))
    }

    /// `gateway config db_export FILE`: YAML, or JSON when the file name ends in `.json`.
    public static func exportFile(path: String, from store: AdminStore) throws(DeclarativeError) {
        let api = AdminAPI(store: store, context: AdminContext())
        try writeFile(path: path, api.dbExport(format: path.hasSuffix(".json") ? .json : .yaml))
    }
}

extension AdminAPI {
    /// DB-less startup: replaces the store content with the declarative file (YAML or JSON).
    public func loadDeclarative(path: String) throws(DeclarativeError) {
        try loadDeclarative(bytes: Declarative.readFile(path: path))
    }
}
