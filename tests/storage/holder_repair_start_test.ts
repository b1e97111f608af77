/**
 * `HolderRepair.started` (review s82 repair, F1): a fresh store judges departures against the peer
 * set last judged (`judged`, what `onJudged` told before a restart) once `START_GRACE_MS` passed,
 * against the set then: a peer back within the grace is no departure, one still gone is. And what
 * `onJudged` is told keeps a departed peer until its pass is done.
 */
import assert from "node:assert/strict";
import {
  HANDOFF_WAIT_MS,
  HolderRepair,
  type HolderRepairPass,
  type RepairClock,
  START_GRACE_MS,
} from "../../storage/holder_repair.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { removePeers, trackedPeer } from "./_tracked_peer.ts";

/** Timers moved by hand. */
class ManualClock implements RepairClock {
  #now = 0;
  #next = 1;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  now = (): number => this.#now;
  setTimeout = (fn: () => void, ms: number): number => {
    const id = this.#next++;
    this.timers.set(id, { at: this.#now + ms, fn });
    return id;
  };
  clearTimeout = (id: number): void => void this.timers.delete(id);
  /** Move to `ms` from now, firing the timers due by then. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (const [id, timer] of [...this.timers].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at > until) continue;
      this.timers.delete(id);
      this.#now = timer.at;
      timer.fn();
    }
    this.#now = until;
  }
}

/** Five peers, 40 chunks at r = 3; node 0's repair with a clock moved by hand. */
async function setup(judged: readonly string[] | ((ids: string[]) => string[])) {
  const base = await Promise.all(Array.from({ length: 5 }, () => trackedPeer()));
  const writer = new ReplicatedStore(base, { replicas: 3, writeQuorum: 3 });
  for (let i = 0; i < 40; i++) await writer.put(pseudoRandomBytes(512, 900 + i));
  await writer.flush();
  const ids = base.map((p) => p.id);
  const clock = new ManualClock();
  const passes: HolderRepairPass[] = [];
  const told: (readonly string[])[] = [];
  const repair = new HolderRepair({
    selfId: ids[0],
    held: () => base[0].store.list(),
    read: (cid) => base[0].store.get(cid),
    clock,
    judged: typeof judged === "function" ? judged(ids) : judged,
    onPass: (pass) => passes.push(pass),
    onJudged: (set) => told.push(set),
  });
  return { base, ids, clock, passes, told, repair };
}

Deno.test("a start judges departures against the set last judged, after the grace", async () => {
  const { base, ids, clock, passes, told, repair } = await setup((ids) => ids);
  try {
    // Node 0 starts; only node 1 is back yet.
    const store = new ReplicatedStore([base[0], base[1]], { replicas: 3 });
    repair.started(store);
    await repair.idle();
    assert.equal(passes.length, 0, "nothing judged within the grace");
    assert.equal(told.length, 0, "the set last judged is kept meanwhile (unchanged: not told)");
    // Nodes 2 and 3 come back within the grace; node 4 does not.
    const before = store.peers;
    store.setPeers([base[0], base[1], base[2], base[3]]);
    repair.peersChanged(store, before);
    clock.advance(START_GRACE_MS - 1);
    await repair.idle();
    assert.equal(passes.length, 0);
    clock.advance(1);
    await repair.idle();
    assert.equal(passes.length, 1);
    assert.deepEqual(passes[0].departed, [ids[4]], "node 4 left; 1, 2 and 3 are back");
    assert(passes[0].repaired > 0, "node 0 gave copies of what node 4 held");
    // Until its hand-off checks are done, node 4's departure is still to judge at a start.
    assert((told.at(-1) ?? ids).includes(ids[4]));
    clock.advance(HANDOFF_WAIT_MS);
    await repair.idle();
    // Repaired: what a later start judges against is the set now, without node 4.
    assert.deepEqual(told.at(-1), ids.slice(0, 4).sort());
    await store.flush();
  } finally {
    repair.stop();
    await removePeers(base);
  }
});

Deno.test("a start with every peer back within the grace costs no pass", async () => {
  const { base, ids, clock, passes, told, repair } = await setup((ids) => ids);
  try {
    const store = new ReplicatedStore(base, { replicas: 3 });
    repair.started(store);
    clock.advance(START_GRACE_MS);
    await repair.idle();
    assert.equal(passes.length, 0);
    assert.deepEqual(told.at(-1) ?? [...ids].sort(), [...ids].sort());
  } finally {
    repair.stop();
    await removePeers(base);
  }
});

Deno.test("a stop before the grace ends keeps the departures to judge at the next start", async () => {
  const { base, ids, clock, passes, told, repair } = await setup((ids) => ids);
  try {
    repair.started(new ReplicatedStore([base[0], base[1]], { replicas: 3 }));
    repair.stop();
    clock.advance(START_GRACE_MS);
    await repair.idle();
    assert.equal(passes.length, 0);
    assert.equal(clock.timers.size, 0);
    assert.deepEqual(told.at(-1) ?? [...ids].sort(), [...ids].sort());
  } finally {
    await removePeers(base);
  }
});
