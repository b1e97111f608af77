/**
 * A pending receipt that is both a steering conviction's evidence (`settleSteering`) and the
 * subject of a peer's confirmed fraud proof is one caught cheat: slashed once, `m ×` its reward,
 * and its accuser paid the same share, whichever of the two the ledger heard first (review s79,
 * F3). Each order is read again after a reopen that rebuilds the index from the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { orders } from "./_ledger_order_run.ts";
import { recordSteeringEvidence, settleProof, steeringKeys } from "./_steering_evidence.ts";

/** The three settlements a run hears, in some order. */
type Event = "steer" | "proveCaught" | "proveOther" | "faultCaught";

interface Outcome {
  worker: Account;
  accusers: [Account, Account];
  statuses: (string | undefined)[];
}

/**
 * One ledger's end: a paid receipt, then `caught` and `other` pending, all three the steering
 * conviction's evidence, the worker staked `stake`; the conviction and a confirmed proof about
 * each pending receipt (two accusers) heard in `order`, the index rebuilt after each.
 */
function run(order: readonly Event[], stake: number): Promise<Outcome> {
  let out: Outcome | undefined;
  return withLedgerDir(async (dir, clock) => {
    const keys = steeringKeys();
    const { owner, worker, a1, a2 } = keys;
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, stake);
    const { paid, caught, other } = await recordSteeringEvidence(ledger, clock, keys, 7930);
    const ids = [paid, caught, other].map((r) => receiptId(r));
    const prove = (r: typeof caught, by: Identity, hash: string) =>
      settleProof(ledger, r, by, hash);
    const events: Record<Event, () => Promise<unknown>> = {
      steer: () => ledger.settleSteering(worker.publicKey, ids),
      proveCaught: () => prove(caught, a1, "ab"),
      proveOther: () => prove(other, a2, "cd"),
      // This ledger's own challenge of `caught` ends in a fault (its proof data withheld).
      faultCaught: async () => {
        await ledger.openChallenge(receiptId(caught));
        await ledger.settleFault(receiptId(caught), owner.publicKey, "proof_unavailable");
      },
    };
    for (const event of order) {
      await events[event]();
      await ledger.close();
      await Deno.remove(join(dir, INDEX_FILE));
      ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    }
    out = {
      worker: ledger.account(worker.publicKey),
      accusers: [ledger.account(a1.publicKey), ledger.account(a2.publicKey)],
      statuses: ids.map((id) => ledger.receipt(id)?.status),
    };
    await ledger.close();
  }).then(() => out!);
}

Deno.test("ledger steering then proof: a steering conviction and a confirmed proof slash the caught receipt once, in either order", async () => {
  const proofFirst = await run(["proveCaught", "steer"], 1_000);
  const steeringFirst = await run(["steer", "proveCaught"], 1_000);
  assert.equal(proofFirst.statuses[1], "fraud");
  assert.equal(steeringFirst.statuses[1], "fraud");
  // 1,000 less the paid receipt's clawback (1 + 20) and the two pending ones' slashes (80 +
  // 40), each taken once.
  assert.equal(proofFirst.worker.stake, 859);
  assert.deepEqual(steeringFirst.worker, proofFirst.worker);
  assert.deepEqual(steeringFirst.accusers, proofFirst.accusers);
  assert.equal(proofFirst.accusers[0].balance, 40);
});

Deno.test("ledger steering then proof: the conviction and two proofs end the same in every order, with a stake short of the cut too", async () => {
  for (const stake of [1_000, 120]) {
    const [first, ...rest] = orders<Event>(["steer", "proveCaught", "proveOther"]);
    const expected = await run(first, stake);
    for (const order of rest) {
      assert.deepEqual(await run(order, stake), expected, `stake ${stake}, ${order.join(", ")}`);
    }
  }
});

Deno.test("ledger steering then proof: a fault here on the conviction's pending evidence slashes it once too, and a peer's proof after both is paid the same", async () => {
  const faultFirst = await run(["faultCaught", "steer", "proveCaught"], 1_000);
  const steeringFirst = await run(["steer", "faultCaught", "proveCaught"], 1_000);
  assert.equal(faultFirst.worker.stake, 859);
  assert.deepEqual(steeringFirst.worker, faultFirst.worker);
  assert.deepEqual(steeringFirst.accusers, faultFirst.accusers);
  assert.equal(faultFirst.accusers[0].balance, 40);
});
