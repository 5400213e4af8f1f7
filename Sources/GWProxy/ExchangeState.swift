// The states a client connection and its exchange go through, as plain enums with their
// transitions and decisions written as pure functions (no socket, no server): ClientConnection holds
// one value of each and performs the I/O the decisions call for. Unit-tested in
// Tests/GWProxyTests/ExchangeStateTests.swift.
//
// Invariants (checked by the transitions, relied upon by ClientConnection):
//   - request.isActive (an exchange exists) from the first byte answered or the parsed head until the
//     response is complete; pipelined bytes are not parsed while it is active and `.done`.
//   - response moves none → body → done, or none → tunnel (terminal: the connection closes after it).
//   - persistence only moves towards closing within an exchange (keepAlive → closeAfterResponse →
//     closing); a new exchange starts from the request's own keep-alive decision.
// Payloads are trivial (no references): copying these values costs nothing on the hot path.
import GWHTTP

/// Where the request side of the current exchange stands.
enum RequestPhase: Equatable {
    /// Between exchanges (keep-alive wait, or bytes of the next head arriving).
    case idle
    /// An answer is being given with no parsed head (invalid request, header timeout).
    case unparsed
    /// Head parsed, body bytes still to be read (and forwarded or discarded).
    case body
    /// The whole request was read.
    case done

    @inline(__always) var isActive: Bool { self != .idle }
}

/// How the request body reaches the upstream, decided once per request (RequestBodyBuffer.swift).
/// Framing rule (request smuggling): the client's chunk framing is never relayed; chunk sizes,
/// extensions and trailers are decoded by the parser and only the decoded bytes go upstream.
enum RequestBodyMode: Equatable {
    /// No body.
    case none
    /// A Content-Length body relayed as it arrives (request_buffering = false), under the client's
    /// validated Content-Length.
    case stream
    /// A chunked body relayed as it arrives (request_buffering = false): each decoded piece becomes one
    /// chunk of our own (hex size, CRLF, data, CRLF), then "0\r\n\r\n"; no extensions, no trailers.
    case rechunk
    /// Read whole first (memory, then a temp file), then sent with our own Content-Length.
    case buffer

    /// `routeBuffers`: the route's request_buffering; `pluginsNeedBody`: a plugin reads it in access.
    /// An Upgrade request's body is always relayed as it comes (what follows is tunnel data).
    static func choose(hasBody: Bool, chunked: Bool, upgrade: Bool, routeBuffers: Bool, pluginsNeedBody: Bool) -> RequestBodyMode {
        guard hasBody else { return .none }
        if (routeBuffers || pluginsNeedBody) && !upgrade { return .buffer }
        return chunked ? .rechunk : .stream
    }
}

/// Where the response side of the current exchange stands.
enum ResponsePhase: Equatable {
    case none
    /// Head sent, body being relayed.
    case body
    case done
    /// 101 Switching Protocols sent: bytes flow both ways raw until one side closes.
    case tunnel
}

/// How the body of the upstream response reaches the client, decided once from its head.
enum ResponseBody: Equatable {
    /// Relayed raw with its own framing (Content-Length or chunked).
    case framed
    /// No body (HEAD, 1xx, 204, 304, Content-Length 0).
    case none
    /// No length and not chunked: the body ends when the upstream closes; so does the client connection.
    case closeDelimited
    /// Chunked, to an HTTP/1.0 client: relayed decoded, delimited by closing the client connection.
    case dechunked
    /// Chunked, after a held body was released (ClientConnection+ResponseBody): the rest is relayed as
    /// decoded pieces re-framed as chunks of ours.
    case rechunked

    /// The framing for a response head. `requestIsHEAD`, `clientHTTP10` describe the client's request.
    static func classify(status: Int, contentLength: Int?, isChunked: Bool, requestIsHEAD: Bool,
                         clientHTTP10: Bool) -> ResponseBody {
        if requestIsHEAD || status == 204 || status == 304 || (status >= 100 && status < 200)
            || (contentLength == 0 && !isChunked) {
            return .none
        }
        if contentLength == nil && !isChunked && status != 101 { return .closeDelimited }
        if isChunked && clientHTTP10 { return .dechunked }
        return .framed
    }

    /// The client connection cannot be kept after this body (its end is the connection's end).
    @inline(__always) var endsConnection: Bool { self == .closeDelimited || self == .dechunked }
}

/// Whether the client connection survives the current exchange.
enum Persistence: Equatable {
    case keepAlive
    /// Close once the response is complete (and flushed).
    case closeAfterResponse
    /// Flushing what is queued, then closing: nothing more is read or parsed.
    case closing

    /// Keep-alive unless `condition`; never moves back towards keep-alive.
    @inline(__always) mutating func closeAfterResponse(if condition: Bool = true) {
        if condition && self == .keepAlive { self = .closeAfterResponse }
    }
    @inline(__always) var isKeepAlive: Bool { self == .keepAlive }
}

/// Re-entrancy guard for a loop whose body can call back into itself (parsing the client's bytes
/// forwards body pieces, which can drain the upstream, fail it, retry, or answer). A nested call
/// only asks the running loop to go round again, so buffer offsets are never advanced from a stale step.
enum LoopGuard: Equatable {
    case idle, running, runAgain

    /// True when the caller should run the loop now; false when a running loop was asked to repeat.
    @inline(__always) mutating func enter() -> Bool {
        if self != .idle { self = .runAgain; return false }
        self = .running
        return true
    }
    /// After one pass: true when a nested call asked for another pass (the guard is running again).
    @inline(__always) mutating func repeatRequested() -> Bool {
        if self == .runAgain { self = .running; return true }
        return false
    }
    @inline(__always) mutating func leave() { self = .idle }
}

/// Client-side timers (one watcher, one purpose at a time).
enum ClientTimer: Equatable { case none, keepalive, header, body, send }

/// What to do with the unread request body when the gateway answers early (error page, plugin exit).
enum EarlyAnswer {
    /// nginx discards an unread request body after an early answer and keeps the connection
    /// (ngx_http_discard_request_body): the parser goes on through the body, dropping it. Not when the
    /// client waits for a 100 Continue it never got (it may never send the body), nor when the answer
    /// closes the connection anyway.
    static func discardsBody(request: RequestPhase, closeRequested: Bool, expectsContinue: Bool,
                             continueSent: Bool) -> Bool {
        request == .body && !closeRequested && (!expectsContinue || continueSent)
    }

    /// The connection closes after the answer: asked to, or a body is pending and cannot be discarded.
    static func closes(request: RequestPhase, closeRequested: Bool, discards: Bool) -> Bool {
        closeRequested || (request == .body && !discards)
    }
}
