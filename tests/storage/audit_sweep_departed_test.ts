/**
 * A sweep of a holder that left is kept while its record of given chunks is (it may come back),
 * dropped with it once its departed-holder retention ran out, and no more than `MAX_SWEEPS` are
 * kept (review s75 verify, finding 5: 10,000 departed holders kept 10,000 sweeps, 63 MiB, for
 * good).
 */
import assert from "node:assert/strict";
import { AuditSweeps, MAX_SWEEPS } from "../../storage/audit_sweeps.ts";
import { DEPARTED_HOLDER_RETENTION_MS } from "../../storage/given_chunks.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";
import { Liar, sweepOwner } from "./_sweep_owner.ts";

/** Less than the retention: what an away holder keeps its record (and sweep) through. */
const HOUR = 60 * 60 * 1000;

Deno.test("failed holders that left: their sweeps wait while their records are kept, and go with them", async () => {
  const honest = Array.from({ length: 5 }, () => new MemoryPeer());
  const liars = Array.from({ length: 4 }, () => new Liar());
  const { store, round, sweeps, advance } = await sweepOwner([...honest, ...liars], 20, 40);
  // Round 1 samples every liar (each is a holder of some of every 8 files' chunks): all fail.
  await round();
  const queued = sweeps.pending().map((p) => p.id).sort();
  assert.deepEqual(queued, liars.map((l) => l.id).sort());
  store.setPeers(honest); // they all leave
  advance(HOUR);
  await round();
  assert.equal(sweeps.pending().length, liars.length, "dropped while their records are kept");
  advance(DEPARTED_HOLDER_RETENTION_MS);
  await round();
  assert.deepEqual(sweeps.pending(), []);
});

Deno.test("at most MAX_SWEEPS sweeps are kept", () => {
  const sweeps = new AuditSweeps();
  for (let i = 0; i < MAX_SWEEPS + 10; i++) {
    sweeps.start({ id: `holder${i}` } as StoragePeer, ["a", "b"]);
  }
  assert.equal(sweeps.pending().length, MAX_SWEEPS);
  // One ends: the next holder to fail is swept.
  sweeps.take("holder0", 2, () => true);
  sweeps.start({ id: "late" } as StoragePeer, ["c"]);
  assert.ok(sweeps.pending().some((p) => p.id === "late"));
});
