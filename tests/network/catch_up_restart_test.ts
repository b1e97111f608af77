/**
 * A node's catch-up (`actors/_catch_up.ts`) survives a restart of its process: node A confirmed
 * a peer's conviction of a cheat (V's fraud proof, gossiped to it), then its process ended and a
 * new one started on the same data directory. Before, the convictions were in memory only: the
 * restarted A resent its own proofs (read back from `own-fraud-proofs/`) but not V's, and ledger
 * C, which had the cheat's receipt and was away, connected only to the restarted A and paid the
 * cheat every other ledger slashed.
 *
 * The first life runs in a child process (`_catch_up_first_life.ts`), so nothing of it stays in
 * this one's memory: a restart, not a supervisor's restart. No clock is raced: every ledger runs
 * on a clock fixed at `START`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { START } from "../actors/_validator_fixture.ts";
import { restartMeetingAwayLedger, runFirstLife } from "./_catch_up_second_life.ts";

const FIRST_LIFE = new URL("./_catch_up_first_life.ts", import.meta.url).pathname;

Deno.test("a peer's conviction this node confirmed reaches, after the node's process restarted, a ledger that connects only to it: the cheat is slashed there too", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "catch-up-restart" });
  try {
    const life = await runFirstLife(dir, [FIRST_LIFE, dir]);
    const id = receiptId(life.receipt);
    const clock = { t: START };
    // C was away with the cheat's receipt; A's second life, on the same directory, joins it only.
    const kept = await restartMeetingAwayLedger(system, dir, life, clock);
    assert.deepEqual(kept, [id], "the restarted node's catch-up lost the conviction it confirmed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
