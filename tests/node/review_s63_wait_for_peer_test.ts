/**
 * Review s63 (library): `waitForPeer` asked the NetworkActor for its whole peer table every 250 ms
 * while it waited. It now reads the table once and hears the actor's peer changes
 * (`network/peer_changes.ts`): a peer that connects, lists its models or says its hello later is
 * found when the change is told, with no timer armed and nothing asked again. A read that fails is
 * made again after `PEER_TABLE_RETRY_MS` (on fake timers here); the signal and the node's stop
 * still end the wait, and the wait stops hearing changes then.
 */
import assert from "node:assert/strict";
import type { PeerInfo } from "../../network/network_actor.ts";
import { PeerChanges } from "../../network/peer_changes.ts";
import { NodeStoppedError, PEER_TABLE_RETRY_MS, waitForPeer } from "../../node/wait_for_peer.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

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

/** A node's peer table and its changes, driven by the test; its reads answer `answer()`. */
function fakeNode(answer?: () => Promise<PeerInfo[]>) {
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

Deno.test("review s63: waitForPeer reads the table once, then resolves on the change that shows the peer, with no timer armed", async () => {
  const node = fakeNode();
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

Deno.test("review s63: waitForPeer hears a change told while its read is under way, and a peer going down is no match", async () => {
  const read = Promise.withResolvers<PeerInfo[]>();
  const node = fakeNode(() => read.promise);
  const waiting = waitForPeer(node.source, (p) => p.key === "cc");
  const settled = tracker(waiting);
  node.changes.emit({ type: "down", peer: peer("cc") });
  await turns(1);
  assert.equal(settled(), false, "a peer leaving is not found");
  node.changes.emit({ type: "up", peer: peer("cc") });
  assert.equal((await waiting).key, "cc", "found before the read answered");
  read.resolve([]);
});

Deno.test("review s63: a failed read of the table is made again after PEER_TABLE_RETRY_MS", async () => {
  let fail = true;
  const node = fakeNode(() =>
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

Deno.test("review s63: waitForPeer stops hearing changes when its signal aborts, when the node stops, or when the predicate throws", async () => {
  const node = fakeNode();
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
