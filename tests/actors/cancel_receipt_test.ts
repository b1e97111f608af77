/**
 * A job its requester cancels after k delivered tokens ends in a receipt over those k tokens,
 * signed `end: "cancelled"` (review s77 F1: it ended in none, so a client took n−1 tokens of every
 * job free by cancelling before the last, and the worker was paid nothing). On the node's path
 * (`InferenceActor` → `ProverActor`), cancelled as a peer's explicit cancel reaches it (a
 * `StreamCancelledError`, `protocols/_connection_responder.ts`): the receipt validates when re-run
 * alone, and a ledger holding the requester's assignment records it with the requester's key and
 * credits the worker k tokens (no ledger debits the requester). A receipt that claims more tokens
 * than were delivered is caught. Other cancels sign nothing (`retry_after_abort_test.ts`).
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { StreamCancelledError } from "../../protocols/protocol_errors.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage, submitJob } from "../../actors/inference_actor.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, signReceipt, verifyReceipt } from "../../protocols/receipt.ts";
import { loadTinyModel, params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { spawnProvingInference } from "./_proving_inference.ts";
import { UnreadTokenBudget } from "../../actors/_unread_token_budget.ts";
import { type ProvedJob, proveJob } from "../../proof/prover.ts";
import { FINGERPRINT_BYTES } from "../../proof/fingerprint.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { paidFor } from "../proof/_receipt_pay.ts";

/** Tokens the requester reads before it cancels, of the job's {@link MAX_TOKENS}. */
const READ = 5;
const MAX_TOKENS = 12;
/** Credits per token in the test ledger: a round number, so k tokens are k × 2 credits. */
const PRICE = 2;

/** A peer's explicit cancel of a job, as `Responder.onCancel` hands it to the job's stream. */
function peerCancel(): StreamCancelledError {
  return new StreamCancelledError(
    "cancelled by the requester (stream_cancelled): reader cancelled",
  );
}

/** A job run on the node's path whose requester reads `READ` tokens and cancels its stream. */
async function cancelledRun() {
  const model = await loadTinyModel();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const system = new ActorSystem({ name: "cancel-receipt" });
  const { prover, inference } = await spawnProvingInference(system, model, worker);
  const job: TextJob = {
    kind: "text",
    model: model.info.cid,
    prompt: "Hello there",
    params: params({ maxTokens: MAX_TOKENS, temperature: 0.8, seed: 7 }),
    nonce: "cancel-receipt",
    requester: toHex(requester.publicKey),
  };
  const handle = await submitJob(inference, job);
  const reader = handle.tokens.getReader();
  let text = "";
  for (let i = 0; i < READ; i++) {
    const next = await reader.read();
    assert(!next.done, "the job ended before the requester cancelled");
    text += next.value.text;
  }
  await reader.cancel(peerCancel());
  const summary = await handle.done;
  const receipt = summary.receipt as Receipt | undefined;
  const served = receipt &&
    await prover.ask<ServedProof | undefined>({ type: "get_proof", receiptId: receiptId(receipt) });
  return { model, worker, requester, system, inference, job, text, summary, receipt, served };
}

/** A ledger that records `receipt` with `requester`'s assignment and lets its window close. */
async function settle(receipt: Receipt, job: TextJob, requester: Identity, worker: Identity) {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const ledger = await Ledger.open(dir, Identity.generate(), {
    now: () => clock.t,
    tokenPrice: () => PRICE,
  });
  try {
    await ledger.deposit(worker.publicKey, 1_000);
    const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
    const record = await ledger.recordReceipt(receipt, { assignment });
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    return { record, account: ledger.account(worker.publicKey) };
  } finally {
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("F1: a requester's cancel after k tokens ends in a receipt over those k tokens, valid re-run alone; a ledger with the requester's assignment credits the worker k (the requester is named, not debited)", async () => {
  const run = await cancelledRun();
  try {
    assertEquals(run.summary.finishReason, "cancelled");
    assert(run.receipt !== undefined, "a cancelled job after tokens has a receipt");
    assertEquals(run.receipt.end, "cancelled");
    assertEquals(run.receipt.tokenCount, READ);
    // Over exactly what the requester was streamed: its text, its job.
    const check = verifyReceipt(run.receipt, { job: run.job, output: run.text });
    assert(check.ok, check.ok ? "" : check.message);
    assert(run.served !== undefined, "the prover keeps the proof data of a cancelled receipt");
    const validator = Identity.generate();
    const { verdict } = await validateReceipt(
      { job: run.job, receipt: run.receipt, proof: run.served.proof },
      run.model,
      validator,
    );
    assertEquals(verdict.outcome, "valid", verdict.reason);
    assertEquals(verdict.details?.positions, READ, "positions 0 … k−1 re-run");
    const { record, account } = await settle(run.receipt, run.job, run.requester, run.worker);
    // Recorded under the requester whose assignment backs it (a label: its account is not
    // debited), for k tokens.
    assertEquals(record.requester, toHex(run.requester.publicKey));
    // (and the prompt it signs: `_receipt_pay.ts`).
    assertEquals(record.credit, paidFor(run.receipt, PRICE));
    // Paid to the worker, for k tokens, once its window closed.
    assertEquals(account.balance, paidFor(run.receipt, PRICE));
    assertEquals(account.locked, 0);
  } finally {
    await run.system.shutdown();
  }
});

Deno.test("F1: a job cancelled after a token is not taken again by the node that signed its receipt (a second receipt for it would be equivocation)", async () => {
  const run = await cancelledRun();
  try {
    assert(run.receipt !== undefined);
    const again = await assertRejects(() => submitJob(run.inference, run.job), VeriflowError);
    assertEquals(again.code, "duplicate_job");
  } finally {
    await run.system.shutdown();
  }
});

Deno.test("F1: a cancelled receipt re-signed to claim more tokens than were delivered is caught by a validator", async () => {
  const run = await cancelledRun();
  try {
    assert(run.receipt !== undefined && run.served !== undefined);
    const { sig: _sig, worker: _worker, ...unsigned } = run.receipt;
    const inflated = signReceipt({ ...unsigned, tokenCount: READ + 3 }, run.worker);
    // The commitment opens only over the k positions the worker proved.
    const { verdict } = await validateReceipt(
      { job: run.job, receipt: inflated, proof: run.served.proof },
      run.model,
      Identity.generate(),
    );
    assert(verdict.outcome !== "valid", `an inflated cancelled receipt passed: ${verdict.reason}`);
    assertEquals(verdict.reason, "commitment_mismatch");
  } finally {
    await run.system.shutdown();
  }
});

Deno.test("F1: tokens read ahead of a slow reader are left out of its cancel's receipt: it covers the k tokens the requester got", async () => {
  const model = new ScriptedModel();
  const worker = Identity.generate();
  const timers = new FakeTimers();
  // Room for a few tokens only (a one-letter token is estimated at 130 bytes): the job reads ahead
  // of its reader and then waits, its tokens already handed to the prover.
  const budget = new UnreadTokenBudget(800);
  const proofs: ProvedJob[] = [];
  const system = new ActorSystem({ name: "cancel-receipt-ahead" });
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({
        models: new StaticModels([model]),
        concurrency: 1,
        unreadBudget: budget,
        slowReaderTimers: timers,
        prover: async (job, _id, chunks) => {
          const run = await proveJob(job, chunks, worker);
          proofs.push(run);
          return run.receipt;
        },
      }),
  });
  try {
    const job: TextJob = {
      kind: "text",
      model: model.info.cid,
      prompt: "x",
      params: params({ maxTokens: 40, stop: [] }),
      nonce: "ahead",
      requester: toHex(Identity.generate().publicKey),
    };
    const slow = await submitJob(inference, job);
    const reader = slow.tokens.getReader();
    let text = "";
    for (let i = 0; i < 2; i++) text += (await reader.read()).value!.text;
    // Another job waits for the seat: the slow reader's grace runs out and it reads ahead.
    await submitJob(inference, { ...job, nonce: "waiting", params: params({ maxTokens: 1 }) });
    timers.fireAll();
    await eventually(() => budget.used > 0 && timers.armed.size === 1, "reading ahead, then full");
    assert(model.steps > 2, "nothing was read ahead of the reader");
    await reader.cancel(peerCancel());
    const summary = await slow.done;
    const receipt = summary.receipt as Receipt | undefined;
    assert(receipt !== undefined, "the cancel after 2 tokens has a receipt");
    assertEquals(receipt.tokenCount, 2, `the prover saw ${model.steps} tokens`);
    const check = verifyReceipt(receipt, { job, output: text });
    assert(check.ok, check.ok ? "" : check.message);
    assertEquals(proofs[0].proof.fingerprints.length, 2 * FINGERPRINT_BYTES);
  } finally {
    await system.shutdown();
  }
});
