/**
 * A router without the model holds a worker's prompt count to the window the worker itself
 * stated in its `start`, not to a smaller one some other peer listed for the model (review s79
 * vlate F1: a listing is any key's claim, one per model picked by standing, and a listing of 64
 * got an honest worker's receipt for 100 prompt tokens in its stated window of 256 withheld, its
 * client told 63 and the worker kept off the model). The listed window bounds only a worker that
 * stated none. The validators that hold the model re-count every receipt they record.
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

/** The window the worker states: the built-in tiny model's. */
const STATED = 256;
/** The smaller window another peer lists for the same model. */
const LISTED = 64;
/** An honest count inside the stated window and past the listed one. */
const COUNT = 100;
/** A prompt long enough that its bytes allow {@link COUNT}: only a window can refuse it. */
const PROMPT = "x".repeat(2 * COUNT);

/**
 * A worker that states `window` (undefined: none), counts `count` prompt tokens in its start and
 * signs that count in its receipt over the whole job.
 */
function worker(window: number | undefined, count: number): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity: Identity) => {
    const model = window === undefined ? INFO : { ...INFO, contextLength: window };
    const list: InferenceEvent[] = [start(body.job, { model, promptTokens: count })];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    const { sig: _s, worker: _w, ...unsigned } = receiptFor(body.job as TextJob, identity, TEXT);
    list.push(
      endEvent(body.job, TOKENS, signReceipt({ ...unsigned, promptTokens: count }, identity)),
    );
    return events(list);
  });
}

/** `w` runs `nonce`'s job on a router whose workers list the model with {@link LISTED}. */
async function routed(w: TestWorker, nonce: string) {
  const job = { ...jobFor(nonce), prompt: PROMPT };
  const got = await routeOnce("listing-window", w, job, {}, [{ ...INFO, contextLength: LISTED }]);
  assert.equal(got.text, TEXT);
  return got;
}

Deno.test("a smaller window in another peer's listing (64) does not cut an honest worker's count inside the window it stated (100 of 256): its client is told 100, the receipt reaches the validator, the worker is not kept off the model", async () => {
  const got = await routed(await worker(STATED, COUNT), "listing-below-stated");
  assert.deepEqual(
    {
      told: got.summary.usage.promptTokens,
      error: got.summary.error?.message,
      toValidator: got.toValidator,
      avoided: got.avoided,
    },
    { told: COUNT, error: undefined, toValidator: 1, avoided: false },
  );
});

Deno.test("a worker that states no window is held to the model's listed window (64): a count of 100 is withheld and its client told 63", async () => {
  const got = await routed(await worker(undefined, COUNT), "listing-no-stated");
  assert.equal(got.summary.usage.promptTokens, LISTED - 1);
  assert.equal(got.summary.error?.code, "receipt_rejected");
  assert.equal(got.toValidator, 0, "the receipt reached the validator");
  assert.ok(got.avoided, "the worker was not kept off the model");
});
