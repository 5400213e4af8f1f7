// The master ⇄ worker channel: one AF_UNIX socketpair per worker (nginx's ngx_channel).
// Master → worker commands are single bytes; worker → master sends 'R' once it accepts
// connections. EOF on the worker side means the master died: the worker exits by itself.

/// Command bytes on the channel.
public enum ChannelCommand: UInt8, Sendable {
    case configChanged = 0x43   // 'C': a new configuration generation is published
    case quit = 0x51            // 'Q': stop accepting, drain, exit
    case terminate = 0x54       // 'T': exit now
    case reopenLogs = 0x4F      // 'O': reopen log files (USR1)
    case ready = 0x52           // 'R': worker → master, accepting connections
}
