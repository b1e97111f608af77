/**
 * Review of the kept challenge endings (`actors/_challenge_endings.ts`): what the start takes
 * from disk, and what it tells. The verdict in a kept ending is signed, and checked by the
 * ledger; the transition beside it (`cleared`, `fault`, `unresolved`) and its reason are not. An
 * ending whose transition its own verdict does not call for (a `valid` verdict beside `fault`) is
 * not this validator's decision, and must not move the ledger: before, the start applied it, and
 * slashed the honest worker whose challenge had passed.
 *
 * And a kept ending applied at the start is the network's news as well as this ledger's: when the
 * write that failed was the verdict's own, the verdict had never been passed on, and the start
 * that recorded it did not pass it on either (the peers never heard of a worker that withheld).
 *
 * The failing write is `_ledger_write_fault.ts`'s fake.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ChallengeEndings } from "../../actors/_challenge_endings.ts";
import { endingWriteFails, STAKE } from "./_ledger_write_fault.ts";

Deno.test("a kept ending whose transition its own signed verdict does not call for (valid beside fault) is not applied at the start: the honest worker is not slashed", async () => {
  // The clearing's write fails (nothing written): the validator crashes with the ending kept.
  // Before the ledger is reopened, the kept file is written over: same signed verdict, `fault`.
  const out = await endingWriteFails("honest", "clearChallenge", "append", {
    async beforeReopen(ledgerDir, id) {
      const endings = ChallengeEndings.in(ledgerDir);
      const kept = (await endings.all()).get(id);
      assert.equal(kept?.end, "cleared", "no clearing was kept");
      await endings.keep(id, { ...kept!, end: "fault", reason: "proof_unavailable" });
    },
  });
  assert.notEqual(out.status, "fraud", "a valid verdict's receipt ended as a fault");
  assert.equal(out.worker.stake, STAKE, "the honest worker was slashed");
  assert.equal(out.stats.slashes, 0);
});

Deno.test("a fault whose verdict write failed is passed on to the network when the restart applies it", async () => {
  const out = await endingWriteFails("withheld", "recordVerdict", "append", { network: true });
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - out.slash);
  const published = out.told.filter((m) => m.type === "publish_verdict");
  assert.equal(
    published.length,
    1,
    "the verdict of the fault applied at the start was never passed on",
  );
  assert.ok(out.told.some((m) => m.type === "peer_convicted"), "the slashed worker was not named");
  assert.equal(out.stats.slashes, 1);
  assert.equal(out.stats.verdicts.invalid, 1, "the verdict recorded at the start was not counted");
});

Deno.test("a kept ending rewritten to `cleared` beside an inconclusive verdict of a challenge this validator drew (not a takeover) is not applied at the start: the undecided job is not paid", async () => {
  // The model is listed (the receipt is credited and drawn) but never loads: the challenge ends
  // `inconclusive / model_unavailable`, unresolved. Its verdict write fails: the validator
  // crashes with the ending kept. Before the ledger is reopened, the kept file is written over:
  // same signed verdict, `cleared` — the ending a takeover's inconclusive verdict would call for.
  const out = await endingWriteFails("honest", "recordVerdict", "append", {
    models: { has: () => Promise.resolve(true), get: () => Promise.resolve(undefined) },
    async beforeReopen(ledgerDir, id) {
      const endings = ChallengeEndings.in(ledgerDir);
      const kept = (await endings.all()).get(id);
      assert.equal(kept?.end, "unresolved", "no unresolved ending was kept");
      assert.equal(kept!.verdict.outcome, "inconclusive");
      await endings.keep(id, { ...kept!, end: "cleared" });
    },
  });
  assert.equal(out.worker.balance, 0, "the undecided job was paid");
  assert.notEqual(out.status, "final", "the undecided job was finalized");
  assert.equal(out.worker.stake, STAKE, "the worker was slashed");
  assert.equal(out.stats.unresolved, 1, "the challenge did not end unresolved");
});
