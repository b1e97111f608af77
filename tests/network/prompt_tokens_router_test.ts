/**
 * A forwarding node refuses a worker's receipt whose signed prompt-token count (batching review
 * F2 of stop 77: the count is paid) is not what the node counts for the prompt it sent: with its
 * own tokenizer for the model, the exact count; where it cannot count the whole prompt, any count
 * past the model's window. A refused receipt never reaches the validator (it is paid in no ledger) and its worker is
 * kept off the model. A receipt that signs no count (as before the field) is taken as before.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ForwardingOptions } from "../../network/network_inference_port.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { signReceipt } from "../../protocols/receipt.ts";
import { jobFor, type TestWorker, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import {
  endEvent,
  events,
  receiptFor,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";
import { routeOnce } from "./_route_once.ts";

/** The router's count of `jobFor`'s prompt ("hi"): two bytes, two tokens. */
const COUNTED = 2;
/** The most an honest count can be on a model of a 256-token window. */
const WINDOW_BOUND = 255;

/** A worker that runs each job whole and signs its receipt with `promptTokens` (none: unset). */
function workerSigning(promptTokens: number | undefined): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity) => {
    const list: InferenceEvent[] = [start(body.job, { promptTokens: promptTokens ?? 1 })];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS, counted(body.job, identity, promptTokens)));
    return events(list);
  });
}

/** `identity`'s receipt over the whole job, signing `promptTokens` when it is given. */
function counted(job: TextJob, identity: Identity, promptTokens: number | undefined) {
  const { sig: _sig, worker: _worker, ...unsigned } = receiptFor(job, identity, TEXT);
  return signReceipt(
    promptTokens === undefined ? unsigned : { ...unsigned, promptTokens },
    identity,
  );
}

/** A router over `worker` with `options`; runs `nonce`'s job and says what became of its receipt. */
async function routed(worker: TestWorker, nonce: string, options: ForwardingOptions = {}) {
  const got = await routeOnce("prompt-tokens-router", worker, jobFor(nonce), options);
  assert.equal(got.text, TEXT);
  return got;
}

Deno.test("F2: a router with its own tokenizer refuses a receipt signing one prompt token more than it counts for the prompt it sent: withheld from the validator, the worker kept off the model; the exact count is taken", async () => {
  const options: ForwardingOptions = { countPromptTokens: () => COUNTED };
  const inflated = await routed(await workerSigning(COUNTED + 1), "one-more", options);
  assert.equal(inflated.summary.receipt, undefined, "the client was handed the receipt");
  assert.equal(inflated.summary.error?.code, "receipt_rejected");
  assert.match(inflated.summary.error?.message ?? "", /3 prompt tokens, and the prompt sent has 2/);
  assert.equal(inflated.toValidator, 0, "the receipt reached the validator");
  assert.ok(inflated.avoided, "the worker was not kept off the model");

  const exact = await routed(await workerSigning(COUNTED), "exact", options);
  assert.ok(exact.summary.receipt !== undefined, exact.summary.error?.message ?? "");
  assert.equal(exact.toValidator, 1);
  assert.ok(!exact.avoided);
});

Deno.test("F2: a router that holds the model but cannot count the whole prompt (an input it does not hold) refuses a count past the model's window (500 against 255), and takes a receipt that signs no count, as before the field", async () => {
  const options: ForwardingOptions = { countPromptTokens: () => ({ atMost: WINDOW_BOUND }) };
  const inflated = await routed(await workerSigning(500), "five-hundred", options);
  assert.equal(inflated.summary.error?.code, "receipt_rejected");
  assert.match(inflated.summary.error?.message ?? "", /500 prompt tokens, more than the model's/);
  assert.equal(inflated.toValidator, 0, "the receipt reached the validator");
  assert.ok(inflated.avoided, "the worker was not kept off the model");

  const older = await routed(await workerSigning(undefined), "no-count", options);
  assert.ok(older.summary.receipt !== undefined, older.summary.error?.message ?? "");
  assert.equal(older.toValidator, 1);
  assert.ok(!older.avoided);
});
