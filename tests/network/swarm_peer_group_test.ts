/**
 * A swarm peer's address group (`network/_peer_transports.ts`): the address the swarm host gives a
 * peer connection (`SwarmPeer.remoteHost`) puts it in its address group, as a TCP peer's remote
 * address does, for the budgets that must not be per key (new keys' pledges, the validator's
 * inbox) and, for a connection the peer opened, the per-address bounds on handshakes and open
 * connections (`connection_limits.ts`). A swarm connection with no address stays unaddressed.
 *
 * Before, every swarm connection reached the NetworkActor with no group: one swarm attacker with
 * fresh keys drained the one unaddressed bucket that every honest swarm newcomer drew on (review
 * s71 verify F3). The swarm host here is the stand-in (`_fake_swarm_host.mjs`): each test peer
 * listens on loopback TCP and the stand-in hands its connection to the node as a swarm peer's,
 * under the test peer's key and the address the test gives it.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { AddressBudget, type AddressRoom } from "../../network/address_budget.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { peerOriginsOf } from "../../network/_peer_origins.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { VALIDATION_PROTOCOL } from "../../protocols/inference_messages.ts";
import { listenTcp, type TcpListener } from "../../protocols/tcp_transport.ts";
import { eventually } from "../_helpers/wait.ts";
import { FAKE_HOST, script } from "./_swarm_host_fixture.ts";

/** A new keys' pledge budget that records the address group of each connection it serves. */
class RecordingBudget extends AddressBudget {
  readonly groups: (string | undefined)[] = [];

  constructor() {
    super({
      perGroup: { burst: 8, refillMs: 60_000 },
      unaddressed: { burst: 8, refillMs: 60_000 },
    });
  }

  override room(group: string | undefined): AddressRoom {
    this.groups.push(group);
    return super.room(group);
  }
}

/** What the stand-in host is told of one test peer. */
interface PeerPlan {
  /** The address it hands the connection on with (absent: none). */
  address?: string;
  /** Whether the node's side dialled (default: the peer did). */
  initiator?: boolean;
  /** The peer never answers the node's handshake (it holds its handshake slot). */
  silent?: boolean;
}

/** One test peer: its key, and its side of the connection once its handshake is done. */
interface TestPeer {
  identity: Identity;
  /** Its connection to the node, or the error its handshake failed with. */
  opened: Promise<Connection>;
}

/**
 * A NetworkActor whose swarm host is the stand-in, handing on one connection per `plans` entry
 * (in order, each after the node began the handshake of the one before), and the test peers at
 * their far ends.
 */
async function swarmNode(
  name: string,
  plans: PeerPlan[],
  limits: ConstructorParameters<typeof NetworkActor>[0]["limits"],
) {
  const listeners: TcpListener[] = [];
  /** The silent peers' sockets, closed at the end. */
  const silent: { close(): void }[] = [];
  const peers: TestPeer[] = [];
  const entries = plans.map((plan) => {
    const identity = Identity.generate();
    const opened = Promise.withResolvers<Connection>();
    opened.promise.catch(() => {}); // a refusal is read by the test, when it asks
    if (plan.silent) opened.reject(new Error("a silent peer opens no connection"));
    const listener = listenTcp({ hostname: "127.0.0.1", port: 0 }, (duplex) => {
      if (plan.silent) {
        silent.push(duplex); // reads nothing, sends nothing: the node's handshake waits
        return;
      }
      Connection.open(duplex, { identity, protocols: [VALIDATION_PROTOCOL] }).then(
        opened.resolve,
        opened.reject,
      );
    });
    listeners.push(listener);
    peers.push({ identity, opened: opened.promise });
    return {
      port: listener.addr.port,
      key: toHex(identity.publicKey),
      ...(plan.address === undefined ? {} : { address: plan.address }),
      initiator: plan.initiator === true,
    };
  });
  const { dir, nodePath } = await script(
    `FAKE_SWARM_HOST_PEERS='${JSON.stringify(entries)}' exec node ${FAKE_HOST}`,
  );
  const system = new ActorSystem({ name });
  const newPledges = new RecordingBudget();
  const network = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        // A validator's name: the new keys' pledge budget is served on each connection (no
        // validator runs: nothing is recorded, and none is needed to see the group served).
        services: { validator: "n/validator", newPledges },
        swarm: { bootstrap: [], nodePath },
        limits,
      }),
  });
  return {
    system,
    network,
    peers,
    newPledges,
    /** The keys in the node's table. */
    async connected(): Promise<string[]> {
      return (await network.ask<PeerInfo[]>({ type: "peers" })).map((p) => p.key).sort();
    },
    async close() {
      await system.shutdown();
      for (const duplex of silent) duplex.close();
      for (const listener of listeners) await listener.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const hex = (peer: TestPeer) => toHex(peer.identity.publicKey);

Deno.test({
  name:
    "swarm peers: a connection with an address counts in its group (new keys' pledges, peer origins; one a peer opened also in the group's open connections, past maxConnectionsPerAddress refused); one this node dialled is not counted among them; one with no address stays unaddressed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const node = await swarmNode("swarm-peer-group", [
      { address: "198.51.100.7" }, // P0
      { address: "198.51.100.7" }, // P1: the same address, a fresh key
      {}, // P2: no address (relayed, or unknown)
      { address: "::ffff:203.0.113.9", initiator: true }, // P3: this node dialled it
      { address: "203.0.113.9" }, // P4: the same address as P3, a peer's own connection
    ], { maxConnectionsPerAddress: 1 });
    try {
      const [p0, p1, p2, p3, p4] = node.peers;
      // Each one's handshake ends, and the node's table settles: P1 is refused after it (its
      // address already holds P0's connection, a key the node did not have before it).
      await Promise.all(node.peers.map((p) => p.opened));
      const p1Connection = await p1.opened;
      await eventually(() => p1Connection.isClosed, "P1's connection closed by the node");
      const expected = [p0, p2, p3, p4].map(hex).sort();
      await eventually(
        async () => JSON.stringify(await node.connected()) === JSON.stringify(expected),
        "P0, P2, P3 and P4 in the node's table",
      );
      // Counted in their groups: each connection's new keys' pledges, the dialled one's too (a
      // topic lookup finds whoever announced), an IPv4-mapped address as the IPv4 address.
      assert.deepEqual(
        node.newPledges.groups.map((g) => g ?? "(unaddressed)").sort(),
        ["(unaddressed)", "198.51.100.7", "198.51.100.7", "203.0.113.9", "203.0.113.9"],
      );
      const origins = peerOriginsOf(node.system);
      assert.equal(origins.of(hex(p0)).group, "198.51.100.7");
      assert.equal(origins.of(hex(p2)).group, undefined, "no address: no group");
      assert.equal(origins.of(hex(p3)).group, "203.0.113.9");
      assert.equal(origins.of(hex(p4)).group, "203.0.113.9");
    } finally {
      for (const peer of node.peers) await peer.opened.then((c) => c.close(), () => {});
      await node.close();
    }
  },
});

Deno.test({
  name:
    "swarm peers: a connection a peer opened takes a handshake slot of its address: past maxHandshakesPerAddress, the next from that address is refused before its handshake; another address's is not",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const node = await swarmNode("swarm-peer-slots", [
      { address: "198.51.100.7", silent: true }, // holds its slot: never answers
      { address: "198.51.100.7" }, // the same address while that handshake is in progress
      { address: "192.0.2.44" }, // another address
    ], { maxHandshakesPerAddress: 1 });
    try {
      const [, same, other] = node.peers;
      await assert.rejects(same.opened, (error: Error & { code?: string }) => {
        assert.equal(error.code, "handshake_refused", error.message);
        assert.match(error.message, /198\.51\.100\.7/);
        return true;
      });
      await other.opened;
      await eventually(
        async () => (await node.connected()).includes(hex(other)),
        "the other address's peer in the node's table",
      );
    } finally {
      for (const peer of node.peers) await peer.opened.then((c) => c.close(), () => {});
      await node.close();
    }
  },
});
