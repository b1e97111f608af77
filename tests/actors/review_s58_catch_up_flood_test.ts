/**
 * Review s58: the catch-up's verdicts (`actors/_catch_up.ts`) are bounded
 * (`MAX_CATCH_UP_VERDICTS`), and were dropped oldest first over every worker. A "proof withheld"
 * fault is cheap to make on purpose: a worker with a colluding requester sends receipts (they only
 * lock stake) and withholds their proof data from the validator. One worker's run of 64 such
 * faults pushed every other worker's fault out of the catch-up, and a ledger that connected
 * afterwards never heard of another withholder's fault and paid it, slashed here. Past the bound,
 * the verdict dropped is now one of the worker holding the most (its longest kept), as the
 * convictions have been since review s42 (`review_s42_catch_up_fairness_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { CatchUp, MAX_CATCH_UP_VERDICTS } from "../../actors/_catch_up.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { joinLedgerNodes, spawnValidatorAndLatePeer } from "../network/_ledger_node.ts";
import {
  announceAssigned,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";

const [cheat, flooder, validator, requester] = Array.from({ length: 4 }, Identity.generate);
const until = START + 1_000;

/** A "proof withheld" fault of `worker` about receipt `i` (its id only: no evidence). */
const fault = (worker: Identity, i: number): CatchUpItem => ({
  kind: "verdict",
  verdict: withheldVerdict(`receipt-${i}`, worker.publicKey, START, validator),
});
const keptIds = (kept: CatchUp) =>
  kept.current(START).flatMap((item) => item.kind === "verdict" ? [item.verdict.subjectId] : []);

Deno.test("review s58: one worker's many withheld faults do not push another worker's fault out of the catch-up", () => {
  const kept = new CatchUp();
  kept.add(fault(cheat, 0), until);
  for (let i = 1; i <= 2 * MAX_CATCH_UP_VERDICTS; i++) kept.add(fault(flooder, i), until);
  const ids = keptIds(kept);
  assert.equal(ids.length, MAX_CATCH_UP_VERDICTS);
  assert.ok(
    ids.includes("receipt-0"),
    "one worker's faults pushed another worker's fault out of the catch-up",
  );
  // The flooder gave up its own oldest: its newest are kept, in the order they were kept.
  assert.deepEqual(
    ids,
    [
      "receipt-0",
      ...Array.from(
        { length: MAX_CATCH_UP_VERDICTS - 1 },
        (_, n) => `receipt-${MAX_CATCH_UP_VERDICTS + 2 + n}`,
      ),
    ],
  );
});

Deno.test("review s58: a fault kept with its evidence is not pushed out by another worker's flood, and keeps its evidence", async () => {
  const kept = new CatchUp();
  const job = textJob(requester, "s58-flood");
  const { receipt } = await proveOn(job, cheat);
  const verdict = withheldVerdict(receiptId(receipt), cheat.publicKey, START, validator);
  await kept.add({ kind: "verdict", verdict, evidence: { receipt, job } }, until);
  for (let i = 1; i <= MAX_CATCH_UP_VERDICTS; i++) await kept.add(fault(flooder, i), until);
  const items = kept.current(START).flatMap((item) => item.kind === "verdict" ? [item] : []);
  const mine = items.find((item) => item.verdict.subjectId === receiptId(receipt));
  assert.ok(mine !== undefined, "the flooder's faults pushed the other worker's fault out");
  assert.deepEqual(mine.evidence, { receipt, job });
});

Deno.test("review s58: past the verdicts' bound, the worker holding the most gives up its oldest, whoever that is", () => {
  const kept = new CatchUp();
  const [a, b] = [Identity.generate(), Identity.generate()];
  // Half each, then one more of each: each time the one that just went past the other pays.
  const half = MAX_CATCH_UP_VERDICTS / 2;
  for (let i = 0; i < half; i++) kept.add(fault(a, i), until);
  for (let i = 0; i < half; i++) kept.add(fault(b, 100 + i), until);
  kept.add(fault(a, 1_000), until);
  kept.add(fault(b, 1_001), until);
  const ids = keptIds(kept);
  assert.equal(ids.length, MAX_CATCH_UP_VERDICTS);
  // a held one more first (its oldest, receipt-0, went); then b did (receipt-100 went).
  assert.ok(!ids.includes("receipt-0") && !ids.includes("receipt-100"));
  assert.ok(ids.includes("receipt-1") && ids.includes("receipt-101"));
  assert.ok(ids.includes("receipt-1000") && ids.includes("receipt-1001"));
});

/**
 * On the ledgers: a validator V (challenges every receipt; both workers withhold from it) decides
 * worker X's fault, then 64 of the flooder F's, with no peer connected. A late peer L, which
 * recorded X's receipt (credited), connects after: before, V's catch-up held only F's faults,
 * and L paid X, slashed in V.
 */
Deno.test("review s58: a late peer connecting after one worker's flood of withheld faults still hears of another worker's fault, and slashes it there, not pays it", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s58-catch-up-flood" });
  try {
    const stake = 1_000_000;
    const v = Identity.generate();
    const { nodeV, nodeL } = await spawnValidatorAndLatePeer({ dir, clock, system }, v, {
      staked: [cheat, flooder, v],
      stake,
    });
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, cheat);
    const id = receiptId(receipt);
    // L records X's receipt (through the requester): it would pay it at the window's end.
    assert.equal((await announceAssigned(nodeL.validator, receipt, job, requester)).recorded, true);
    // V decides X's fault, then F's flood of faults, alone: gossip reaches nobody.
    const decide = async (r: Receipt, j: TextJob) => {
      const handled = await announceAssigned(nodeV.validator, r, j, requester);
      assert.equal(handled.challenged, true);
      await handled.result;
    };
    await decide(receipt, job);
    for (let i = 0; i < MAX_CATCH_UP_VERDICTS; i++) {
      const floodJob = textJob(requester, `s58-flood-${i}`);
      await decide((await proveOn(floodJob, flooder)).receipt, floodJob);
    }
    const readsV = ledgerReads(() => nodeV.validator, clock);
    assert.equal((await readsV.record(id))?.status, "fraud", "V slashed X");

    await joinLedgerNodes(nodeL, nodeV);
    const readsL = ledgerReads(() => nodeL.validator, clock);
    await eventually(
      async () => (await readsL.stats()).peerVerdicts >= MAX_CATCH_UP_VERDICTS,
      "L to record V's catch-up",
    );
    await readsL.drained();
    const record = (await readsL.record(id))!;
    await readsL.closeWindow();
    assert.equal((await readsL.record(id))?.status, "fraud", "L paid X, slashed in V");
    assert.deepEqual(
      await readsL.account(cheat.publicKey),
      { balance: 0, stake: stake - record.locked, locked: 0 },
      "slashed in L as in V, not paid",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
