/**
 * A stopping node says goodbye (`peer.goodbye`, reason `stopping`) to its peers, so a clean stop is
 * not taken for a crash: what the peers do with it, on the wire and with older peers, and during the
 * stop itself.
 */
import assert from "node:assert/strict";
import { ActorSystem, type ActorTreeNode } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { type ByteDuplex, memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, INFO, job, MODEL, TwoTokenWorker } from "./_router_fixture.ts";
import { GOODBYE_WAIT_MS } from "../../network/_peer_transports.ts";
import { Connection } from "../../protocols/connection.ts";
import { PEER_PROTOCOL } from "../../protocols/peer_hello.ts";
import { GOODBYE_PROTOCOL, PeerGoodbyeMessage } from "../../protocols/peer_goodbye.ts";
import type { ProtocolError, RemoteError } from "../../protocols/protocol_errors.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";
import { connectTcp } from "../../protocols/tcp_transport.ts";

// ---- goodbye --------------------------------------------------------------------------------------
// A node that stopped cleanly looked, to its peers, like one that crashed. Its connections only
// dropped, so a router logged `peer down … connection closed` and counted the worker's job in
// flight as the worker's failure: the job failed over, and the worker was asked last for a while
// (`busy_refusals.ts`), as one whose connection is lost under a job. A stopping node now says
// goodbye (`peer.goodbye`, reason `stopping`) to every peer that speaks it before its connections
// close: the peer logs `peer KEY stopped ("stopping")`, drops it at once, and a router fails its jobs
// over at once. The job it dropped is still held against it (asked last for a while, as any worker
// whose connection is lost under a job): a goodbye costs nothing to say, so a worker that said one
// with every job it took and dialled back in would otherwise take a try of every job without ever
// being asked last (`busy_refusals.ts`). An honest worker that stopped is gone meanwhile; only one
// back within the while is asked after the others.

/** A worker that takes every job and never sends a token (until it is cancelled). */
class HoldingWorker implements InferencePort {
  /** Jobs submitted to it. */
  submits = 0;
  models(): Promise<ServedModelInfo[]> {
    return Promise.resolve([INFO]);
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.resolve(emptyInferenceStats());
  }
  submit(j: TextJob): Promise<InferenceHandle> {
    this.submits++;
    const done = Promise.withResolvers<JobSummary>();
    const cancel = () =>
      done.resolve({
        jobId: jobId(j),
        finishReason: "cancelled",
        usage: { promptTokens: 1, completionTokens: 0 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      });
    const tokens = new ReadableStream<StreamedToken>({ cancel }, { highWaterMark: 0 });
    return Promise.resolve({
      jobId: jobId(j),
      model: INFO,
      promptTokens: 1,
      tokens,
      done: done.promise,
      cancel,
    });
  }
}

Deno.test({
  name:
    "a worker that stops cleanly says goodbye: its job fails over, the router logs it stopped and drops it, and the dropped job is still held against it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const lines: string[] = [];
    const busy = new BusyRefusals();
    const router = new ActorSystem({ name: "review-s62-goodbye-router" });
    const worker = new ActorSystem({ name: "review-s62-goodbye-worker" });
    try {
      const net = await router.spawn<NetworkMessage>({
        name: "r/network",
        factory: () =>
          new NetworkActor({
            identity: Identity.generate(),
            services: {},
            log: (line) => lines.push(line),
          }),
      });
      const port = new NetworkInferencePort(net, undefined, undefined, {}, busy);
      // Worker A: a node of its own (a NetworkActor, which says goodbye when it stops), idle.
      const aIdentity = Identity.generate();
      const holding = new HoldingWorker();
      const aNet = await worker.spawn<NetworkMessage>({
        name: "a/network",
        factory: () =>
          new NetworkActor({
            identity: aIdentity,
            services: { inference: holding },
            describe: () =>
              Promise.resolve({
                version: "1.0.0",
                roles: ["inference"],
                models: [MODEL],
                load: { running: 0, queued: 0, slots: 4, queueLimit: 4 },
              }),
          }),
      });
      const [toA, toRouter] = memoryDuplexPair();
      await Promise.all([
        net.ask({ type: "attach", duplex: toA, address: "mem-a", outbound: true }),
        aNet.ask({ type: "attach", duplex: toRouter, address: "mem-r", outbound: false }),
      ]);
      // Worker B: busier, so the job goes to A first.
      const two = new TwoTokenWorker(false, "", "");
      const bIdentity = Identity.generate();
      await connectWorker(net, two, { running: 3, queued: 0, slots: 4, queueLimit: 4 }, {
        identity: bIdentity,
      });
      const a = toHex(aIdentity.publicKey);
      await eventually(async () => {
        const peers = await net.ask<PeerInfo[]>({ type: "peers" });
        return peers.length === 2 && peers.every((p) => p.models.length > 0 && p.load) ||
          undefined;
      }, "both workers listed, with their load");

      const handle = await port.submit(job("s62-goodbye-in-flight"));
      assert.equal(holding.submits, 1, "the idle worker A took the job");
      const reading = new Response(
        handle.tokens.pipeThrough(
          new TransformStream<StreamedToken, string>({ transform: (t, c) => c.enqueue(t.text) }),
        ).pipeThrough(new TextEncoderStream()),
      ).text();
      // A stops cleanly with the job in flight.
      await worker.shutdown();
      assert.equal(await reading, "ab", "the job failed over to B and finished there");
      assert.equal(two.ran, 1);
      assert.deepEqual(busy.askedLast(), [a], "a goodbye does not excuse the job it dropped");

      const next = await port.submit(job("s62-goodbye-next"));
      await next.tokens.pipeTo(new WritableStream());
      assert.equal(two.ran, 2, "the next job went to B");

      const about = lines.filter((l) => l.includes(a.slice(0, 16)) && !l.startsWith("peer up"));
      assert.deepEqual(about, [`peer ${a.slice(0, 16)} mem-a stopped ("stopping")`]);
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      assert.deepEqual(peers.map((p) => p.key), [toHex(bIdentity.publicKey)], "A is dropped");
    } finally {
      await worker.shutdown().catch(() => {});
      await router.shutdown();
    }
  },
});

// ---- goodbye compat -------------------------------------------------------------------------------
// A stopping NetworkActor says `peer.goodbye` (reason `stopping`) to a peer that offered the
// goodbye protocol, before its connection closes; a peer older than goodbyes (it does not offer the
// protocol) is sent nothing it would refuse, and sees its connection close as before. A goodbye
// stuck behind a peer that reads nothing does not hold the stop past `GOODBYE_WAIT_MS`.

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

Deno.test("a stopping node says goodbye (stopping) to a peer that speaks it, before its connection closes", async () => {
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

Deno.test("a peer that does not offer the goodbye protocol is sent none, and sees its connection close as before", async () => {
  const { system, peer, problems } = await nodeAndPeer([PEER_PROTOCOL]);
  await system.shutdown();
  await peer.closed;
  assert.deepEqual(problems, [], "nothing it would refuse as an unknown type");
  assert.equal(peer.stats().refused, 0);
  assert.equal(peer.closeReason, null, "a plain close, as before goodbyes");
});

Deno.test("a goodbye the peer never reads holds the stop GOODBYE_WAIT_MS at most", async () => {
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

// ---- goodbye during stop --------------------------------------------------------------------------
// A stopping node said `peer.goodbye` only to the peers in its table when its stop began. A peer
// whose handshake finished while the node was stopping was closed without a word (the handshake's
// end found the node stopping), and one whose handshake had finished just before, while its
// `peer_up` still waited in the NetworkActor's mailbox, was not even closed: the stop discarded the
// message, and with it the only owner of the connection. Such a peer saw a plain `peer down` (or
// nothing, until its idle timeout), which it holds against us as a crash. Now every connection the
// NetworkActor opened is told goodbye (`stopping`) and closed by the stop, whether it reached the
// table or not, and a handshake that finishes once the stop began is answered with the same
// goodbye, then closed: it never enters the table.

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
    "a stopping node says goodbye to a peer whose handshake ends during the stop, and to one whose peer_up the stop discarded",
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
