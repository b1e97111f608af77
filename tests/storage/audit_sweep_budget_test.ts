/**
 * A round's sweeps share one budget, `SWEEP_CHUNKS_PER_ROUND_ALL`, however many holders failed
 * (review s75 verify, finding 4: 10 failed holders made one round read 2,620 reference copies,
 * 655 MiB at 256 KiB chunks; 100 would read about 6.4 GiB), and every sweep still gets its turn.
 */
import assert from "node:assert/strict";
import { AUDIT_CHUNKS_PER_HOLDER } from "../../storage/audit_round.ts";
import { SWEEP_CHUNKS_PER_ROUND_ALL } from "../../storage/audit_sweeps.ts";
import { MemoryPeer } from "./_memory_peer.ts";
import { Liar, sweepOwner } from "./_sweep_owner.ts";

const HONEST = 5;
const LIARS = 10;

Deno.test("ten failed holders: a round's reference reads stay within the sweeps' shared budget, and every liar's chunks are repaired", async () => {
  const honest = Array.from({ length: HONEST }, () => new MemoryPeer());
  const liars = Array.from({ length: LIARS }, () => new Liar());
  const { round, all, given } = await sweepOwner([...honest, ...liars], 40, 40);
  const recorded = liars.reduce((n, l) => n + given.chunksOf(l.id).length, 0);
  // A round's own sample reads at most this many (each holder asked a few): the rest is sweeps.
  const sampled = (HONEST + LIARS) * AUDIT_CHUNKS_PER_HOLDER;
  // Short of 3 real copies and repairable: a chunk all of whose copies went to liars is lost (with
  // 10 liars of 15 peers, about (10/15)^3 of them), sweeps or not.
  const short = () =>
    all.filter((k) => {
      const copies = honest.filter((p) => p.chunks.has(k)).length;
      return copies > 0 && copies < 3;
    }).length;
  const reads: number[] = [];
  // Twice the rounds the shared budget takes over every liar's record: what repairs gave a liar
  // before it was demoted is swept again when it fails again.
  const rounds = 2 * Math.ceil(recorded / SWEEP_CHUNKS_PER_ROUND_ALL) + 2;
  for (let i = 0; i < rounds && short() > 0; i++) reads.push((await round()).reads);
  const worst = Math.max(...reads);
  assert.ok(
    worst <= SWEEP_CHUNKS_PER_ROUND_ALL + sampled,
    `one round read ${worst} reference copies (rounds: ${reads.join(",")})`,
  );
  assert.equal(short(), 0, `still short after ${reads.length} rounds (${reads.join(",")})`);
});
