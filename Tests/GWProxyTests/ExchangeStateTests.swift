import Testing
@testable import GWProxy

@Suite struct ResponseBodyTests {
    func classify(_ status: Int, cl: Int? = nil, chunked: Bool = false, head: Bool = false, http10: Bool = false) -> ResponseBody {
        ResponseBody.classify(status: status, contentLength: cl, isChunked: chunked, requestIsHEAD: head, clientHTTP10: http10)
    }

    @Test func bodylessResponses() {
        #expect(classify(200, cl: 10, head: true) == .none)
        #expect(classify(204) == .none)
        #expect(classify(304, cl: 5) == .none)
        #expect(classify(101) == .none)
        #expect(classify(200, cl: 0) == .none)
    }

    @Test func framedAndDelimited() {
        #expect(classify(200, cl: 6) == .framed)
        #expect(classify(200, chunked: true) == .framed)
        #expect(classify(200) == .closeDelimited)
        #expect(classify(200).endsConnection)
        #expect(!classify(200, cl: 6).endsConnection)
    }

    @Test func chunkedToHTTP10ClientIsDecoded() {
        #expect(classify(200, chunked: true, http10: true) == .dechunked)
        #expect(classify(200, chunked: true, http10: true).endsConnection)
        #expect(classify(200, cl: 3, http10: true) == .framed)
        #expect(classify(204, chunked: true, http10: true) == .none)
    }
}

@Suite struct PersistenceTests {
    @Test func onlyMovesTowardsClosing() {
        var p = Persistence.keepAlive
        p.closeAfterResponse(if: false)
        #expect(p == .keepAlive)
        p.closeAfterResponse()
        #expect(p == .closeAfterResponse)
        p = .closing
        p.closeAfterResponse()
        #expect(p == .closing)
        #expect(!p.isKeepAlive)
    }
}

@Suite struct LoopGuardTests {
    @Test func nestedCallAsksForAnotherPass() {
        var g = LoopGuard.idle
        let first = g.enter(), nested = g.enter()   // nested: the running loop goes round again
        #expect(first && !nested)
        let again = g.repeatRequested(), twice = g.repeatRequested()
        #expect(again && !twice)                    // one request, one extra pass
        g.leave()
        #expect(g == .idle)
        let next = g.enter()
        #expect(next)
    }

    @Test func drivesALoopLikeProcess() {
        // A body that re-enters twice during its first pass runs exactly twice.
        var g = LoopGuard.idle
        var passes = 0
        func run() {
            guard g.enter() else { return }
            defer { g.leave() }
            repeat {
                passes += 1
                if passes == 1 { run(); run() }
            } while g.repeatRequested()
        }
        run()
        #expect(passes == 2)
        #expect(g == .idle)
    }
}

@Suite struct EarlyAnswerTests {
    @Test func bodyIsDiscardedAndConnectionKept() {
        let d = EarlyAnswer.discardsBody(request: .body, closeRequested: false, expectsContinue: false, continueSent: false)
        #expect(d)
        #expect(!EarlyAnswer.closes(request: .body, closeRequested: false, discards: d))
    }

    @Test func clientWaitingForContinueIsNotDrained() {
        let d = EarlyAnswer.discardsBody(request: .body, closeRequested: false, expectsContinue: true, continueSent: false)
        #expect(!d)
        #expect(EarlyAnswer.closes(request: .body, closeRequested: false, discards: d))
        #expect(EarlyAnswer.discardsBody(request: .body, closeRequested: false, expectsContinue: true, continueSent: true))
    }

    @Test func closeRequestedOrNoBody() {
        #expect(!EarlyAnswer.discardsBody(request: .body, closeRequested: true, expectsContinue: false, continueSent: false))
        #expect(EarlyAnswer.closes(request: .done, closeRequested: true, discards: false))
        #expect(!EarlyAnswer.discardsBody(request: .done, closeRequested: false, expectsContinue: false, continueSent: false))
        #expect(!EarlyAnswer.closes(request: .done, closeRequested: false, discards: false))
        #expect(!EarlyAnswer.closes(request: .unparsed, closeRequested: false, discards: false))
    }
}

@Suite struct RequestPhaseTests {
    @Test func activity() {
        #expect(!RequestPhase.idle.isActive)
        #expect(RequestPhase.unparsed.isActive)
        #expect(RequestPhase.body.isActive)
        #expect(RequestPhase.done.isActive)
    }
}
