/**
 * After a failover the router holds the resuming worker's receipt to the prompt count of ITS OWN
 * `start`, not the lost first worker's (review s79 vmoney F3): the first worker's word is not the
 * resumer's, and an honest resumer after a lying first worker must still be paid; a resumer whose
 * receipt signs another count than its own start gave is not.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Identity } from "../../protocols/identity.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { signReceipt } from "../../protocols/receipt.ts";
import { jobFor, type TestWorker, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import { INFO } from "./_router_fixture.ts";
import {
  crashingWorker,
  endEvent,
  events,
  receiptFor,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** The model's window every worker here states. */
const WINDOW = 256;

/** A worker that resumes the job from where it is asked, tells `told` and signs `signed`. */
function resumer(told: number, signed: number): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity) => {
    const k = body.resume?.length ?? 0;
    const model = { ...INFO, contextLength: WINDOW };
    const list: InferenceEvent[] = [
      start(body.job, { model, promptTokens: told, ...(k > 0 ? { resumedFrom: k } : {}) }),
    ];
    for (let i = k; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS - k, counted(body.job, identity, signed), told));
    return events(list);
  });
}

/** `identity`'s receipt over the whole job, signing `promptTokens`. */
function counted(job: TextJob, identity: Identity, promptTokens: number) {
  const { sig: _sig, worker: _worker, ...unsigned } = receiptFor(job, identity, TEXT);
  return signReceipt({ ...unsigned, promptTokens }, identity);
}

/** The first worker (its start tells 1) crashes after two tokens; `next` takes the job over. */
async function failedOverTo(next: TestWorker, nonce: string) {
  const crashed = await crashingWorker([wireToken(0), wireToken(1)]);
  const r = await router([crashed.toWorker, next.toWorker]);
  try {
    const got = await run(r.port, jobFor(nonce), crashed);
    assert.equal(got.text, TEXT);
    assert.deepEqual(next.submissions[0].resume?.length, 2, "the job was not resumed");
    const receipts = r.recorder.told.filter((m) => m.type === "receipt");
    return { got, receipts, avoided: r.workers.avoided.has(next.key) };
  } finally {
    await crashed.close();
    await next.close();
    await r.system.shutdown();
  }
}

Deno.test("a resumer whose receipt signs the count its own start gave (3) is paid, though the lost first worker's start told 1", async () => {
  const { got, receipts, avoided } = await failedOverTo(await resumer(3, 3), "resumer-own");
  assert.ok(got.summary.receipt !== undefined, got.summary.error?.message ?? "");
  assert.equal(receipts.length, 1);
  assert.ok(!avoided);
});

Deno.test("a resumer whose receipt signs another count (3) than its own start gave (2) is withheld, though 3 is within the window", async () => {
  const { got, receipts, avoided } = await failedOverTo(await resumer(2, 3), "resumer-other");
  assert.equal(got.summary.receipt, undefined);
  assert.equal(got.summary.error?.code, "receipt_rejected");
  assert.match(got.summary.error?.message ?? "", /signs 3 prompt tokens, and its start counted 2/);
  assert.equal(receipts.length, 0);
  assert.ok(avoided);
});
