/**
 * The placement rule of holder repair on its own ({@link planRepair}): which node repairs which
 * chunk after the peer set changed, judged under the sets the chunks were written under. The
 * StorageActors' side is tests/storage/holder_repair_test.ts.
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { chunksToRepair, HolderRepair, planRepair } from "../../storage/holder_repair.ts";
import type { ReplicatedStore } from "../../storage/replicated_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";

const R = 3;

/** Where each chunk is after a write under `written` with r copies: its first r holders. */
function placeAll(cids: string[], written: { id: string }[]): Map<string, Set<string>> {
  return new Map(cids.map((c) => [c, new Set(rankPeers(c, written).slice(0, R).map((p) => p.id))]));
}

/**
 * Chunks a pass asks about beyond {@link chunksToRepair} since stop 45 (a holder may have missed
 * the write): the departed peer ranked just past the holders (it may hold the copy a holder
 * missed), or `self` survives below a better-ranked holder (which it asks first).
 */
function missedWriteGuard(
  cid: string,
  before: { id: string }[],
  after: { id: string }[],
  self: string,
): boolean {
  const alive = new Set(after.map((p) => p.id));
  const ranked = rankPeers(cid, before);
  const survivors = ranked.slice(0, R).filter((p) => alive.has(p.id));
  const lost = survivors.length < R || (ranked.length > R && !alive.has(ranked[R].id));
  return lost && (survivors.length === 0 || survivors.some((p) => p.id === self));
}

const peers = ["p1", "p2", "p3", "p4", "p5", "p6"].map((id) => ({ id }));
const sample = Array.from({ length: 400 }, (_, i) => cidOf(new Uint8Array([i & 0xff, i >> 8, 9])));

Deno.test("planRepair: after a join and then a departure, the repairers it picks hold their chunks and bring every chunk to its r holders", () => {
  const written = peers.slice(0, 5); // p6 joins after the write
  const before = peers;
  for (const departed of written) {
    const after = before.filter((p) => p !== departed);
    const where = placeAll(sample, written);
    const original = placeAll(sample, written);
    let oldRuleShort = 0;
    for (const cid of sample) {
      // The rule judged only under the set before the departure picks nobody who holds it.
      const old = after.filter((p) =>
        original.get(cid)!.has(p.id) && chunksToRepair([cid], before, after, p.id, R).length > 0
      );
      const lost = original.get(cid)!.has(departed.id);
      if (lost && old.length === 0) oldRuleShort++;
    }
    assert.ok(oldRuleShort > 0, "the scenario has chunks the old rule leaves short");
    for (const self of after) {
      const held = sample.filter((c) => original.get(c)!.has(self.id));
      // Each node plans from what it holds; it took them all in under `written`.
      const views = [{ peers: before }, { peers: written, chunks: new Set(held) }];
      const plan = planRepair(held, views, after, self.id, R);
      for (const [cid, only] of plan) {
        const holders = rankPeers(cid, after).slice(0, R);
        for (const h of holders) if (!only || only.has(h.id)) where.get(cid)!.add(h.id);
      }
    }
    for (const cid of sample) {
      for (const h of rankPeers(cid, after).slice(0, R)) {
        assert.ok(where.get(cid)!.has(h.id), `${cid} on ${h.id} after ${departed.id} left`);
      }
    }
  }
});

Deno.test("planRepair: a departure with no join since the write plans exactly what chunksToRepair did, every holder checked (no extra messages)", () => {
  for (const departed of peers) {
    const after = peers.filter((p) => p !== departed);
    for (const self of after) {
      const plan = planRepair(sample, [{ peers }], after, self.id, R);
      assert.deepEqual([...plan.keys()], chunksToRepair(sample, peers, after, self.id, R));
      assert.ok([...plan.values()].every((only) => only === null));
    }
  }
  // Nobody left and nobody came: nothing.
  assert.equal(planRepair(sample, [{ peers }], peers, "p1", R).size, 0);
  // A join alone: each chunk whose holders changed goes to its newcomer from its best holder,
  // who asks the newcomer only.
  const grown = [...peers, { id: "p7" }];
  let total = 0;
  for (const self of peers) {
    for (const [cid, only] of planRepair(sample, [{ peers }], grown, self.id, R)) {
      total++;
      assert.deepEqual([...only!], ["p7"]);
      assert.equal(rankPeers(cid, peers).slice(0, R)[0].id, self.id);
    }
  }
  const moved = sample.filter((c) => rankPeers(c, grown).slice(0, R).some((p) => p.id === "p7"));
  assert.equal(total, moved.length, "one repairer per chunk the newcomer now holds a place for");
});

Deno.test("HolderRepair judges a chunk under the peer set it came in under only for that chunk, and forgets it after the pass", async () => {
  const before = peers.slice(0, 5);
  const after = before.filter((p) => p.id !== "p4");
  const asked: { cids: string[]; only: (ReadonlySet<string> | undefined)[] }[] = [];
  const store = (current: { id: string }[]) =>
    ({
      peers: current,
      replicas: R,
      repair: (
        cids: Iterable<string>,
        options: { only?: (cid: string) => ReadonlySet<string> | undefined },
      ) => {
        const list = [...cids];
        asked.push({ cids: list, only: list.map((c) => options.only?.(c)) });
        return Promise.resolve({ checked: list.length, repaired: 0, lost: [], failedChecks: 0 });
      },
    }) as unknown as ReplicatedStore;
  const repair = new HolderRepair({
    selfId: "p2",
    held: async function* () {
      yield* sample;
    },
  });
  // One chunk came in while this node knew only p1 (its peers reconnecting one by one).
  const partial = [{ id: "p2" }, { id: "p1" }];
  const late = sample.find((c) =>
    rankPeers(c, partial)[0].id === "p2" &&
    !chunksToRepair([c], before, after, "p2", R).length
  )!;
  repair.noteWrite(partial, late);
  await repair.peersChanged(store(after), before);
  const usual = chunksToRepair(sample, before, after, "p2", R);
  assert.deepEqual(
    asked[0].cids.filter((c) => c !== late && usual.includes(c)),
    usual,
    "the others as before",
  );
  for (const c of asked[0].cids) {
    if (c !== late && !usual.includes(c)) assert.ok(missedWriteGuard(c, before, after, "p2"));
  }
  assert.ok(asked[0].cids.includes(late), "the late chunk is judged under its set too");
  // The next departure judges every chunk under the set before it alone.
  const fewer = after.filter((p) => p.id !== "p5");
  await repair.peersChanged(store(fewer), after);
  assert.deepEqual(
    asked[1].cids,
    sample.filter((c) =>
      chunksToRepair([c], after, fewer, "p2", R).length > 0 ||
      missedWriteGuard(c, after, fewer, "p2")
    ),
  );
});
