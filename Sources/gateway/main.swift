// The `gateway` command: Kong's CLI verbs for a master/worker gateway.
import GWServer
#if canImport(Glibc)
import Glibc
#endif

// Process titles overwrite the argv area in place, as nginx does; it must be captured here, before
// anything else runs.
nonisolated(unsafe) let rawArgv = CommandLine.unsafeArgv
let code = CLI.main(arguments: Array(CommandLine.arguments.dropFirst()), argc: CommandLine.argc, argv: rawArgv)
exit(code)
