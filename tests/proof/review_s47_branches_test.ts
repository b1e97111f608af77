/**
 * Review s47: every way the challenge game's steps can end has a consequence in the ledger
 * (docs/PROOF.md, "Finality and the ledger"). Each test asserts the ledger's outcome — status,
 * balance, stake — for a branch no other test pins down.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import type { ValidatorModelSource } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { validateReceipt } from "../../proof/validation.ts";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import {
  announceAssigned,
  f,
  falseProof,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";

const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;
const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("review s47: a receipt recorded uncredited (model_unavailable) earns nothing here even when its assignment comes later without the reason, also after a reopen", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 10_000);
    const r = receipt(1, 10, worker);
    const id = receiptId(r);
    await ledger.recordReceipt(r, { uncredited: "model_unavailable" });
    // The requester's announcement, later: the ledger's owner has the model by now.
    await ledger.recordReceipt(r, assigned(r));
    assert.equal(ledger.receipt(id)?.requester !== undefined, true, "the assignment attaches");
    assert.equal(ledger.receipt(id)?.credit, 0, "never checkable at intake, never drawn: unpaid");
    await ledger.close();
    ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.receipt(id)?.status, "final");
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 10_000, locked: 0 });
    await ledger.close();
  }));

Deno.test("review s47: at p = 1, a receipt the validator could not check at intake is not paid when its assignment comes after the validator got the model: it was never drawn", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const served = new Map<string, ServedProof>();
  // The model arrives here between the worker's announcement and the requester's.
  let holds = false;
  const models: ValidatorModelSource = {
    has: (cid) => holds && cid === f.honest.info.cid,
    get: (cid) => Promise.resolve(holds && cid === f.honest.info.cid ? f.honest : undefined),
  };
  const system = new ActorSystem({ name: "s47-branches" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models,
      source: { proof: (r: Receipt) => Promise.resolve(served.get(receiptId(r))) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    const reads = ledgerReads(() => validator, clock);
    const job = textJob(requester, "late-model", { model: f.honest.info.cid });
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    served.set(id, signServedProof(id, proved.proof, worker));
    const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
    const submit = (message: Omit<Extract<ValidatorMessage, { type: "receipt" }>, "type">) =>
      validator.ask<ReceiptHandled>({ type: "receipt", origin: "ab".repeat(32), ...message });
    const bare = await submit({ receipt: proved.receipt, job });
    assert.deepEqual([bare.recorded, bare.uncredited, bare.challenged], [
      true,
      "model_unavailable",
      false,
    ]);
    holds = true;
    await submit({ receipt: proved.receipt, job, assignment });
    await reads.closeWindow();
    assert.equal((await reads.record(id))?.status, "final");
    assert.equal((await reads.stats()).challenged, 0, "never drawn");
    assert.deepEqual(await reads.account(worker.publicKey), {
      balance: 0,
      stake: 10_000,
      locked: 0,
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s47: equivocation on a receipt left unpaid by the owner's undecided challenge cuts the stake once; a peer's confirmed proof after it slashes nothing more and earns its share, as where it came first (review s62); replayed from the log alike", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const accuser = Identity.generate();
    const options = { now: () => clock.t, checkpointEvery: 0 };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 10_000);
    await ledger.deposit(accuser.publicKey, 1_000);
    const first = receipt(2, 10, worker);
    const id = receiptId(first);
    await ledger.recordReceipt(first, assigned(first));
    await ledger.openChallenge(id);
    await ledger.leaveUnresolved(id, "validator_error");
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 10_000, locked: 0 });
    const second = resigned(first, { outputHash: "55".repeat(32) }, worker);
    await assert.rejects(() => ledger.recordReceipt(second, assigned(second)), {
      code: "equivocation",
    });
    const slashed = { balance: 0, stake: 10_000 - 10 * M, locked: 0 };
    assert.deepEqual(ledger.account(worker.publicKey), slashed);
    assert.equal(ledger.receipt(id)?.status, "fraud");
    // Before review s62 refused `not_pending`: its accuser earned nothing here and its share
    // where the proof came before the equivocation.
    const settled = await ledger.settleFraud({
      receiptId: id,
      fraudProofHash: "ab".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "mismatch",
    });
    assert.equal(settled.body.slashed, 0);
    const share = {
      balance: 10 * M * DEFAULT_ECONOMICS.validatorRewardShare,
      stake: 1_000,
      locked: 0,
    };
    assert.deepEqual(ledger.account(accuser.publicKey), share);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual(ledger.account(worker.publicKey), slashed);
    assert.deepEqual(ledger.account(accuser.publicKey), share);
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(worker.publicKey), slashed);
    await ledger.close();
  }));

Deno.test("review s47: an accusation after the receipt is final moves nothing: a true proof neither slashes nor claws back the paid cheat, a false one costs its accuser nothing, and no check is run", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const finder = Identity.generate();
  const liar = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "s47-after-final" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: { get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined) },
    });
    for (const key of [worker, finder, liar]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: 10_000 });
    }
    const reads = ledgerReads(() => validator, clock);
    const job = textJob(requester, "after-final");
    // A cheat: another model's tokens under the job's model.
    const cheat = await proveOn(job, worker, f.otherSeed);
    const id = receiptId(cheat.receipt);
    const found = await validateReceipt(
      {
        job,
        receipt: cheat.receipt,
        proof: cheat.proof,
        proofSig: signServedProof(id, cheat.proof, worker).sig,
        output: cheat.output,
      },
      f.honest,
      finder,
    );
    assert.ok(found.fraudProof, `the finder catches it: ${found.verdict.reason}`);
    const handled = await announceAssigned(validator, cheat.receipt, job, requester);
    assert.deepEqual([handled.recorded, handled.challenged], [true, false]);
    await reads.closeWindow();
    assert.equal((await reads.record(id))?.status, "final");
    const credit = cheat.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    const paid = { balance: credit, stake: 10_000, locked: 0 };
    assert.deepEqual(await reads.account(worker.publicKey), paid);
    const before = (await reads.stats()).fraudProofsChecked;
    for (const proof of [found.fraudProof, falseProof(cheat.receipt, liar)]) {
      const taken = await validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof,
        origin: "cd".repeat(32),
      });
      assert.deepEqual([taken.queued, taken.skipped], [false, "not_pending"]);
    }
    await reads.closeWindow();
    assert.equal((await reads.stats()).fraudProofsChecked, before, "no forward pass");
    assert.equal((await reads.record(id))?.status, "final");
    assert.deepEqual(await reads.account(worker.publicKey), paid);
    assert.deepEqual(await reads.account(finder.publicKey), {
      balance: 0,
      stake: 10_000,
      locked: 0,
    });
    assert.deepEqual(await reads.account(liar.publicKey), { balance: 0, stake: 10_000, locked: 0 });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s47: a receipt checkable at intake, drawn and found valid, is paid when its assignment comes after the model left the validator: the intake decides, not the late announcement", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const served = new Map<string, ServedProof>();
  // The model leaves the registry between the worker's announcement and the requester's.
  let holds = true;
  const models: ValidatorModelSource = {
    has: (cid) => holds && cid === f.honest.info.cid,
    get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
  };
  const system = new ActorSystem({ name: "s47-branches-left" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models,
      source: { proof: (r: Receipt) => Promise.resolve(served.get(receiptId(r))) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    const reads = ledgerReads(() => validator, clock);
    const job = textJob(requester, "model-left");
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    served.set(id, signServedProof(id, proved.proof, worker));
    const submit = (message: Omit<Extract<ValidatorMessage, { type: "receipt" }>, "type">) =>
      validator.ask<ReceiptHandled>({ type: "receipt", origin: "ab".repeat(32), ...message });
    const bare = await submit({ receipt: proved.receipt, job });
    assert.deepEqual([bare.recorded, bare.uncredited, bare.challenged], [true, undefined, true]);
    assert.equal((await bare.result!).verdict.outcome, "valid");
    holds = false;
    const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
    await submit({ receipt: proved.receipt, job, assignment });
    await reads.closeWindow();
    assert.equal((await reads.record(id))?.status, "final");
    const credit = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.deepEqual(await reads.account(worker.publicKey), {
      balance: credit,
      stake: 10_000,
      locked: 0,
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
