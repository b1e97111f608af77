/**
 * A peer's refusal of this node's own hello is a line in this node's log (stop 78): the refusal is
 * an `error` frame about the hello, which no request waits on, and it reached the connection's
 * `onRemoteError` unhooked, so a node every peer refused (a version mismatch) said nothing while
 * none knew its roles, models or load. The line names the peer (its key's first 16 hex digits),
 * the refusal's code with the peer's words quoted, and what to do; it is said once per connection
 * and code however many hellos are refused, and the lines of many peers are the peer log's few per
 * 10 s (`network/log_limiter.ts`), the rest counted. `network/_hello_refusals.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PEER_PROTOCOL, type PeerHelloBody, PeerHelloMessage } from "../../protocols/peer_hello.ts";
import { ProtocolError } from "../../protocols/protocol_errors.ts";
import { eventually } from "../_helpers/wait.ts";

/** This node's version in its hellos. */
const VERSION = "9.9.9";
/** The refusals this node has received on one connection before the test looks at its log. */
const REFUSALS_SEEN = 4;
/** Peers that refuse: more than the peer log writes of one kind per window (5 by default). */
const REFUSING_PEERS = 8;
/** The peer log's lines of one kind per window (`LogLimiter`'s default burst). */
const LOG_BURST = 5;

/** A line this node writes about a peer's refusal of its hello. */
const isRefusalLine = (line: string) => / refused our hello /.test(line);

/**
 * This node: hellos every `helloIntervalMs` ms, each with another load (so each is signed and
 * sent anew); its log lines kept, and the messages of the remote errors its connections receive.
 */
async function ourNode(system: ActorSystem, helloIntervalMs: number, now?: () => number) {
  const lines: string[] = [];
  const remoteErrors: string[] = [];
  let signed = 0;
  const net = await system.spawn<NetworkMessage>({
    name: "ours/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        helloIntervalMs,
        now,
        log: (line) => void lines.push(line),
        connection: { onRemoteError: (error) => void remoteErrors.push(error.message) },
        describe: (): Promise<PeerHelloBody> =>
          Promise.resolve({
            version: VERSION,
            roles: ["inference"],
            models: [],
            load: { running: 0, queued: signed++ % 8, slots: 4, queueLimit: 8 },
          }),
      }),
  });
  return { net, lines, remoteErrors };
}

/**
 * A plain peer attached to `net` that refuses each hello as a node of another version would:
 * `invalid_body`, about the hello, its message ended by `tag`. Says how many it refused.
 */
async function refusingPeer(net: Awaited<ReturnType<typeof ourNode>>["net"], tag = "") {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  let refused = 0;
  const [, peer] = await Promise.all([
    net.ask<Connection>({ type: "attach", duplex: a, address: "mem", outbound: false }),
    Connection.open(b, { identity, protocols: [PEER_PROTOCOL] }),
  ]);
  peer.handle(PeerHelloMessage, () => {
    refused++;
    throw new ProtocolError(
      "invalid_body",
      `version: a hello's version is 1 to 32 characters${tag}`,
    );
  });
  return { key: toHex(identity.publicKey), peer, refused: () => refused };
}

Deno.test("a peer refusing our hello (invalid_body) is one log line naming the peer, the code and what to do, however many hellos it refuses", async () => {
  const system = new ActorSystem({ name: "s78-own-hello-refused" });
  try {
    const ours = await ourNode(system, 5);
    const { key, peer } = await refusingPeer(ours.net);
    await eventually(() => ours.remoteErrors.length >= REFUSALS_SEEN, "refusals received");
    const said = ours.lines.filter(isRefusalLine);
    assert.equal(said.length, 1, ours.lines.join("\n"));
    assert.equal(
      said[0],
      `peer ${
        key.slice(0, 16)
      }: refused our hello "invalid_body: version: a hello's version is 1 ` +
        `to 32 characters": its version does not take ours (ours ${VERSION}): run the network's ` +
        `version (upgrade the older node); until then it knows nothing of this node's roles, ` +
        `models or load and routes it no jobs`,
    );
    assert.equal(peer.isClosed, false, "a refused hello closes nothing");
  } finally {
    await system.shutdown();
  }
});

Deno.test("peers refusing our hello are a line each, a few per window, the rest counted in one line", async () => {
  const system = new ActorSystem({ name: "s78-own-hello-refused-many" });
  // One instant: the peer log's window never ends while the test runs, whatever the machine's pace.
  const ours = await ourNode(system, 5, () => 0);
  try {
    for (let i = 0; i < REFUSING_PEERS; i++) await refusingPeer(ours.net, ` (peer ${i})`);
    // Each peer's refusals received, twice over: each connection's first is in the log or counted.
    await eventually(
      () =>
        Array.from({ length: REFUSING_PEERS }, (_, i) => ` (peer ${i})`).every((tag) =>
          ours.remoteErrors.filter((m) => m.endsWith(tag)).length >= 2
        ),
      "two refusals received from every peer",
    );
    const said = ours.lines.filter(isRefusalLine);
    assert.equal(said.length, LOG_BURST, ours.lines.join("\n"));
  } finally {
    await system.shutdown();
  }
  const counted = ours.lines.filter((l) => l.startsWith("own hello refused: "));
  assert.equal(counted.length, 1, ours.lines.join("\n"));
  assert.match(counted[0], new RegExp(`^own hello refused: ${REFUSING_PEERS - LOG_BURST} more`));
});

Deno.test("a peer that paces hellos slower refuses our hellos hello_too_soon: one line saying our interval is shorter than its own", async () => {
  const system = new ActorSystem({ name: "s78-own-hello-too-soon" });
  try {
    const ours = await ourNode(system, 1);
    // A node of this version on the default interval: ours are faster than its pace allows.
    const theirs = await system.spawn<NetworkMessage>({
      name: "theirs/network",
      factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
    });
    const [a, b] = memoryDuplexPair();
    const [toTheirs] = await Promise.all([
      ours.net.ask<Connection>({ type: "attach", duplex: a, address: "mem", outbound: true }),
      theirs.ask<Connection>({ type: "attach", duplex: b, address: "mem", outbound: false }),
    ]);
    await eventually(() => ours.remoteErrors.length >= REFUSALS_SEEN, "refusals received");
    const said = ours.lines.filter(isRefusalLine);
    assert.equal(said.length, 1, ours.lines.join("\n"));
    assert.match(
      said[0],
      new RegExp(
        `^peer ${toHex(toTheirs.peerKey!).slice(0, 16)}: refused our hello "hello_too_soon: .*": ` +
          `our hellos come faster than its pace: this node's hello interval \\(1 ms\\) is ` +
          `shorter than that peer's`,
      ),
    );
  } finally {
    await system.shutdown();
  }
});
