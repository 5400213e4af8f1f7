// `gateway config db_import FILE | db_export FILE | parse FILE`: Kong's declarative tools over the
// prefix's SQLite database or PostgreSQL (MigrationsCommand; running nodes apply an import through the
// change log), refused with `database = off`, as Kong does.
import GWAdmin
import GWConfig
import GWSystem

enum ConfigCommand {
    static func run(_ args: [String], config: GatewayConfig?) -> Int32 {
        guard let sub = args.first else { return CLI.fail("usage: gateway config db_import|db_export|parse FILE") }
        let file = args.count > 1 ? args[1] : "kong.yml"
        switch sub {
        case "parse":
            do {
                try Declarative.parseFile(path: file)
                print("parse successful")
                return 0
            } catch { return CLI.fail("failed parsing: \(error)") }
        case "db_import", "db_export":
            guard let config else { return CLI.fail("invalid configuration") }
            if config.database == "off" { return CLI.fail("'kong config \(sub)' is not available when database = off") }
            if config.database == "postgres" {
                do {
                    if sub == "db_import" {
                        try MigrationsCommand.dbImport(path: file, config: config)
                        print("import successful")
                    } else {
                        try MigrationsCommand.dbExport(path: file, config: config)
                        print("export successful")
                    }
                    return 0
                } catch { return CLI.fail("\(error)") }
            }
            do {
                try ProcessControl.makeDirectory(config.prefix)
                let store = try AdminStore(path: config.databaseFile)
                if sub == "db_import" {
                    try Declarative.importFile(path: file, into: store)
                    print("import successful")
                    if let pid = ProcessControl.readPid(config.pidFile), ProcessControl.isAlive(pid) {
                        print("note: restart or reload the running gateway to serve the imported entities")
                    }
                } else {
                    try Declarative.exportFile(path: file, from: store)
                    print("export successful")
                }
                return 0
            } catch { return CLI.fail("\(error)") }
        default:
            return CLI.fail("unknown config command '\(sub)'")
        }
    }
}
