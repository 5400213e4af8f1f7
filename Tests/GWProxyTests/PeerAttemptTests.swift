import Testing
@testable import GWProxy

@Suite struct PeerAttemptNextTests {
    typealias F = PeerAttempt.Facts

    @Test func connectFailureRetriesWhileTriesRemain() {
        #expect(PeerAttempt.next(after: .connectFailed(111), tries: 1, retries: 5, F()) == .nextPeer)
        #expect(PeerAttempt.next(after: .connectTimeout, tries: 5, retries: 5, F()) == .nextPeer)
        #expect(PeerAttempt.next(after: .connectTimeout, tries: 6, retries: 5, F()) == .fail)
        #expect(PeerAttempt.next(after: .connectFailed(111), tries: 1, retries: 0, F()) == .fail)
    }

    @Test func nonIdempotentReplayedOnlyWhenNothingWasSent() {
        let post = F(idempotent: false)
        #expect(PeerAttempt.next(after: .connectFailed(111), tries: 1, retries: 5, post) == .nextPeer)
        #expect(PeerAttempt.next(after: .readTimeout, tries: 1, retries: 5, post) == .fail)
        #expect(PeerAttempt.next(after: .readTimeout, tries: 1, retries: 5, F()) == .nextPeer)
    }

    @Test func bodyAlreadySentIsNotReplayed() {
        let x = F(hasBody: true, bodyInProgress: false, bodyForwarded: 10)
        #expect(PeerAttempt.next(after: .connectTimeout, tries: 1, retries: 5, x) == .fail)
        #expect(PeerAttempt.next(after: .readFailed, tries: 1, retries: 5, x) == .fail)
    }

    @Test func invalidResponseIsNeverRetried() {
        #expect(PeerAttempt.next(after: .invalidResponse, tries: 1, retries: 5, F()) == .fail)
        #expect(PeerAttempt.next(after: .invalidResponse, tries: 1, retries: 5, F(pooledAndSilent: true)) == .fail)
    }

    @Test func stalePooledConnectionReconnectsWithoutATry() {
        let x = F(pooledAndSilent: true)
        #expect(PeerAttempt.next(after: .closedEarly, tries: 1, retries: 0, x) == .reconnect)
        #expect(PeerAttempt.next(after: .writeFailed, tries: 1, retries: 0, x) == .reconnect)
        // timeouts are the peer's fault, not a stale connection's
        #expect(PeerAttempt.next(after: .readTimeout, tries: 1, retries: 0, x) == .fail)
        // a body on its way cannot be replayed
        let sending = F(pooledAndSilent: true, hasBody: true, bodyInProgress: true, bodyForwarded: 0)
        #expect(PeerAttempt.next(after: .closedEarly, tries: 1, retries: 0, sending) == .fail)
    }

    @Test func startedResponseClosesTheClient() {
        #expect(PeerAttempt.next(after: .readFailed, tries: 1, retries: 5, F(responseStarted: true)) == .closeClient)
        #expect(PeerAttempt.next(after: .closedEarly, tries: 1, retries: 5, F(responseStarted: true, pooledAndSilent: true)) == .closeClient)
    }

    @Test func timeoutClassification() {
        #expect(UpstreamFailure.connectTimeout.isTimeout)
        #expect(UpstreamFailure.readTimeout.isTimeout)
        #expect(UpstreamFailure.writeTimeout.isTimeout)
        #expect(!UpstreamFailure.connectFailed(111).isTimeout)
        #expect(!UpstreamFailure.invalidResponse.isTimeout)
    }

    @Test func resetForgetsTheLastRequest() {
        var a = PeerAttempt()
        a.tries = 3
        a.reset()
        #expect(a.tries == 0 && a.choice == nil && !a.leased && a.tried.count == 0)
    }
}
