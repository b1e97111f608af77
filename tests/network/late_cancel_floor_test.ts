/**
 * The worker cuts a finished job's receipt (`inference.get_receipt` with `held`) only for a job
 * whose stream its requester cancelled, and never below the positions of the events that
 * requester gave credit back for (`CancelSeen`, `serve_inference.ts`; review s81 vcancel F1, F2).
 * A router whose client read the whole stream asks with `held: 1`: it gets the finished receipt,
 * and the worker is paid all n in the router's ledger and a third one, the window open or the
 * finished receipt already final. A client that read n−1 and cancels saying it holds 1: the
 * worker signs over the n−1 its router credited, not 1, and the router, which read them, assigns
 * that cut: the worker is paid n−1, the client told usage 1 (`router_cancel_floor_test.ts`).
 *
 * Two nodes in memory, as in `late_cancel_receipt_test.ts` (setup from its review's probes).
 *
 * @module
 */
import assert from "node:assert/strict";
import { paidFor } from "../proof/_receipt_pay.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import { toHex } from "../../protocols/hash.ts";
import { ReceiptRequestMessage } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { HeldCancelError } from "../../protocols/held_cancel.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { GossipingWorker, setUpLateCancel, WORKER_STAKE } from "./_late_cancel.ts";
import { clientJob } from "../network/_proving_worker.ts";

/** The job's tokens: few, so the worker finishes and sends its end within the credit window. */
const MAX_TOKENS = 8;
/**
 * Router, worker and a third ledger (`_late_cancel.ts`). `cuts`: the worker serves its peers with
 * its prover named, so it signs a cancelled receipt over `held` (false: it answers as a worker
 * from before `held`).
 */
function setUp(label: string, cuts: boolean) {
  return setUpLateCancel({ name: `late-floor-${label}`, cuts, network: new GossipingWorker() });
}

/** The client reads every token to its end: no cancel at all. */
async function readAll(t: Awaited<ReturnType<typeof setUp>>, nonce: string) {
  const job = clientJob(nonce, MAX_TOKENS);
  const handle = await t.port.submit(job);
  let text = "";
  for await (const chunk of handle.tokens) text += chunk.text;
  const summary = await handle.done;
  const routed: TextJob = { ...job, requester: toHex(t.router.publicKey) };
  return { summary, text, routed };
}

for (const afterWindow of [false, true]) {
  Deno.test(`vcancel F1: a router whose client read all n tokens asks get_receipt with held 1: the worker answers its finished receipt, and is paid n in the router's ledger and a third (${afterWindow ? "the finished receipt already final" : "window open"})`, async () => {
    const t = await setUp(afterWindow ? "after" : "open", true);
    try {
      const { summary, text, routed } = await readAll(t, `underpay-${afterWindow}`);
      assert.equal(summary.usage.completionTokens, MAX_TOKENS, "the client read all n");
      const finished = summary.receipt as Receipt;
      assert.equal(finished.end, undefined);
      assert.equal(finished.tokenCount, MAX_TOKENS);
      assert.ok(
        verifyReceipt(finished, { job: routed, worker: t.worker.publicKey, output: text }).ok,
      );
      await eventually(() => t.network.announced.length === 1, "the finished receipt assigned");
      const { assignment } = t.network.announced[0];
      const hex = toHex(t.router.publicKey);
      await t.third.ask({
        type: "receipt",
        receipt: finished,
        job: routed,
        assignment,
        origin: hex,
      });
      if (afterWindow) {
        await t.reads.closeWindow();
        await t.third.ask({ type: "finalize" });
      }
      // The router asks for a cut though its client cancelled nothing and read all n.
      const answer = await t.network.connection!.request(ReceiptRequestMessage, {
        jobId: finished.jobId,
        held: 1,
      });
      const got = answer.receipt as Receipt;
      assert.equal(got.end, undefined, "the worker cut a job whose stream nobody cancelled");
      assert.equal(got.tokenCount, MAX_TOKENS);
      assert.equal(receiptId(got), receiptId(finished));
      // Whatever the router does with the answer, both ledgers hear it (the third bare).
      await t.routerValidator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: got,
        job: routed,
        assignment,
        origin: toHex(t.worker.publicKey),
      });
      await t.third.ask<ReceiptHandled>({
        type: "receipt",
        receipt: got,
        job: routed,
        origin: toHex(t.worker.publicKey),
      });
      await t.reads.closeWindow();
      await t.third.ask({ type: "finalize" });
      const full = paidFor(finished);
      for (const reads of [t.reads, t.thirdReads]) {
        const account = await reads.account(t.worker.publicKey);
        assert.equal(account.balance, full, "the worker that delivered n is not paid n");
        assert.equal(account.stake, WORKER_STAKE, "the worker was slashed");
      }
      // Each ledger holds the finished receipt alone, final, assigned by the router: n credited.
      for (const reads of [t.reads, t.thirdReads]) {
        const record = await reads.record(receiptId(finished));
        assert.equal(record?.status, "final");
        assert.equal(record?.requester, toHex(t.router.publicKey));
        assert.equal(record?.credit, full);
        assert.equal((await reads.account(t.worker.publicKey)).locked, 0);
      }
    } finally {
      await t.close();
    }
  });
}

Deno.test("vcancel F2: a client that read n-1 tokens after the worker finished cancels saying it holds 1: the worker signs over the n-1 its router gave credit back for, never over 1; the router checks that cut over the text it read and assigns it, so the worker is paid n-1 in the router's ledger and a third, and the client is told usage 1 and handed no receipt", async () => {
  const t = await setUp("claims-one", true);
  try {
    const job = clientJob("claims-one", MAX_TOKENS);
    const handle = await t.port.submit(job);
    const reader = handle.tokens.getReader();
    let text = "";
    for (let i = 0; i < MAX_TOKENS - 1; i++) {
      const next = await reader.read();
      assert.ok(!next.done);
      text += next.value.text;
    }
    await eventually(() => t.served.done.length === 1, "the worker to finish the job");
    const finished = (await t.served.done[0]).receipt as Receipt;
    assert.equal(finished.tokenCount, MAX_TOKENS);
    await reader.cancel(new HeldCancelError(1, "I hold one token"));
    const summary = await handle.done;
    // The router asked with its client's count, 1; the worker's cut is floored at the credited
    // events' MAX_TOKENS - 1 positions, which its router read: assigned, not handed to the client.
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, 1, "the client is told the count it named");
    assert.equal(summary.receipt, undefined, "the client was handed a receipt over text it lacks");
    await eventually(() => t.network.announced.length === 1, "the cut assigned");
    const { receipt: cut, assignment } = t.network.announced[0];
    assert.equal(cut.end, "cancelled");
    assert.equal(cut.tokenCount, MAX_TOKENS - 1, "the worker cut below what its requester read");
    const routed: TextJob = { ...job, requester: toHex(t.router.publicKey) };
    assert.ok(verifyReceipt(cut, { job: routed, worker: t.worker.publicKey, output: text }).ok);
    await t.third.ask<ReceiptHandled>({
      type: "receipt",
      receipt: cut,
      job: routed,
      assignment,
      origin: toHex(t.router.publicKey),
    });
    await eventually(
      async () => (await t.reads.record(receiptId(cut))) !== undefined,
      "the cut in the router's ledger",
    );
    await t.reads.closeWindow();
    await t.third.ask({ type: "finalize" });
    for (const reads of [t.reads, t.thirdReads]) {
      const account = await reads.account(t.worker.publicKey);
      assert.equal(account.balance, paidFor(cut), "the worker is not paid the n-1 it was read");
      assert.equal(account.stake, WORKER_STAKE);
      assert.equal(account.locked, 0);
      const record = await reads.record(receiptId(cut));
      assert.equal(record?.requester, toHex(t.router.publicKey), "the router is charged");
    }
  } finally {
    await t.close();
  }
});
