/**
 * Review s43: a node's process dies right after its ledger settled a peer's conviction (the
 * ledger's entry is durable, nothing after it ran). Before, the conviction was written to
 * `<ledger>/catch-up/` only after the settlement, so it was lost from the catch-up: ledger C,
 * which had the cheat's receipt and was away, connected only to the restarted node and paid the
 * cheat every other ledger slashed. The catch-up now writes the conviction's file before it is
 * settled, and reads back only what the ledger settled as fraud.
 *
 * The first life runs in a child process (this file, run with `first-life <dir>`), which exits
 * inside the settlement: a process's death, not a supervisor's restart. No clock is raced:
 * every ledger runs on a clock fixed at `START`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { START } from "../actors/_validator_fixture.ts";
import {
  cheatCase,
  fraudProofOf,
  restartMeetingAwayLedger,
  runFirstLife,
  spawnKnowingA,
  writeFirstLife,
} from "./_catch_up_second_life.ts";

/**
 * A's first life: it records the cheat's receipt, takes V's fraud proof from a peer, checks it
 * and settles it; the process exits as soon as the ledger's confirmed settlement is durable.
 */
async function firstLifeMain(dir: string): Promise<never> {
  const clock = { t: START };
  const c = await cheatCase();
  const fraudProof = await fraudProofOf(c);
  if (fraudProof === undefined) throw new Error("no fraud proof");
  await writeFirstLife(dir, c);
  const system = new ActorSystem({ name: "review-s43-first-life" });
  const nodeA = await spawnKnowingA(system, dir, c, clock);
  // The process dies once the ledger's conviction is on disk: nothing after it runs.
  const settle = Ledger.prototype.settleFraud;
  Ledger.prototype.settleFraud = async function (this: Ledger, settlement) {
    const entry = await settle.call(this, settlement);
    if (settlement.confirmed) Deno.exit(0);
    return entry;
  };
  await nodeA.validator.ask({ type: "fraud_proof", proof: fraudProof, origin: "ab".repeat(32) });
  await new Promise((resolve) => setTimeout(resolve, 60_000));
  Deno.exit(3); // never settled
}

if (Deno.args[0] === "first-life") await firstLifeMain(Deno.args[1]);

Deno.test("review s43: a conviction whose settlement the process died right after still reaches, after the restart, a ledger that connects only to this node: the cheat is slashed there", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s43-died" });
  try {
    const life = await runFirstLife(dir, [new URL(import.meta.url).pathname, "first-life", dir]);
    const id = receiptId(life.receipt);
    const clock = { t: START };
    const me = Identity.fromSecretKey(life.a);
    // A's ledger settled the conviction before the process died.
    const ledger = await Ledger.open(`${dir}/a`, me, { now: () => clock.t });
    assert.equal(ledger.receipt(id)?.status, "fraud", "A's first life did not settle the proof");
    await ledger.close();
    // C was away with the cheat's receipt; A's second life, on the same directory, joins it only.
    const kept = await restartMeetingAwayLedger(system, dir, life, clock);
    assert.deepEqual(
      kept,
      [id],
      "the restarted node's catch-up lost the conviction its ledger settled",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
