/**
 * Review s46: a conviction about a variant of a worker's receipt, across a restart. A confirmed
 * fraud proof about variant B of a receipt settles, on a ledger that recorded the worker's
 * variant A for the job, against A (`Ledger.fraudSubject`). The catch-up writes the conviction
 * ahead of its settlement and, at a start, keeps only what the ledger settled as fraud on that
 * accuser's proof; that look-up was keyed on the proof's own receipt id, B's, which this ledger
 * never records. So the conviction was dropped from the catch-up at the restart: a ledger that
 * recorded A too and connected later was never sent it, and paid the cheat this ledger slashed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { CatchUpItem, FraudProofHandled } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { Ledger } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import { resigned } from "../proof/_ledger_fixtures.ts";
import {
  announceAssigned,
  catchUpAtStart,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 100_000;
const { defaultTokenPrice: PRICE, slashMultiplier: M } = DEFAULT_ECONOMICS;

/** A cheat's variants A and B of one job's receipt, and a peer's confirmed proof against B. */
async function variants(worker: Identity, requester: Identity, accuser: Identity) {
  const job = textJob(requester, `job-${crypto.randomUUID()}`);
  const proved = await proveOn(job, worker, f.otherSeed);
  const a = proved.receipt;
  const b = resigned(a, { outputHash: "ee".repeat(32) }, worker);
  const served = signServedProof(receiptId(b), proved.proof, worker);
  const { fraudProof } = await validateReceipt(
    { job, receipt: b, proof: served.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof, "the variant is caught where it was sent");
  const { fraudProof: proofA } = await validateReceipt(
    { job, receipt: a, proof: signServedProof(receiptId(a), proved.proof, worker).proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(proofA, "the recorded variant is caught too");
  return { job, a, b, proof: fraudProof, proofA };
}

/** The receipt ids of the convictions among `items`. */
const convictions = (items: CatchUpItem[]) =>
  items.flatMap((i) => i.kind === "fraud_proof" ? [receiptId(i.proof.receipt)] : []);

Deno.test("review s46: a validator stopped after the ledger settled a variant's conviction, before the rest ran, still sends it by catch-up after the restart, and in a new process", async () => {
  const dir = await Deno.makeTempDir();
  const [me, worker, requester, accuser] = Array.from({ length: 4 }, Identity.generate);
  const ledgerDir = `${dir}/ledger`;
  const clock = { t: START };
  const system = new ActorSystem({ name: "review-s46-variant-restart" });
  let restarts = 0;
  system.events.subscribe((event) => {
    if (event.name === "node/validator" && event.type === "restarted") restarts++;
  });
  const apply = LedgerIndex.prototype.apply;
  const settle = Ledger.prototype.settleFraud;
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    for (const key of [worker, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    const { job, a, b, proof } = await variants(worker, requester, accuser);
    assert.ok((await announceAssigned(validator, a, job, requester)).recorded);
    // The conviction's settlement is durable in the ledger's log; the process stops right
    // after it (the index's write fails): nothing after the settlement runs in this life.
    Ledger.prototype.settleFraud = function (this: Ledger, settlement) {
      Ledger.prototype.settleFraud = settle;
      LedgerIndex.prototype.apply = function () {
        LedgerIndex.prototype.apply = apply;
        throw new Error("Input/output error (os error 5) (simulated)");
      };
      return settle.call(this, settlement);
    };
    const handled = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof,
      origin: "cd".repeat(32),
    });
    handled.result?.catch(() => {});
    assert.equal(handled.queued, true);
    await eventually(() => restarts > 0, "the validator to crash and be restarted");
    const ledger = ledgerReads(() => validator, clock);
    assert.equal((await ledger.record(receiptId(a)))?.status, "fraud");
    // A ledger that recorded A too, connecting now, is sent the conviction.
    const sent = await validator.ask<CatchUpItem[]>({ type: "catch_up" });
    assert.deepEqual(
      convictions(sent),
      [receiptId(b)],
      "the restarted validator's catch-up lost the variant's conviction its ledger settled",
    );
    // The same ledger directory read by a new process (another path: its catch-up is read
    // from disk, not shared with this process's).
    await system.shutdown();
    const copy = `${dir}/copy`;
    await cp(ledgerDir, copy, { recursive: true });
    const { items } = await catchUpAtStart(copy, me, START);
    assert.deepEqual(
      convictions(items),
      [receiptId(b)],
      "a new process's catch-up lost the variant's conviction its ledger settled",
    );
    // The ledger's outcome: A slashed (not paid) once the window closes.
    const reopened = await Ledger.open(copy, me, {
      now: () => START + DEFAULT_ECONOMICS.challengeWindowMs + 1,
    });
    await reopened.finalizeDue();
    assert.equal(reopened.receipt(receiptId(a))?.status, "fraud");
    assert.deepEqual(reopened.account(worker.publicKey), {
      balance: 0,
      stake: STAKE - a.tokenCount * PRICE * M,
      locked: 0,
    });
    await reopened.close();
  } finally {
    LedgerIndex.prototype.apply = apply;
    Ledger.prototype.settleFraud = settle;
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s46: one accuser's proof about variant B, while its proof about the recorded variant A is being checked, is a repeated accusation: not checked a second time", async () => {
  const dir = await Deno.makeTempDir();
  const [me, worker, requester, accuser] = Array.from({ length: 4 }, Identity.generate);
  const clock = { t: START };
  const system = new ActorSystem({ name: "review-s46-variant-repeat" });
  // Once armed, the model loads only once the test lets it: A's check stays in flight meanwhile.
  const gate = Promise.withResolvers<void>();
  let armed = false;
  let loads = 0;
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: {
        get: async (cid) => {
          if (armed) {
            loads++;
            await gate.promise;
          }
          return await HONEST_MODELS.get(cid);
        },
      },
    });
    for (const key of [worker, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    const { job, a, proof, proofA } = await variants(worker, requester, accuser);
    assert.ok((await announceAssigned(validator, a, job, requester)).recorded);
    armed = true;
    const gossip = (p: unknown) =>
      validator.ask<FraudProofHandled>({ type: "fraud_proof", proof: p, origin: "cd".repeat(32) });
    const first = await gossip(proofA);
    first.result?.catch(() => {});
    assert.equal(first.queued, true);
    const second = await gossip(proof);
    second.result?.catch(() => {});
    gate.resolve();
    await first.result;
    await eventually(
      async () => (await ledgerReads(() => validator, clock).stats()).fraudProofsChecking === 0,
      "the checks to end",
    );
    assert.equal(second.skipped, "repeated_accusation", "the same claim about B was checked too");
    assert.equal(loads, 1, "the model was run for the same accusation twice");
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
