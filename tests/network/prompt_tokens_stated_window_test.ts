/**
 * A router that does not hold a job's model (no tokenizer, no count of its own) still refuses a
 * worker's receipt signing more prompt tokens than the model's window the worker itself stated in
 * its `start` allows (stop 78 left it open: such a router took any count, and a 100,000-token
 * claim on an input job was paid 25,008 where no validator counted it). Who pays: nobody; the
 * receipt never reaches the validator (paid in no ledger) and the worker is kept off the model.
 * A count inside the stated window is taken as before (the validators that hold the model re-count
 * it); where the worker stated no window, the prompt's bytes bound it (review s79 vmoney F3). The
 * worker here tells the count it signs in its `start`: one that signs another is refused for that
 * (`prompt_tokens_start_match_test.ts`).
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
  endEvent,
  events,
  receiptFor,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";
import { routeOnce } from "./_route_once.ts";

/** The window the worker states for the model: the built-in tiny model's. */
const STATED_WINDOW = 256;
/** The review's claim on an input job: far past any window. */
const CLAIM = 100_000;

/**
 * A worker that states `window` (none: undefined) for the job's model in its start, runs the job
 * whole and signs its receipt with `promptTokens`.
 */
function workerStating(window: number | undefined, promptTokens: number): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity) => {
    const model = window === undefined ? INFO : { ...INFO, contextLength: window };
    const list: InferenceEvent[] = [start(body.job, { model, promptTokens })];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS, counted(body.job, identity, promptTokens)));
    return events(list);
  });
}

/** `identity`'s receipt over the whole job, signing `promptTokens`. */
function counted(job: TextJob, identity: Identity, promptTokens: number) {
  const { sig: _sig, worker: _worker, ...unsigned } = receiptFor(job, identity, TEXT);
  return signReceipt({ ...unsigned, promptTokens }, identity);
}

/**
 * A prompt whose bytes allow more than the window (even scaled by `NFKC_MAX_EXPANSION`, they
 * bound a stated window too): only the window decides here.
 */
const PROMPT = "x".repeat(STATED_WINDOW);

/** A router with no count of its own (it holds no model) runs `nonce`'s job on `worker`. */
async function routed(worker: TestWorker, nonce: string) {
  const job = { ...jobFor(nonce), prompt: PROMPT };
  const got = await routeOnce("prompt-tokens-stated-window", worker, job);
  assert.equal(got.text, TEXT);
  return got;
}

Deno.test("a router without the model refuses a receipt signing more prompt tokens than the window its worker stated allows (100,000 against 256): withheld from the validator, paid in no ledger, the worker kept off the model", async () => {
  const inflated = await routed(await workerStating(STATED_WINDOW, CLAIM), "past-window");
  assert.equal(inflated.summary.receipt, undefined, "the client was handed the receipt");
  assert.equal(inflated.summary.error?.code, "receipt_rejected");
  assert.match(
    inflated.summary.error?.message ?? "",
    /100000 prompt tokens, more than the model's window allows \(255/,
  );
  assert.equal(inflated.toValidator, 0, "the receipt reached the validator");
  assert.ok(inflated.avoided, "the worker was not kept off the model");

  // The window fills at 256: a prompt of that many leaves no room for a token.
  const full = await routed(await workerStating(STATED_WINDOW, STATED_WINDOW), "at-window");
  assert.equal(full.toValidator, 0, "a count that fills the window reached the validator");
});

Deno.test("a router without the model takes a count inside the window its worker stated, and, where the worker stated none, a count inside the prompt's bytes only: its validators re-count it", async () => {
  const inside = await routed(await workerStating(STATED_WINDOW, STATED_WINDOW - 1), "inside");
  assert.ok(inside.summary.receipt !== undefined, inside.summary.error?.message ?? "");
  assert.equal(inside.toValidator, 1);
  assert.ok(!inside.avoided);

  // Inside the prompt's bytes (256 and a marker).
  const unstated = await routed(await workerStating(undefined, 3), "unstated");
  assert.ok(unstated.summary.receipt !== undefined, unstated.summary.error?.message ?? "");
  assert.equal(unstated.toValidator, 1);
  const past = await routed(await workerStating(undefined, CLAIM), "unstated-past");
  assert.equal(past.toValidator, 0, "a count past the prompt's bytes reached the validator");
});
