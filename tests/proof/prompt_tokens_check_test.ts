/**
 * The validator's check of a receipt's signed prompt-token count (batching review F2 of stop 77):
 * the count is paid, so a worker that inflates it is refuted like any other lie about the work —
 * a fraud proof any checker confirms by re-tokenizing the prompt, and the same slash as any
 * refuted receipt. A receipt signed before the field (none) validates and earns its output alone,
 * as before; a node from before the field sees a bad signature on one that carries it.
 *
 * @module
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { fraudProofHash, signFraudProof } from "../../protocols/fraud_proof.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import { loadTinyModel, params } from "../server/_fixtures.ts";

/** Credits per output token in the test ledger. */
const PRICE = 2;
/** What the inflating worker adds to the prompt's true count (a 5-token prompt billed as 500). */
const INFLATION = 495;
const STAKE = 100_000;
const requester = Identity.generate();

async function job(nonce: string): Promise<TextJob> {
  const model = await loadTinyModel();
  return {
    kind: "text",
    model: model.info.cid,
    prompt: "hello",
    params: params({ maxTokens: 4, temperature: 0.7, seed: 11 }),
    nonce,
    requester: toHex(requester.publicKey),
  };
}

/** `j` run by the model and proved by `worker`, signing `promptTokens` (none: an older receipt). */
async function proved(j: TextJob, worker: Identity, promptTokens?: number) {
  const model = await loadTinyModel();
  const ids = model.tokenizer.encode(j.prompt);
  return await proveJob(j, model.generate(ids, j.params), worker, { promptTokens });
}

/** A ledger paying {@link PRICE} per output token, with `worker` and `accuser` staked. */
async function openLedger(dir: string, clock: { t: number }, keys: Identity[]) {
  const ledger = await Ledger.open(dir, Identity.generate(), {
    now: () => clock.t,
    tokenPrice: () => PRICE,
  });
  for (const k of keys) await ledger.deposit(k.publicKey, STAKE);
  return ledger;
}

function assignmentOf(j: TextJob, worker: Identity) {
  return signAssignment({ job: j, worker: worker.publicKey, issuedAt: 0 }, requester);
}

Deno.test("F2: a receipt whose signed prompt tokens are inflated is fraud (prompt_tokens) that any checker confirms, and the ledger slashes the worker the lock of what it claimed, as for any refuted receipt; the same accusation against the honest count is refuted", async () => {
  const model = await loadTinyModel();
  const worker = Identity.generate();
  const validator = Identity.generate();
  const j = await job("inflated");
  const truth = model.tokenizer.encode(j.prompt).length;
  const cheat = await proved(j, worker, truth + INFLATION);
  assertEquals(cheat.receipt.promptTokens, truth + INFLATION);
  // The requester's own check needs no model: it cannot see the lie.
  assert(verifyReceipt(cheat.receipt, { job: j, output: cheat.output }).ok);

  const caught = await validateReceipt(
    { job: j, receipt: cheat.receipt, proof: cheat.proof },
    model,
    validator,
  );
  assertEquals(caught.verdict.outcome, "fraud");
  assertEquals(caught.verdict.reason, "prompt_tokens");
  assertEquals(caught.verdict.details?.promptTokensSigned, truth + INFLATION);
  assertEquals(caught.verdict.details?.promptTokensCounted, truth);
  assert(caught.fraudProof !== undefined, "no fraud proof");
  const checked = await checkFraudProof(caught.fraudProof, model);
  assertEquals(checked.confirmed, true, checked.reason);

  // The honest count validates, and the same accusation aimed at it does not hold up.
  const honest = await proved(j, worker, truth);
  const ok = await validateReceipt(
    { job: j, receipt: honest.receipt, proof: honest.proof },
    model,
    validator,
  );
  assertEquals(ok.verdict.outcome, "valid", ok.verdict.reason);
  const { sig: _s, validator: _v, receipt: _r, ...accusation } = caught.fraudProof;
  const aimed = signFraudProof({ ...accusation, receipt: honest.receipt }, validator);
  const refuted = await checkFraudProof(aimed, model);
  assertEquals(refuted.confirmed, false);
  assertEquals(refuted.reason, "not_reproduced");

  // The ledger: the cheat's lock is what it claimed (prompt included) × slashMultiplier, and
  // the confirmed proof takes it all: no pay, the stake cut, the validator rewarded its share.
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const ledger = await openLedger(dir, clock, [worker, validator]);
  try {
    await ledger.recordReceipt(cheat.receipt, { assignment: assignmentOf(j, worker) });
    const claimed = cheat.receipt.tokenCount * PRICE +
      (truth + INFLATION) * PRICE * DEFAULT_ECONOMICS.promptTokenShare;
    const lock = claimed * DEFAULT_ECONOMICS.slashMultiplier;
    assertEquals(ledger.receipt(receiptId(cheat.receipt))!.locked, lock);
    await ledger.settleFraud({
      receiptId: receiptId(cheat.receipt),
      receipt: cheat.receipt,
      fraudProofHash: fraudProofHash(caught.fraudProof),
      validator: validator.publicKey,
      confirmed: checked.confirmed,
      reason: checked.reason,
    });
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assertEquals(ledger.receipt(receiptId(cheat.receipt))!.status, "fraud");
    assertEquals(ledger.account(worker.publicKey), { balance: 0, stake: STAKE - lock, locked: 0 });
    assertEquals(
      ledger.account(validator.publicKey).balance,
      lock * DEFAULT_ECONOMICS.validatorRewardShare,
    );
  } finally {
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("F2: a receipt that signs no prompt count (as before the field) validates and earns its output tokens alone, exactly as before; the same work signing its count earns the prompt beside; a node from before the field sees that one's signature fail", async () => {
  const model = await loadTinyModel();
  const validator = Identity.generate();
  const [oldWorker, newWorker] = [Identity.generate(), Identity.generate()];
  const [oldJob, newJob] = [await job("no-count"), await job("counted")];
  const truth = model.tokenizer.encode(oldJob.prompt).length;
  const old = await proved(oldJob, oldWorker);
  const counted = await proved(newJob, newWorker, truth);
  assertEquals(old.receipt.promptTokens, undefined);
  assertEquals("promptTokens" in old.receipt, false, "an older receipt's bytes changed");
  assertEquals(counted.receipt.promptTokens, truth);
  for (const [r, j] of [[old, oldJob], [counted, newJob]] as const) {
    const { verdict } = await validateReceipt(
      { job: j, receipt: r.receipt, proof: r.proof },
      model,
      validator,
    );
    assertEquals(verdict.outcome, "valid", verdict.reason);
  }

  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const ledger = await openLedger(dir, clock, [oldWorker, newWorker]);
  try {
    await ledger.recordReceipt(old.receipt, { assignment: assignmentOf(oldJob, oldWorker) });
    await ledger.recordReceipt(counted.receipt, { assignment: assignmentOf(newJob, newWorker) });
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assertEquals(ledger.account(oldWorker.publicKey).balance, old.receipt.tokenCount * PRICE);
    assertEquals(
      ledger.account(newWorker.publicKey).balance,
      counted.receipt.tokenCount * PRICE + truth * PRICE * DEFAULT_ECONOMICS.promptTokenShare,
    );
  } finally {
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }

  // A node from before the field drops it when it parses the receipt: the signature then fails.
  const { promptTokens: _dropped, ...asOldNodesRead } = counted.receipt as Receipt;
  const seen = verifyReceipt(asOldNodesRead, { job: newJob });
  assertEquals(seen.ok ? "ok" : seen.reason, "bad_signature");
});
