/**
 * A library program's view of a node's peers: `VeriflowNode.peers()` and `waitForPeer`
 * (`node/wait_for_peer.ts`), which waits for a peer that serves a model or a configured peer's
 * first connection, hearing the NetworkActor's peer changes rather than polling.
 */
import assert from "node:assert/strict";
import { formatPeerAddress } from "../../network/peer_address.ts";
import { toHex } from "../../protocols/hash.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { eventually } from "../_helpers/wait.ts";
import type { PeerInfo } from "../../network/network_actor.ts";
import { PeerChanges } from "../../network/peer_changes.ts";
import { NodeStoppedError, PEER_TABLE_RETRY_MS, waitForPeer } from "../../node/wait_for_peer.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

// A library program that starts nodes can read whom a node is connected to (`VeriflowNode.peers()`,
// the NetworkActor's table), e.g. to log it or to see that a configured peer has connected, without
// reading the node's log.

const NO_ROLES = { inference: false, prover: false, validator: false, storage: false };

Deno.test("VeriflowNode.peers() lists the node's connected peers, and a node with no peer none", async () => {
  const dirs = await Promise.all([0, 1, 2].map(() => Deno.makeTempDir({ prefix: "lib3-s61-" })));
  try {
    await using b = await startNode(parseNodeConfig({
      dataDir: dirs[0],
      http: { port: 0 },
      heartbeatMs: 0,
      roles: NO_ROLES,
      network: { listen: { hostname: "127.0.0.1", port: 0 } },
    }));
    await using a = await startNode(parseNodeConfig({
      dataDir: dirs[1],
      http: { port: 0 },
      heartbeatMs: 0,
      roles: NO_ROLES,
      network: { listening: false, peers: [formatPeerAddress((await b.peerAddress())!)] },
    }));
    const key = toHex(b.identity.publicKey);
    const peers = await eventually(async () => {
      const list = await a.peers();
      return list.some((p) => p.key === key) ? list : undefined;
    }, "A to connect to B");
    const entry = peers.find((p) => p.key === key)!;
    assert.equal(entry.outbound, true);
    assert.equal(entry.address, formatPeerAddress((await b.peerAddress())!));
    await using alone = await startNode(parseNodeConfig({
      dataDir: dirs[2],
      http: { port: 0 },
      heartbeatMs: 0,
      roles: NO_ROLES,
      network: { listening: false },
    }));
    assert.deepEqual(await alone.peers(), []);
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});

// A program that starts a node had no way to wait for a peer — one that serves a model, or a
// configured peer's first connection — but to poll `peers()` itself. The node now has
// `waitForPeer(predicate?, { signal })`: it resolves with the first peer in its table that matches
// (already connected, or connecting later), and rejects when the signal aborts or the node stops
// (`NodeStoppedError`, code `node_stopped`). The waits below run on a fake peer table and its
// changes (the wait hears the NetworkActor's peer changes instead of reading the table every
// 250 ms), or on real nodes' own events: no test sleeps.

/** A peer as the table shows it. */
function peer(key: string, models: string[] = []): PeerInfo {
  return {
    key,
    address: "mem",
    outbound: true,
    protocols: [],
    models,
    convicted: false,
    roles: [],
  };
}

/** A node's peer table and its changes, changed by the test. */
function fakeNode() {
  const table: PeerInfo[] = [];
  const timers = new FakeTimers();
  const changes = new PeerChanges();
  const stop = new AbortController();
  let looks = 0;
  const source = {
    peers: () => {
      looks++;
      return Promise.resolve([...table]);
    },
    changes,
    stopping: stop.signal,
    timers,
  };
  return { table, timers, changes, stop, source, looks: () => looks };
}

Deno.test("waitForPeer resolves at once with a peer already connected that matches", async () => {
  const node = fakeNode();
  node.table.push(peer("aa"), peer("bb", ["m"]));
  const found = await waitForPeer(node.source, (p) => p.models.includes("m"));
  assert.equal(found.key, "bb");
  assert.equal(node.timers.armed.size, 0, "nothing left to look again");
  assert.equal((await waitForPeer(node.source)).key, "aa", "no predicate: any peer");
});

Deno.test("waitForPeer resolves with a peer that connects (or lists the model) later", async () => {
  const node = fakeNode();
  node.table.push(peer("aa"));
  const waiting = waitForPeer(node.source, (p) => p.models.includes("m"));
  const settled = tracker(waiting);
  await turns(2);
  assert.equal(settled(), false, "no peer serves m yet");
  // A change that shows nothing new: still waiting.
  node.changes.emit({ type: "updated", peer: peer("aa") });
  await turns(2);
  assert.equal(settled(), false);
  // A peer's models are listed: the change shows it.
  node.table[0] = peer("aa", ["m"]);
  node.changes.emit({ type: "updated", peer: peer("aa", ["m"]) });
  assert.equal((await waiting).key, "aa");
  assert.equal(node.timers.armed.size, 0);
  assert.equal(node.looks(), 1, "the table was read once");
});

Deno.test("waitForPeer rejects with the signal's reason when it aborts, and stops looking", async () => {
  const node = fakeNode();
  const abort = new AbortController();
  const waiting = waitForPeer(node.source, () => true, { signal: abort.signal });
  await turns(2);
  const reason = new Error("gave up");
  abort.abort(reason);
  await assert.rejects(waiting, (error) => error === reason);
  assert.equal(node.timers.armed.size, 0, "no look left armed");
  // Already aborted: rejected before any look.
  const looks = node.looks();
  await assert.rejects(
    waitForPeer(node.source, () => true, { signal: AbortSignal.abort(reason) }),
    (error) => error === reason,
  );
  assert.equal(node.looks(), looks);
});

Deno.test("waitForPeer rejects with NodeStoppedError when the node stops, and stops looking", async () => {
  const node = fakeNode();
  const waiting = waitForPeer(node.source);
  await turns(2);
  node.stop.abort();
  await assert.rejects(waiting, (error) => {
    assert.ok(error instanceof NodeStoppedError, String(error));
    assert.equal(error.code, "node_stopped");
    return true;
  });
  assert.equal(node.timers.armed.size, 0);
  // Asked of a stopped node: rejected at once.
  await assert.rejects(waitForPeer(node.source), NodeStoppedError);
});

Deno.test("waitForPeer rejects with what the predicate throws", async () => {
  const node = fakeNode();
  node.table.push(peer("aa"));
  const bad = new TypeError("bad predicate");
  await assert.rejects(
    waitForPeer(node.source, () => {
      throw bad;
    }),
    (error) => error === bad,
  );
});

Deno.test("VeriflowNode.waitForPeer resolves when a peer connects later, and rejects on abort and on shutdown", async () => {
  const dirs = await Promise.all([0, 1].map(() => Deno.makeTempDir({ prefix: "s62-wait-" })));
  try {
    await using b = await startNode(parseNodeConfig({
      dataDir: dirs[0],
      http: { port: 0 },
      heartbeatMs: 0,
      roles: NO_ROLES,
      network: { listen: { hostname: "127.0.0.1", port: 0 } },
    }));
    const waiting = b.waitForPeer();
    const abort = new AbortController();
    const aborted = b.waitForPeer((p) => p.key === "nobody", { signal: abort.signal });
    const untilStop = b.waitForPeer((p) => p.key === "nobody");
    await using a = await startNode(parseNodeConfig({
      dataDir: dirs[1],
      http: { port: 0 },
      heartbeatMs: 0,
      roles: NO_ROLES,
      network: { listening: false, peers: [formatPeerAddress((await b.peerAddress())!)] },
    }));
    const found = await waiting;
    assert.equal(found.key, toHex(a.identity.publicKey));
    assert.equal(found.outbound, false, "A dialled B");
    // Each rejection is awaited before it happens: a rejection nobody handles fails the test.
    const abortedAsserted = assert.rejects(
      aborted,
      (error) => (error as Error).name === "AbortError",
    );
    abort.abort();
    await abortedAsserted;
    const stopAsserted = assert.rejects(untilStop, NodeStoppedError);
    await b.shutdown();
    await stopAsserted;
    await assert.rejects(b.waitForPeer(), NodeStoppedError, "a stopped node waits for nobody");
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});

// `waitForPeer` asked the NetworkActor for its whole peer table every 250 ms while it waited. It
// now reads the table once and hears the actor's peer changes (`network/peer_changes.ts`): a peer
// that connects, lists its models or says its hello later is found when the change is told, with no
// timer armed and nothing asked again. A read that fails is made again after `PEER_TABLE_RETRY_MS`
// (on fake timers here); the signal and the node's stop still end the wait, and the wait stops
// hearing changes then.

/** A node's peer table and its changes, driven by the test; its reads answer `answer()`. */
function fakeNodeWaitForPeer(answer?: () => Promise<PeerInfo[]>) {
  const table: PeerInfo[] = [];
  const timers = new FakeTimers();
  const changes = new PeerChanges();
  const stop = new AbortController();
  let reads = 0;
  const source = {
    peers: () => {
      reads++;
      return answer?.() ?? Promise.resolve([...table]);
    },
    changes,
    stopping: stop.signal,
    timers,
  };
  return { table, timers, changes, stop, source, reads: () => reads };
}

Deno.test("waitForPeer reads the table once, then resolves on the change that shows the peer, with no timer armed", async () => {
  const node = fakeNodeWaitForPeer();
  node.table.push(peer("aa"));
  const waiting = waitForPeer(node.source, (p) => p.models.includes("m"));
  const settled = tracker(waiting);
  await turns(3);
  assert.equal(settled(), false, "no peer serves m yet");
  assert.equal(node.reads(), 1, "one read");
  assert.equal(node.timers.armed.size, 0, "no look armed: nothing polls");
  // Another peer comes up, not serving m: still waiting, nothing asked.
  node.changes.emit({ type: "up", peer: peer("bb") });
  await turns(1);
  assert.equal(settled(), false);
  // aa's models are listed: the change shows it serving m.
  node.changes.emit({ type: "updated", peer: peer("aa", ["m"]) });
  assert.equal((await waiting).key, "aa");
  assert.equal(node.reads(), 1, "still one read");
  assert.equal(node.changes.size, 0, "the wait no longer hears changes");
});

Deno.test("waitForPeer hears a change told while its read is under way, and a peer going down is no match", async () => {
  const read = Promise.withResolvers<PeerInfo[]>();
  const node = fakeNodeWaitForPeer(() => read.promise);
  const waiting = waitForPeer(node.source, (p) => p.key === "cc");
  const settled = tracker(waiting);
  node.changes.emit({ type: "down", peer: peer("cc") });
  await turns(1);
  assert.equal(settled(), false, "a peer leaving is not found");
  node.changes.emit({ type: "up", peer: peer("cc") });
  assert.equal((await waiting).key, "cc", "found before the read answered");
  read.resolve([]);
});

Deno.test("a failed read of the table is made again after PEER_TABLE_RETRY_MS", async () => {
  let fail = true;
  const node = fakeNodeWaitForPeer(() =>
    fail ? Promise.reject(new Error("restarting")) : Promise.resolve([peer("aa")])
  );
  const waiting = waitForPeer(node.source);
  const settled = tracker(waiting);
  await turns(2);
  assert.equal(settled(), false);
  assert.deepEqual([...node.timers.armed.values()].map((t) => t.ms), [PEER_TABLE_RETRY_MS]);
  fail = false;
  node.timers.fireAll();
  assert.equal((await waiting).key, "aa");
  assert.equal(node.reads(), 2);
  assert.equal(node.timers.armed.size, 0);
});

Deno.test("waitForPeer stops hearing changes when its signal aborts, when the node stops, or when the predicate throws", async () => {
  const node = fakeNodeWaitForPeer();
  const abort = new AbortController();
  const aborted = waitForPeer(node.source, () => false, { signal: abort.signal });
  const stopped = waitForPeer(node.source, () => false);
  const bad = new TypeError("bad predicate");
  const throwing = waitForPeer(node.source, (p) => {
    if (p.key === "bad") throw bad;
    return false;
  });
  await turns(2);
  assert.equal(node.changes.size, 3);

  const reason = new Error("gave up");
  abort.abort(reason);
  await assert.rejects(aborted, (error) => error === reason);
  assert.equal(node.changes.size, 2);

  node.changes.emit({ type: "up", peer: peer("bad") });
  await assert.rejects(throwing, (error) => error === bad);
  assert.equal(node.changes.size, 1);

  node.stop.abort();
  await assert.rejects(stopped, NodeStoppedError);
  assert.equal(node.changes.size, 0, "nothing hears changes any more");
  assert.equal(node.timers.armed.size, 0);
  await assert.rejects(waitForPeer(node.source), NodeStoppedError);
  assert.equal(node.changes.size, 0, "a wait on a stopped node never subscribed");
});
