/**
 * Holder repair's catch-up (`HolderRepair.catchUp`, `storage/holder_repair.ts`; review s79 F1):
 * the chunks of this node's files that the given-chunks log says a holder was never given are
 * checked and copied at the pace the holders take them, a bounded number at a time, with progress
 * reported on the repair's clock and the chunks still short counted. ReplicatedStores over stores
 * in one process; the clock is moved by hand.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { GivenChunks } from "../../storage/given_chunks.ts";
import {
  CATCH_UP_IN_FLIGHT,
  CATCH_UP_REPORT_MS,
  type CatchUpProgress,
  HolderRepair,
  type RepairClock,
} from "../../storage/holder_repair.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { removePeers, trackedPeer, type TrackedStoragePeer } from "./_tracked_peer.ts";

const CHUNKS = 300;
/** Clock time one copy takes, so a catch-up of {@link CHUNKS} spans several progress reports. */
const COPY_MS = 250;

/** A clock moved by hand; timers fire only in {@link step}. */
class HandClock implements RepairClock {
  at = 0;
  #next = 1;
  readonly timers = new Map<number, { due: number; fn: () => void }>();
  now = (): number => this.at;
  setTimeout = (fn: () => void, ms: number): number => {
    this.timers.set(this.#next, { due: this.at + ms, fn });
    return this.#next++;
  };
  clearTimeout = (id: number): void => {
    this.timers.delete(id);
  };
  /** Fire the earliest timer, moving time to it; false when none is armed. */
  step(): boolean {
    const first = [...this.timers].sort((a, b) => a[1].due - b[1].due)[0];
    if (first === undefined) return false;
    this.timers.delete(first[0]);
    this.at = Math.max(this.at, first[1].due);
    first[1].fn();
    return true;
  }
}

interface Holder {
  peer: TrackedStoragePeer;
  /** Copies and proofs being answered now, and the most at once. */
  inFlight: number;
  most: number;
  /** Refuses every call (down). */
  down: boolean;
}

/** `peer` seen through a link that counts its calls in flight and can be taken down. */
function linkTo(holder: Holder, clock: HandClock): StoragePeer {
  const { peer } = holder;
  const counted = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (holder.down) throw new Error("holder down");
    holder.inFlight++;
    holder.most = Math.max(holder.most, holder.inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, 0)); // the others get their turn
      return await fn();
    } finally {
      holder.inFlight--;
    }
  };
  return {
    id: peer.id,
    publicKey: peer.publicKey,
    putChunk: (cid, bytes, options) =>
      counted(async () => {
        clock.at += COPY_MS;
        await peer.putChunk(cid, bytes, options);
      }),
    getChunk: (cid, options) => peer.getChunk(cid, options),
    hasChunk: (cid) => peer.hasChunk(cid),
    proveChunks: (nonce, cids) => counted(() => peer.proveChunks(nonce, cids)),
  };
}

async function setup(maxCatchUpListed?: number, forgetful = false) {
  const self = await trackedPeer();
  const holders: Holder[] = [];
  for (let i = 0; i < 2; i++) {
    holders.push({ peer: await trackedPeer(), inFlight: 0, most: 0, down: false });
  }
  const clock = new HandClock();
  const cids: string[] = [];
  for (let i = 0; i < CHUNKS; i++) cids.push(await self.store.put(pseudoRandomBytes(512, 790 + i)));
  // The record of what each holder was given, kept by the store's repairs, as the actor keeps it.
  const given = await GivenChunks.open(join(self.store.dir, "given-chunks.log"), {
    durable: false,
  });
  const store = new ReplicatedStore([self, ...holders.map((h) => linkTo(h, clock))], {
    replicas: 3,
    given,
  });
  const reports: CatchUpProgress[] = [];
  const repair = new HolderRepair({
    selfId: self.id,
    held: async function* () {},
    read: (cid) => self.store.get(cid),
    clock,
    // Every block of this node's file, which no holder was given (a CLI put).
    catchUp: {
      blocks: async function* () {
        yield* cids;
      },
      // `forgetful`: a log that never takes what the holders were given.
      wasGiven: (peerId, cid) => !forgetful && given.has(peerId, cid),
    },
    onCatchUp: (progress) => reports.push(progress),
    maxCatchUpListed,
  });
  const cleanup = async () => {
    repair.stop();
    await repair.idle();
    await store.flush();
    await given.close();
    await removePeers([self, ...holders.map((h) => h.peer)]);
  };
  return { self, holders, clock, cids, store, repair, reports, cleanup };
}

/** How many of `cids` `holder` has. */
async function count(holder: Holder, cids: string[]): Promise<number> {
  let n = 0;
  for (const cid of cids) if (await holder.peer.store.has(cid)) n++;
  return n;
}

Deno.test("a catch-up copies every chunk its holders were never given, a bounded number at a time, reporting progress as it goes", async () => {
  const net = await setup();
  try {
    await net.repair.catchUp(net.store, null, "a test");
    for (const holder of net.holders) {
      assert.equal(await count(holder, net.cids), CHUNKS, "every chunk placed");
      assert.ok(holder.most <= CATCH_UP_IN_FLIGHT, `at most ${holder.most} calls at once`);
      assert.ok(holder.most > 1, `more than one chunk at a time (${holder.most})`);
    }
    const [first, ...rest] = net.reports;
    assert.deepEqual(
      { short: first.short, checked: first.checked, done: first.done },
      { short: CHUNKS, checked: 0, done: false },
      "the first report says how many are short",
    );
    const last = rest.at(-1)!;
    assert.deepEqual(
      { short: last.short, checked: last.checked, repaired: last.repaired, done: last.done },
      { short: CHUNKS, checked: CHUNKS, repaired: 2 * CHUNKS, done: true },
    );
    // CHUNKS × 2 copies × COPY_MS of clock: several reports between, none closer than the bound.
    const middle = rest.slice(0, -1);
    assert.ok(middle.length >= 2, `${middle.length} progress reports in between`);
    assert.ok(middle.every((p, i) => i === 0 || p.checked > middle[i - 1].checked));
    assert.equal(net.repair.short, 0, "nothing short once done");
    assert.ok(CATCH_UP_REPORT_MS > COPY_MS);
  } finally {
    await net.cleanup();
  }
});

Deno.test("a holder that is down does not hold a catch-up up: the other gets its copies, the down one's wait for a retry and count as short", async () => {
  const net = await setup();
  try {
    const [up, down] = net.holders;
    down.down = true;
    await net.repair.catchUp(net.store, null, "a test");
    assert.equal(await count(up, net.cids), CHUNKS, "the holder that answers has every chunk");
    assert.equal(await count(down, net.cids), 0);
    assert.equal(net.repair.short, CHUNKS, "the down holder's chunks count as short");
    assert.equal(net.reports.at(-1)?.failedChecks, CHUNKS);
    // It comes back; the retries (after their backoff on the repair's clock) place the rest.
    down.down = false;
    while (net.repair.short > 0 && net.clock.step()) await net.repair.idle();
    assert.equal(await count(down, net.cids), CHUNKS, "placed by the retries");
    assert.equal(net.repair.short, 0);
  } finally {
    await net.cleanup();
  }
});

Deno.test("a backlog past what a catch-up lists at once is counted, not listed, and placed by the scans after", async () => {
  const listedAtOnce = 70;
  const net = await setup(listedAtOnce);
  try {
    await net.repair.catchUp(net.store, null, "a test");
    for (const holder of net.holders) {
      assert.equal(await count(holder, net.cids), CHUNKS, "every chunk placed");
    }
    assert.equal(net.reports[0].short, CHUNKS, "counted in full from the start");
    assert.deepEqual(
      { checked: net.reports.at(-1)!.checked, done: net.reports.at(-1)!.done },
      { checked: CHUNKS, done: true },
    );
    assert.equal(net.repair.short, 0);
  } finally {
    await net.cleanup();
  }
});

Deno.test("a catch-up whose scans find no fewer chunks short than the last one ends instead of scanning forever", async () => {
  const net = await setup(70, true);
  try {
    // Each scan finds all of them short again (the log never takes the copies): one scan, its
    // repairs, one more scan that finds as many, and the catch-up ends.
    await net.repair.catchUp(net.store, null, "a test");
    const last = net.reports.at(-1)!;
    assert.deepEqual({ checked: last.checked, done: last.done }, { checked: 70, done: true });
    assert.equal(net.repair.passes, 1);
  } finally {
    await net.cleanup();
  }
});
