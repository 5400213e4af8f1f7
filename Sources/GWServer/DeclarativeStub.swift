// TEMPORARY until GWAdmin's declarative support lands.
import GWAdmin
struct NotYet: Error, CustomStringConvertible { var description: String { "declarative configuration is not supported yet" } }
enum Declarative {
    static func parseFile(path: String) throws { throw NotYet() }
    static func importFile(path: String, into: AdminStore) throws { throw NotYet() }
    static func exportFile(path: String, from: AdminStore) throws { throw NotYet() }
}
extension AdminAPI { func loadDeclarative(path: String) throws { throw NotYet() } }
