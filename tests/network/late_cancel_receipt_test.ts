/**
 * A client's cancel through a forwarding node that comes after its worker had finished the job
 * (review s80 bill F1: every token and the end sent ahead into the credit window, the client
 * reading k of n when it cancels). The router asks the worker for its receipt with the client's
 * count (`inference.get_receipt` with `held`); the worker signs its `cancelled` receipt over those
 * k from the finished job's proof data (`cutProvedJob`, `ProverActor`'s `cut`), keeping both
 * proofs; the router assigns that one, never the finished one. The client's usage is k, and the
 * worker is paid k in the router's ledger and in a third that held the finished receipt bare
 * first (the cancelled one passed on by the router's gossip, and on again by the third:
 * `_receipt_intake.ts`, `pairAssigned`). A worker that cannot cut one (from before `held`, no
 * prover to ask) answers its finished receipt: dropped, nothing assigned, nobody paid or blamed.
 *
 * Two nodes in memory, as in `cancel_through_router_test.ts`: a worker (InferenceActor,
 * ProverActor, the honest model, served as a node serves its peers) and a router (a
 * `NetworkInferencePort` whose validator keeps a real ledger), plus a third ledger.
 *
 * @module
 */
import assert from "node:assert/strict";
import { paidFor } from "../proof/_receipt_pay.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { f } from "../actors/_validator_fixture.ts";
import { GossipingWorker, setUpLateCancel, WORKER_STAKE } from "./_late_cancel.ts";
import { clientJob } from "./_proving_worker.ts";

/** The job's tokens: few, so the worker finishes and sends its end within the credit window. */
const MAX_TOKENS = 8;
/** Tokens the client reads before it cancels: all but the last. */
const READ = MAX_TOKENS - 1;
/**
 * Router, worker and a third ledger (`_late_cancel.ts`). `cuts`: the worker serves its peers with
 * its prover named, so it signs a cancelled receipt over `held` (false: it answers as a worker
 * from before `held`).
 */
function setUp(label: string, cuts: boolean) {
  return setUpLateCancel({ name: `late-cancel-${label}`, cuts, network: new GossipingWorker() });
}

/** Submit the job, read {@link READ} tokens, wait for the worker's own end, cancel. */
async function cancelAfterTheWorkersEnd(t: Awaited<ReturnType<typeof setUp>>, nonce: string) {
  const job = clientJob(nonce, MAX_TOKENS);
  const handle = await t.port.submit(job);
  const reader = handle.tokens.getReader();
  let text = "";
  for (let i = 0; i < READ; i++) {
    const next = await reader.read();
    assert.ok(!next.done, "the job ended before the client cancelled");
    assert.equal(next.value.finishReason, undefined);
    text += next.value.text;
  }
  // The worker has finished the job (its last token and end sent ahead into the credit window).
  await eventually(() => t.served.done.length === 1, "the worker to take the job");
  const finished = (await t.served.done[0]).receipt as Receipt | undefined;
  assert.ok(finished !== undefined, "the worker signed no receipt for the job it finished");
  assert.equal(finished.end, undefined);
  assert.equal(finished.tokenCount, MAX_TOKENS, "the worker did not finish the job first");
  await reader.cancel();
  const summary = await handle.done;
  // The job as the worker ran it: the router names itself its requester.
  const routed: TextJob = { ...job, requester: toHex(t.router.publicKey) };
  return { summary, text, routed, finished };
}

Deno.test("bill F1: a client cancels at k of n after its worker finished the job: the worker signs its cancelled receipt over k from the finished job's proof (both proofs kept), the router assigns it, the client's usage is k, and the worker is paid k in the router's ledger and in a third one that held the finished receipt first", async () => {
  const t = await setUp("cut", true);
  try {
    const { summary, text, routed, finished } = await cancelAfterTheWorkersEnd(t, "late-cut");
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, READ);
    const receipt = summary.receipt as Receipt | undefined;
    assert.ok(receipt !== undefined, "the client got no receipt for the k tokens it read");
    assert.equal(receipt.end, "cancelled");
    assert.equal(receipt.tokenCount, READ);
    assert.equal(receipt.promptTokens, finished.promptTokens);
    const check = verifyReceipt(receipt, { job: routed, worker: t.worker.publicKey, output: text });
    assert.ok(check.ok, check.ok ? "" : check.message);

    // Both proofs are served, and the cut one is valid re-run alone, positions 0 … k−1.
    for (const r of [finished, receipt]) {
      const served = await t.prover.ask<ServedProof | undefined>({
        type: "get_proof",
        receiptId: receiptId(r),
      });
      assert.ok(served !== undefined, `no proof data for the receipt over ${r.tokenCount}`);
      const { verdict } = await validateReceipt(
        { job: routed, receipt: r, proof: served.proof },
        f.honest,
        Identity.generate(),
      );
      assert.equal(verdict.outcome, "valid", verdict.reason);
      assert.equal(verdict.details?.positions, r.tokenCount);
    }

    // The router's ledger: the cancelled receipt assigned, the finished one nowhere.
    await eventually(
      () => t.network.announced.some((a) => receiptId(a.receipt) === receiptId(receipt)),
      "the router's validator to record and pass on the assigned receipt",
      { timeoutMs: 3_000 },
    );
    assert.equal(t.network.announced.length, 1);
    assert.equal(await t.reads.record(receiptId(finished)), undefined);

    // A third ledger held the worker's finished receipt bare (its own announcement) first; then
    // the router's gossip brings the cancelled one with its assignment: one claim, paid k, and
    // passed on again so the ledgers past it pay the same.
    const hex = toHex(t.worker.publicKey);
    const bare = await t.third.ask<ReceiptHandled>({
      type: "receipt",
      receipt: finished,
      job: routed,
      origin: hex,
    });
    assert.ok(bare.recorded, bare.refusal ?? "");
    const { assignment } = t.network.announced[0];
    const paired = await t.third.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job: routed,
      assignment,
      origin: toHex(t.router.publicKey),
    });
    // One claim with the finished one (`cancelledPair`), not equivocation.
    assert.notEqual(paired.refusal, "equivocation");
    assert.deepEqual(
      t.gossip.announced.map((a) => receiptId(a.receipt)),
      [receiptId(receipt)],
      "the third ledger did not pass the cancelled receipt on",
    );
    // A copy of it again is not passed on again.
    await t.third.ask({ type: "receipt", receipt, job: routed, assignment, origin: hex });
    assert.equal(t.gossip.announced.length, 1);

    await t.reads.closeWindow();
    await t.third.ask({ type: "finalize" });
    const pay = paidFor(receipt);
    assert.ok(pay < paidFor(finished));
    const record = await t.reads.record(receiptId(receipt));
    assert.equal(record?.status, "final");
    assert.equal(record?.requester, toHex(t.router.publicKey));
    assert.equal(record?.credit, pay);
    for (const reads of [t.reads, t.thirdReads]) {
      const account = await reads.account(t.worker.publicKey);
      assert.equal(account.balance, pay, "the worker is not paid the k tokens");
      assert.equal(account.stake, WORKER_STAKE, "the honest worker was slashed");
      assert.equal(account.locked, 0);
      assert.equal((await reads.stats()).slashes, 0);
    }
    const held = await t.thirdReads.record(receiptId(finished));
    assert.equal(held?.requester, toHex(t.router.publicKey));
    assert.equal(held?.credit, pay);
    assert.deepEqual(t.network.avoided, []);
  } finally {
    await t.close();
  }
});

Deno.test("bill F1: a worker that cannot sign over the count (from before `held`: it answers its finished receipt) gets nothing assigned: the client's usage is k with no receipt, nobody is paid or slashed, and the worker is not kept off the model", async () => {
  const t = await setUp("older", false);
  try {
    const { summary, finished } = await cancelAfterTheWorkersEnd(t, "late-older");
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, READ);
    assert.equal(summary.receipt, undefined, "a receipt over more than the client got reached it");
    assert.equal(summary.error, undefined);
    await t.reads.closeWindow();
    assert.equal(await t.reads.record(receiptId(finished)), undefined);
    assert.deepEqual(t.network.announced, []);
    const account = await t.reads.account(t.worker.publicKey);
    assert.equal(account.balance, 0);
    assert.equal(account.stake, WORKER_STAKE);
    assert.equal((await t.reads.stats()).slashes, 0);
    assert.deepEqual(t.network.avoided, [], "an honest older worker was kept off the model");
  } finally {
    await t.close();
  }
});
