/**
 * A forwarding node holds a receipt signed `end: "cancelled"` only for a job its own client
 * cancelled (review s77 F1). A worker cannot end a job early, or at all, and call it a cancel: its
 * receipt never reaches the validator (so it is paid in no ledger) and it is kept off the model.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Identity } from "../../protocols/identity.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { jobFor, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import {
  endEvent,
  events,
  receiptFor,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** `identity`'s receipt for `job` over the first `tokens` tokens of TEXT, signed `cancelled`. */
function cancelledReceipt(job: TextJob, identity: Identity, tokens: number) {
  return receiptFor(job, identity, TEXT.slice(0, tokens), tokens, "cancelled");
}

/** The end event of a job the worker itself says it cancelled after `tokens` tokens. */
function cancelledEnd(job: TextJob, identity: Identity, tokens: number): InferenceEvent {
  const end = endEvent(job, tokens, cancelledReceipt(job, identity, tokens));
  if (end.kind !== "end") throw new Error("not an end event");
  return { ...end, summary: { ...end.summary, finishReason: "cancelled" } };
}

const receiptsTold = (told: { type: string }[]) => told.filter((m) => m.type === "receipt").length;

Deno.test("F1: a worker that runs a job to its end and signs it `cancelled` (the client cancelled nothing) is not paid: its receipt is withheld and it is kept off the model", async () => {
  const worker = await scriptedWorker((body, _n, identity) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    // Over every token the client got, and the text it got: only the end is a lie.
    list.push(endEvent(body.job, TOKENS, cancelledReceipt(body.job, identity, TOKENS)));
    return events(list);
  });
  const r = await router([worker.toWorker]);
  try {
    const got = await run(r.port, jobFor("whole"));
    assert.equal(got.text, TEXT);
    assert.equal(got.summary.receipt, undefined, "the client was handed the receipt");
    assert.equal(got.summary.error?.code, "receipt_rejected");
    assert.match(got.summary.error?.message ?? "", /did not cancel/);
    assert.equal(receiptsTold(r.recorder.told), 0, "the receipt reached the validator");
    assert.ok(r.workers.avoided.has(worker.key), "the worker was not kept off the model");
  } finally {
    await worker.close();
    await r.system.shutdown();
  }
});

Deno.test("F1: a worker that ends a job early as `cancelled` with a receipt over what it sent is not paid: the client's stream ends with an error and the worker is kept off the model", async () => {
  const SENT = 2;
  const worker = await scriptedWorker((body, _n, identity) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < SENT; i++) list.push(wireToken(i));
    list.push(cancelledEnd(body.job, identity, SENT));
    return events(list);
  });
  const r = await router([worker.toWorker]);
  try {
    const got = await run(r.port, jobFor("early"));
    assert.equal(got.text, TEXT.slice(0, SENT));
    assert.ok(got.failed !== undefined, "the client's stream ended as if the job were whole");
    assert.equal(got.summary.receipt, undefined);
    assert.equal(receiptsTold(r.recorder.told), 0, "the receipt reached the validator");
    assert.ok(r.workers.avoided.has(worker.key), "the worker was not kept off the model");
  } finally {
    await worker.close();
    await r.system.shutdown();
  }
});
