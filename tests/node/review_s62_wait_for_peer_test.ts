/**
 * Review s62 (library): a program that starts a node had no way to wait for a peer — one that
 * serves a model, or a configured peer's first connection — but to poll `peers()` itself. The
 * node now has `waitForPeer(predicate?, { signal })`: it resolves with the first peer in its table
 * that matches (already connected, or connecting later), and rejects when the signal aborts or the
 * node stops (`NodeStoppedError`, code `node_stopped`). The waits below run on a fake peer table
 * and its changes (since review s63 the wait hears the NetworkActor's peer changes instead of
 * reading the table every 250 ms), or on real nodes' own events: no test sleeps.
 */
import assert from "node:assert/strict";
import type { PeerInfo } from "../../network/network_actor.ts";
import { formatPeerAddress } from "../../network/peer_address.ts";
import { toHex } from "../../protocols/hash.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { PeerChanges } from "../../network/peer_changes.ts";
import { NodeStoppedError, waitForPeer } from "../../node/wait_for_peer.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

const NO_ROLES = { inference: false, prover: false, validator: false, storage: false };

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

Deno.test("review s62: waitForPeer resolves at once with a peer already connected that matches", async () => {
  const node = fakeNode();
  node.table.push(peer("aa"), peer("bb", ["m"]));
  const found = await waitForPeer(node.source, (p) => p.models.includes("m"));
  assert.equal(found.key, "bb");
  assert.equal(node.timers.armed.size, 0, "nothing left to look again");
  assert.equal((await waitForPeer(node.source)).key, "aa", "no predicate: any peer");
});

Deno.test("review s62: waitForPeer resolves with a peer that connects (or lists the model) later", async () => {
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

Deno.test("review s62: waitForPeer rejects with the signal's reason when it aborts, and stops looking", async () => {
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

Deno.test("review s62: waitForPeer rejects with NodeStoppedError when the node stops, and stops looking", async () => {
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

Deno.test("review s62: waitForPeer rejects with what the predicate throws", async () => {
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

Deno.test("review s62: VeriflowNode.waitForPeer resolves when a peer connects later, and rejects on abort and on shutdown", async () => {
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
