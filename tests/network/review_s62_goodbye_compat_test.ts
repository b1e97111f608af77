/**
 * Review s62 (goodbye, the wire): a stopping NetworkActor says `peer.goodbye` (reason `stopping`)
 * to a peer that offered the goodbye protocol, before its connection closes; a peer older than
 * goodbyes (it does not offer the protocol) is sent nothing it would refuse, and sees its
 * connection close as before. A goodbye stuck behind a peer that reads nothing does not hold the
 * stop past `GOODBYE_WAIT_MS`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { GOODBYE_WAIT_MS } from "../../network/_peer_transports.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { type ByteDuplex, memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PEER_PROTOCOL } from "../../protocols/peer_hello.ts";
import { GOODBYE_PROTOCOL, PeerGoodbyeMessage } from "../../protocols/peer_goodbye.ts";
import type { ProtocolError, RemoteError } from "../../protocols/protocol_errors.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

/** A NetworkActor on its own system, and a plain connection to it offering `protocols`. */
async function nodeAndPeer(protocols = [PEER_PROTOCOL, GOODBYE_PROTOCOL], duplex?: ByteDuplex) {
  const system = new ActorSystem({ name: "review-s62-goodbye-wire" });
  const net = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const [ours, theirs] = memoryDuplexPair();
  const problems: (ProtocolError | RemoteError)[] = [];
  const [, peer] = await Promise.all([
    net.ask({ type: "attach", duplex: duplex ?? ours, address: "mem", outbound: false }),
    Connection.open(theirs, {
      identity: Identity.generate(),
      protocols,
      onProtocolError: (error) => problems.push(error),
      onRemoteError: (error) => problems.push(error),
    }),
  ]);
  return { system, peer, problems };
}

Deno.test("review s62: a stopping node says goodbye (stopping) to a peer that speaks it, before its connection closes", async () => {
  const { system, peer, problems } = await nodeAndPeer();
  const reasons: string[] = [];
  peer.handle(PeerGoodbyeMessage, ({ reason }) => {
    reasons.push(reason);
    assert.equal(peer.isClosed, false, "the goodbye comes before the close");
  });
  await system.shutdown();
  await peer.closed;
  assert.deepEqual(reasons, ["stopping"]);
  assert.deepEqual(problems, []);
});

Deno.test("review s62: a peer that does not offer the goodbye protocol is sent none, and sees its connection close as before", async () => {
  const { system, peer, problems } = await nodeAndPeer([PEER_PROTOCOL]);
  await system.shutdown();
  await peer.closed;
  assert.deepEqual(problems, [], "nothing it would refuse as an unknown type");
  assert.equal(peer.stats().refused, 0);
  assert.equal(peer.closeReason, null, "a plain close, as before goodbyes");
});

Deno.test("review s62: a goodbye the peer never reads holds the stop GOODBYE_WAIT_MS at most", async () => {
  const timers = new FakeTimers();
  const system = new ActorSystem({ name: "review-s62-goodbye-stuck" });
  const net = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        connection: { timers, keepaliveMs: 0, idleTimeoutMs: 0 },
      }),
  });
  // The node's writes go through a gate the test shuts once the handshake is done: from then on
  // nothing it writes is taken (a peer that stopped reading, with a full window).
  const [ours, theirs] = memoryDuplexPair();
  let shut = false;
  const stuck = Promise.withResolvers<void>();
  const gated = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (shut) return await stuck.promise;
      const writer = ours.writable.getWriter();
      try {
        await writer.write(chunk);
      } finally {
        writer.releaseLock();
      }
    },
  });
  const [, peer] = await Promise.all([
    net.ask({
      type: "attach",
      duplex: { readable: ours.readable, writable: gated },
      address: "mem",
      outbound: false,
      close: () => stuck.resolve(),
    }),
    Connection.open(theirs, {
      identity: Identity.generate(),
      protocols: [PEER_PROTOCOL, GOODBYE_PROTOCOL],
    }),
  ]);
  shut = true;
  const stopped = tracker(system.shutdown());
  await turns(5);
  assert.equal(stopped(), false, "waiting on the goodbye");
  const bound = [...timers.armed.entries()].filter(([, t]) => t.ms === GOODBYE_WAIT_MS);
  assert.equal(bound.length, 1, "the wait is bounded");
  // The bound runs out: the stop goes on (its connection's close grace, on the same clock).
  for (let i = 0; i < 20 && !stopped(); i++) {
    timers.fireAll();
    await turns(2);
  }
  assert.equal(stopped(), true, "the stop did not wait on the peer");
  await peer.close();
});
