/**
 * A requester that opens a job's stream with a window far larger than an honest one (the
 * connection takes one up to `MAX_CREDIT_GRANT`) and asks 16 tokens per event gives no credit
 * back while it reads, reads the whole output, then cancels naming `held: 1`. The worker's floor
 * (`CancelSeen`, `serve_inference.ts`) counts as read every event but the last an honest
 * requester's window holds (`submitWindow(tokensPerEvent)`: 4 events of 16 here, 64 tokens), so
 * the worker's receipt is cut no lower than n − 64. Before, the floor left the last 16 events
 * unnamed whatever their size: 16 × 16 = 256 tokens, and the worker was paid 1 token for a
 * 245-token job its requester read (review s82 vdrain, F1).
 *
 * Router, worker and a third ledger in memory (`_late_cancel.ts`, `grouped`: the worker's events
 * are filled on a clock that never moves).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import { MAX_TOKENS_IN_FLIGHT } from "../../inference/remote_port.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { HeldCancelError } from "../../protocols/held_cancel.ts";
import {
  type InferenceEvent,
  ReceiptRequestMessage,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { GossipingWorker, setUpLateCancel } from "./_late_cancel.ts";
import { clientJob } from "./_proving_worker.ts";

/** The job's limit: the honest model ends it with a stop before (245 tokens). */
const MAX_TOKENS = 300;
/** Tokens per event the cheating requester asks for: an honest window is 4 of them. */
const TOKENS_PER_EVENT = 16;

Deno.test("a requester with a large window that reads a whole job and names held 1 pays for all but an honest window's tokens", async () => {
  const t = await setUpLateCancel({
    name: "unnamed-events",
    cuts: true,
    network: new GossipingWorker(),
    grouped: TOKENS_PER_EVENT, // the worker's events after the first are full
  });
  try {
    const job: TextJob = {
      ...clientJob("unnamed", MAX_TOKENS),
      requester: toHex(t.router.publicKey),
    };
    const connection = t.network.connection!;
    // Credit goes back only after half the window is read: none for the whole job.
    const stream = connection.openStream(
      SubmitMessage,
      { job, tokensPerEvent: TOKENS_PER_EVENT, gatherMs: 1 },
      { window: 4096 },
    );
    const reader = stream.getReader();
    let jobId = "";
    const texts: string[] = [];
    for (;;) {
      const { value, done } = await reader.read();
      assert.ok(!done);
      const event = value as InferenceEvent;
      if (event.kind === "start") jobId = event.jobId;
      const items = event.kind === "token" ? [event] : event.kind === "tokens" ? event.tokens : [];
      for (const item of items) texts.push(item.text);
      if (items.length > 0 && items[items.length - 1].finishReason !== undefined) break;
    }
    const n = texts.length;
    assert.ok(n > MAX_TOKENS_IN_FLIGHT + TOKENS_PER_EVENT, `a job of ${n} tokens`);
    // Every token read; the end event left unread, and the cancel names 1.
    await reader.cancel(new HeldCancelError(1, "cheap cancel"));
    await eventually(() => t.served.done.length === 1, "the worker's job");
    const finished = (await t.served.done[0]).receipt as Receipt;
    assert.equal(finished.tokenCount, n);
    const kept = await connection.request(ReceiptRequestMessage, { jobId, held: 1 });
    const receipt = kept.receipt as Receipt;
    assert.equal(receipt.end, "cancelled");
    // Cut to the floor: every event but the last 4 sent (the last holds the job's rest).
    assert.ok(
      receipt.tokenCount >= n - MAX_TOKENS_IN_FLIGHT,
      `the worker's receipt names ${receipt.tokenCount} of the ${n} tokens read`,
    );
    assert.ok(receipt.tokenCount < n, "the cut still leaves the unread window out");
    assert.ok(
      verifyReceipt(receipt, {
        job,
        worker: t.worker.publicKey,
        output: texts.slice(0, receipt.tokenCount).join(""),
      }).ok,
    );
    const handled = await t.routerValidator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      assignment: signAssignment({ job, worker: t.worker.publicKey, issuedAt: 0 }, t.router),
      origin: toHex(t.worker.publicKey),
    });
    assert.ok(handled.recorded);
    await t.reads.closeWindow();
    // The ledger: the worker is paid the floor's tokens, the requester billed them.
    const record = await t.reads.record(receiptId(receipt));
    assert.equal(record?.credit, paidFor(receipt));
    assert.equal(record?.requester, toHex(t.router.publicKey));
    assert.ok(paidFor(receipt) >= paidFor(finished) - MAX_TOKENS_IN_FLIGHT);
    assert.equal((await t.reads.account(t.worker.publicKey)).balance, paidFor(receipt));
  } finally {
    await t.close();
  }
});
