/**
 * Review s63 (goodbye, during a stop): a stopping node said `peer.goodbye` only to the peers in
 * its table when its stop began. A peer whose handshake finished while the node was stopping was
 * closed without a word (the handshake's end found the node stopping), and one whose handshake had
 * finished just before, while its `peer_up` still waited in the NetworkActor's mailbox, was not
 * even closed: the stop discarded the message, and with it the only owner of the connection. Such
 * a peer saw a plain `peer down` (or nothing, until its idle timeout), which it holds against us
 * as a crash. Now every connection the NetworkActor opened is told goodbye (`stopping`) and closed
 * by the stop, whether it reached the table or not, and a handshake that finishes once the stop
 * began is answered with the same goodbye, then closed: it never enters the table.
 */
import assert from "node:assert/strict";
import { ActorSystem, type ActorTreeNode } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PEER_PROTOCOL } from "../../protocols/peer_hello.ts";
import { GOODBYE_PROTOCOL, PeerGoodbyeMessage } from "../../protocols/peer_goodbye.ts";
import { connectTcp } from "../../protocols/tcp_transport.ts";
import { eventually } from "../_helpers/wait.ts";

/** No keepalive or idle timer: nothing but the stop closes these connections. */
const QUIET = { keepaliveMs: 0, idleTimeoutMs: 0 };

/** The network actor's node in the system's tree. */
function networkNode(system: ActorSystem): ActorTreeNode | undefined {
  return system.tree().children?.find((c) => c.name === "n/network");
}

/** A plain peer's side: the goodbyes it hears, each checked to come before its close. */
function listen(peer: Connection): string[] {
  const reasons: string[] = [];
  peer.handle(PeerGoodbyeMessage, ({ reason }) => {
    assert.equal(peer.isClosed, false, "the goodbye comes before the close");
    reasons.push(reason);
  });
  return reasons;
}

Deno.test({
  name:
    "review s63: a stopping node says goodbye to a peer whose handshake ends during the stop, and to one whose peer_up the stop discarded",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const lines: string[] = [];
    const system = new ActorSystem({ name: "review-s63-goodbye-during-stop" });
    const net = await system.spawn<NetworkMessage>({
      name: "n/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: {},
          listen: { hostname: "127.0.0.1", port: 0 },
          connection: QUIET,
          log: (line) => lines.push(line),
        }),
    });
    const address = await net.ask<Deno.NetAddr>({ type: "listening" });
    let late: Connection | undefined;
    let queued: Connection | undefined;
    try {
      // Peer L (late): its handshake is under way in the actor's mailbox (`attach`) and ends only
      // once the stop began.
      const [ours, theirs] = memoryDuplexPair();
      const attached = net.ask({ type: "attach", duplex: ours, address: "mem-l", outbound: false });
      // Peer Q (queued): it connects over TCP; its handshake ends before the stop, and its
      // `peer_up` waits behind L's `attach` in the mailbox.
      const duplex = await connectTcp({ hostname: address.hostname, port: address.port });
      queued = await Connection.open(duplex, {
        ...QUIET,
        identity: Identity.generate(),
        protocols: [PEER_PROTOCOL, GOODBYE_PROTOCOL],
      });
      const toQueued = listen(queued);
      await eventually(() => networkNode(system)?.mailbox?.size === 1, "Q's peer_up queued");

      const stopped = system.shutdown();
      // The stop discards what waits in the mailbox (Q's peer_up) and waits on the message in
      // hand (L's attach).
      await eventually(() => networkNode(system)?.mailbox?.size === 0, "the mailbox cleared");
      late = await Connection.open(theirs, {
        ...QUIET,
        identity: Identity.generate(),
        protocols: [PEER_PROTOCOL, GOODBYE_PROTOCOL],
      });
      const toLate = listen(late);
      assert.equal(await attached.catch(() => undefined), undefined, "L never enters the table");
      await stopped;

      await late.closed;
      assert.deepEqual(toLate, ["stopping"], "L was refused with a goodbye, not a bare close");
      await eventually(() => queued!.isClosed, "Q's connection closed by the stop");
      assert.deepEqual(
        toQueued,
        ["stopping"],
        "Q was told goodbye though it never reached the table",
      );
      assert.deepEqual(lines.filter((l) => l.startsWith("peer up")), [], "neither was ever up");
    } finally {
      await system.shutdown();
      await late?.close();
      await queued?.close();
    }
  },
});
