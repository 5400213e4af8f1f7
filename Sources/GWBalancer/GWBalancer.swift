// GWBalancer: Kong's ring-balancer and health checker over shared memory.
//
// Who calls what
// --------------
// MASTER (before fork)
//   let peers = PeerStateTable(base: segment + header.peer_area_offset, size: Int(header.peer_area_size))
//   peers.format()                                   // once; size it with PeerStateTable.bytesNeeded(capacity:)
// MASTER (every configuration / DNS change, before publishing the generation to workers)
//   let list = peers.addresses(for: snapshot, insert: true)      // ensureSlot for every IP-literal target
//   //   hostname targets come back in `unresolved`: resolve them, ensureSlot(upstream:address:) each IP,
//   //   append ResolvedAddress(address:weight:slot:hostname:) to that upstream's list
//   tracker.apply(list, table: peers, now: unixNow)              // forget() addresses that left the config
//   schedule.update(list, now: monotonicNow)                     // ActiveCheckSchedule (master-owned)
// MASTER (timer, e.g. every 100 ms: schedule.nextDeadline(table:) tells when)
//   for job in schedule.due(now: monotonicNow, table: peers) {
//       // connect job.address (timeout job.timeout); https: TLS with job.sni / job.verifyCertificate;
//       // http(s): send job.request, read one line, status = parseProbeStatusLine(line) ?? 0; tcp: connected
//       let outcome: HealthOutcome = ...  // .httpStatus(status) | .success (tcp) | .tcpFailure | .timeout
//       if let t = peers.report(job.slot, outcome, source: .active, policy: job.policy, now: unixNow) { log(t) }
//       schedule.completed(job)
//   }
// MASTER (worker in segment slot w exited, before respawning into w)
//   peers.reclaimWorker(w)
// WORKER (after fork, in segment slot w)
//   let peers = PeerStateTable(base: ..., size: ...).forWorker(w)
//   on each configuration: for u in peers.addresses(for: snapshot, insert: false) (+ its own DNS results via
//   findSlot): balancers[u.upstream.name] = UpstreamBalancer(upstream: u.upstream, addresses: u.addresses,
//   table: peers, seed: UInt64(getpid()))
// WORKER (per request)
//   let hash = upstream.hashOn == "none" ? nil : UpstreamBalancer.hashKey(valueToHash)   // once per request
//   var tried = TriedPeers()
//   guard let pick = balancer.pick(hash: hash, excluding: tried) else { 503 "failure to get a peer from the
//       ring-balancer" }
//   ... connect to pick.address (Host: balancer.addresses[pick.index].hostname, or upstream.host_header) ...
//   failed try:  balancer.release(pick, latencyMicros: nil, outcome: .tcpFailure | .timeout); tried.insert(pick);
//                pick again (retries)
//   done:        balancer.release(pick, latencyMicros: connect+response µs,
//                                 outcome: .passive(status: upstreamStatus))   // nil if the gateway answered
//   A transition returned by release() is logged: "target, old state, new state, reason".
//   release() may be called on the balancer that made the pick even after a rebuild (state is in shm).
// ADMIN API (master)
//   peers.findSlot(upstream:ip:port:) / key(of:) / healthState(_:) / addressHealth / targetHealth /
//   balancerHealthy(_:healthchecks:); PUT .../healthy|unhealthy → peers.setHealthy(slot, Bool, now:)
//   (only when upstream.healthchecks.checkerEnabled, else 400 as Kong).
