/**
 * Review s46: receipt variants across ledgers. A worker can sign several receipts for one job
 * (the same claim re-signed with other fingerprints, or another output): each ledger records the
 * first it sees and refuses the others (`job_already_recorded`, or `equivocation` when both reach
 * one ledger). A fraud proof confirmed against variant B used to be held, on the ledger that
 * recorded variant A, for a receipt that never comes there: that ledger paid the cheat. A
 * confirmed proof about a receipt its worker signed for a job recorded with another receipt of
 * that worker settles against the recorded one; a receipt another key signed never does.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import {
  assigned,
  receipt as fixtureReceipt,
  resigned,
  withLedgerDir,
} from "./_ledger_fixtures.ts";

const WORKER_STAKE = 100_000;
const ACCUSER_STAKE = 1_000;
const { defaultTokenPrice: PRICE, slashMultiplier: M, validatorRewardShare: SHARE } =
  DEFAULT_ECONOMICS;

/** A validator whose coin never challenges: only a peer's proof can convict here. */
async function setup() {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const accuser = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "receipt-variants" });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    models: HONEST_MODELS,
  });
  for (
    const [key, amount] of [[worker, WORKER_STAKE], [me, 1_000], [accuser, ACCUSER_STAKE]] as const
  ) {
    await validator.ask({ type: "deposit", key: key.publicKey, amount });
  }
  return {
    worker,
    requester,
    accuser,
    validator,
    ...ledgerReads(() => validator, clock),
    /**
     * `by` runs a job on another model than it names (a cheat) and signs two receipts for it:
     * `a`, and `b` claiming another output (what it sends another ledger). `proof` is a peer's
     * confirmed fraud proof against `b`, checked on the served proof data of the run.
     */
    async variants(by: Identity = worker, job = textJob(requester, `job-${crypto.randomUUID()}`)) {
      const proved = await proveOn(job, by, f.otherSeed);
      const a = proved.receipt;
      const b = resigned(a, { outputHash: "ee".repeat(32) }, by);
      const served = signServedProof(receiptId(b), proved.proof, by);
      const { fraudProof } = await validateReceipt(
        { job, receipt: b, proof: served.proof },
        f.honest,
        accuser,
      );
      assert.ok(fraudProof, "the variant is caught where it was sent");
      return { job, a, b, proof: fraudProof };
    },
    announce: (receipt: Receipt, job: ReturnType<typeof textJob>) =>
      announceAssigned(validator, receipt, job, requester, { issuedAt: START }),
    gossip: (proof: unknown) =>
      validator.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin: "cd".repeat(32) }),
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("review s46: a confirmed proof against the worker's variant B of a job settles the ledger that recorded its variant A: slashed, not paid, the accuser rewarded", async () => {
  const t = await setup();
  try {
    const { job, a, proof } = await t.variants();
    assert.ok((await t.announce(a, job)).recorded);
    const handled = await t.gossip(proof);
    handled.result?.catch(() => {});
    if (handled.queued) assert.equal((await handled.result!).confirmed, true);
    await t.closeWindow();
    const slash = a.tokenCount * PRICE * M;
    assert.equal((await t.record(receiptId(a)))?.status, "fraud");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - slash,
      locked: 0,
    });
    assert.equal((await t.account(t.accuser.publicKey)).balance, slash * SHARE);
  } finally {
    await t.close();
  }
});

Deno.test("review s46: a proof against variant B that arrives before variant A is recorded settles it once A comes in", async () => {
  const t = await setup();
  try {
    const { job, a, b, proof } = await t.variants();
    const handled = await t.gossip(proof);
    assert.equal(handled.awaitingReceipt, true);
    handled.result?.catch(() => {});
    assert.ok((await t.announce(a, job)).recorded);
    await eventually(async () => (await t.stats()).fraudProofsChecking === 0, "the check to end");
    await t.closeWindow();
    const slashed = { balance: 0, stake: WORKER_STAKE - a.tokenCount * PRICE * M, locked: 0 };
    assert.equal((await t.record(receiptId(a)))?.status, "fraud");
    assert.deepEqual(await t.account(t.worker.publicKey), slashed);
    // The variant's own receipt, arriving last, is refused: the worker is not slashed twice.
    assert.equal((await t.announce(b, job)).recorded, false);
    assert.deepEqual(await t.account(t.worker.publicKey), slashed);
  } finally {
    await t.close();
  }
});

Deno.test("review s46: a copier's variant of an honest worker's receipt convicts the copier, never the worker who did not sign it", async () => {
  const t = await setup();
  try {
    const copier = Identity.generate();
    const job = textJob(t.requester, "copied");
    const a = (await proveOn(job, t.worker)).receipt;
    // The copier signs a receipt for the same job under its own key, with a lie in it: caught.
    const { proof: copied } = await t.variants(copier, job);
    // Staked, as a receipt must be to be recorded anywhere (review s62 red team: a key with no
    // stake to lock its receipt is no proof's subject, else free keys buy checks for nothing).
    await t.validator.ask({ type: "deposit", key: copier.publicKey, amount: WORKER_STAKE });
    assert.ok((await t.announce(a, job)).recorded);
    const handled = await t.gossip(copied);
    // Checked against the copier's own receipt, never recorded here (the worker's holds the job),
    // and settled against it (review s62: before, it was not taken here at all).
    assert.equal(handled.queued, true, "checked against the copier's own receipt");
    assert.equal((await handled.result!).confirmed, true);
    await t.closeWindow();
    assert.equal((await t.record(receiptId(a)))?.status, "final");
    assert.equal((await t.account(t.worker.publicKey)).stake, WORKER_STAKE);
    assert.equal((await t.record(receiptId(copied.receipt)))?.status, "fraud", "the copier's");
    const copierLock = copied.receipt.tokenCount * PRICE * M;
    assert.equal((await t.account(copier.publicKey)).stake, WORKER_STAKE - copierLock);
  } finally {
    await t.close();
  }
});

const owner = Identity.generate();
const worker = Identity.generate();
const other = Identity.generate();
const accuser = Identity.generate();

/** A ledger with `a` (worker's, job 1) recorded and stakes deposited. */
async function ledgerWith(dir: string, clock: { t: number }) {
  const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
  await ledger.deposit(worker.publicKey, 1_000_000);
  await ledger.deposit(accuser.publicKey, 1_000_000);
  return ledger;
}

Deno.test("review s46: the ledger settles a proof about the worker's variant against its recorded receipt, once; the same proof again is refused; a restart replays the outcome", async () => {
  await withLedgerDir(async (dir, clock) => {
    let ledger = await ledgerWith(dir, clock);
    const a = fixtureReceipt(4_601, 40, worker);
    const b = resigned(a, { commitment: { ...a.commitment, root: "44".repeat(32) } }, worker);
    const rec = await ledger.recordReceipt(a, assigned(a));
    await assert.rejects(ledger.recordReceipt(b, assigned(b)), LedgerRejectedError);
    const settlement = {
      receiptId: receiptId(b),
      receipt: b,
      fraudProofHash: "f1".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    };
    await ledger.settleFraud(settlement);
    assert.equal(ledger.receipt(rec.receiptId)?.status, "fraud");
    await assert.rejects(ledger.settleFraud(settlement), (e: LedgerRejectedError) => {
      assert.ok(["already_settled", "not_pending"].includes(e.code), e.code);
      return true;
    });
    clock.t += ledger.economics.challengeWindowMs + 1;
    await ledger.finalizeDue();
    const slash = rec.locked;
    const expected = { balance: 0, stake: 1_000_000 - slash, locked: 0 };
    assert.deepEqual(ledger.account(worker.publicKey), expected);
    assert.equal(ledger.account(accuser.publicKey).balance, slash * SHARE);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, { now: () => clock.t, checkpointEvery: 0 });
    assert.deepEqual(ledger.account(worker.publicKey), expected);
    assert.equal(ledger.receipt(rec.receiptId)?.status, "fraud");
    await ledger.close();
  });
});

Deno.test("review s46: the ledger never charges a worker for a variant it did not sign, nor for another job; another key's receipt for the job convicts that key (review s62); a refuted proof about a variant stays refuted", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await ledgerWith(dir, clock);
    await ledger.deposit(other.publicKey, 1_000_000);
    const a = fixtureReceipt(4_602, 40, worker);
    const rec = await ledger.recordReceipt(a, assigned(a));
    const base = {
      fraudProofHash: "f2".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "output_mismatch",
    };
    // Another key's receipt for the job: not the worker's signature.
    const copied = resigned(a, { outputHash: "55".repeat(32) }, other);
    // The worker's own signature over a receipt that names it, forged: the signature fails.
    const forged = { ...resigned(a, { outputHash: "66".repeat(32) }, worker) };
    forged.sig = new Uint8Array(forged.sig).map((x, i) => i === 0 ? x ^ 1 : x);
    // The worker's receipt for another job (not recorded here).
    const elsewhere = fixtureReceipt(4_603, 40, worker);
    for (const receipt of [forged, elsewhere]) {
      await assert.rejects(
        ledger.settleFraud({ ...base, receiptId: receiptId(receipt), receipt }),
        (e: LedgerRejectedError) => e.code === "unknown_receipt",
      );
    }
    // Another key's receipt for the job settles against itself, never recorded here (review
    // s62: before, nowhere where the worker's came first): its signer is slashed what it would
    // have locked, the worker's receipt untouched.
    const onCopied = await ledger.settleFraud({
      ...base,
      fraudProofHash: "f3".repeat(32),
      receiptId: receiptId(copied),
      receipt: copied,
    });
    assert.equal(onCopied.body.receiptId, receiptId(copied));
    assert.equal(ledger.account(other.publicKey).stake, 1_000_000 - rec.locked);
    assert.equal(ledger.receipt(receiptId(copied))?.status, "fraud");
    assert.equal(ledger.receipt(rec.receiptId)?.status, "pending");
    // A receipt that is not the one the settlement names.
    const b = resigned(a, { outputHash: "77".repeat(32) }, worker);
    await assert.rejects(
      ledger.settleFraud({ ...base, receiptId: receiptId(copied), receipt: b }),
      (e: LedgerRejectedError) => e.code === "unknown_receipt",
    );
    // Refuted: the accuser pays, the recorded receipt stays pending and is paid.
    await ledger.settleFraud({ ...base, confirmed: false, receiptId: receiptId(b), receipt: b });
    assert.equal(ledger.receipt(rec.receiptId)?.status, "pending");
    clock.t += ledger.economics.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.account(worker.publicKey).balance, rec.credit);
    assert.equal(
      ledger.account(accuser.publicKey).stake,
      1_000_000 - ledger.economics.falseAccusationPenalty,
    );
    assert.equal(ledger.account(accuser.publicKey).balance, rec.locked * SHARE);
    assert.equal(ledger.account(worker.publicKey).stake, 1_000_000);
    await ledger.close();
  });
});
