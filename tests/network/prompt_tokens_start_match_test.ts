/**
 * A router holds a worker's signed prompt count to the count the worker's own `start` gave (what
 * the client was told), and to a window that is not the worker's word alone: the window it stated,
 * capped by `MAX_STATED_CONTEXT_TOKENS` and by what NFKC can make of the prompt's bytes (the
 * listed window only where it stated none, review s79 vlate F1 and F4); with no window at all, by
 * the prompt's bytes (review s79 vmoney F3: a worker that stated 10^9 passed
 * 100,000; one that told 1 and signed 255 was paid 255 while its client was told 1; one that
 * stated no window had 9e15 told to the client). Who pays: nobody; such a receipt never reaches
 * the validator, and the worker is kept off the model. An honest worker (its start's count signed,
 * inside its window) is paid as before.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Identity } from "../../protocols/identity.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { signReceipt } from "../../protocols/receipt.ts";
import {
  MAX_STATED_CONTEXT_TOKENS,
  maxPromptTokens,
  NFKC_MAX_EXPANSION,
} from "../../inference/remote_port.ts";
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

/** The built-in tiny model's window. */
const WINDOW = 256;
/** The review's claim: far past that window. */
const CLAIM = 100_000;

/**
 * A worker that states `window` (undefined: none) for the job's model, tells `told` prompt tokens
 * in its start, runs the job whole and signs `signed`.
 */
function worker(window: number | undefined, told: number, signed: number): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity) => {
    const model = window === undefined ? INFO : { ...INFO, contextLength: window };
    const list: InferenceEvent[] = [start(body.job, { model, promptTokens: told })];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS, counted(body.job, identity, signed)));
    return events(list);
  });
}

/** `identity`'s receipt over the whole job, signing `promptTokens`. */
function counted(job: TextJob, identity: Identity, promptTokens: number) {
  const { sig: _sig, worker: _worker, ...unsigned } = receiptFor(job, identity, TEXT);
  return signReceipt({ ...unsigned, promptTokens }, identity);
}

/**
 * A prompt whose bytes allow more than the window (scaled by `NFKC_MAX_EXPANSION`, they bound a
 * stated window too): only the window decides.
 */
const LONG_PROMPT = "x".repeat(WINDOW);

/**
 * Routed by a router without the model, whose workers list the model with `listed` (if set);
 * `prompt`: the job's (default `jobFor`'s "hi").
 */
async function routed(w: TestWorker, nonce: string, listed?: number, prompt?: string) {
  const models = listed === undefined ? undefined : [{ ...INFO, contextLength: listed }];
  const job = prompt === undefined ? jobFor(nonce) : { ...jobFor(nonce), prompt };
  const got = await routeOnce("prompt-start-match", w, job, {}, models);
  assert.equal(got.text, TEXT);
  return got;
}

/** Asserts `got`'s receipt was withheld from the client and the validator, the worker avoided. */
function assertWithheld(got: Awaited<ReturnType<typeof routed>>, why: RegExp): void {
  assert.equal(got.summary.receipt, undefined, "the client was handed the receipt");
  assert.equal(got.summary.error?.code, "receipt_rejected");
  assert.match(got.summary.error?.message ?? "", why);
  assert.equal(got.toValidator, 0, "the receipt reached the validator");
  assert.ok(got.avoided, "the worker was not kept off the model");
}

Deno.test("a receipt signing another prompt count than its worker's start told the client (1 told, 255 signed, inside the stated window 256) is withheld, paid in no ledger", async () => {
  const got = await routed(
    await worker(WINDOW, 1, WINDOW - 1),
    "told-1-signed-255",
    undefined,
    LONG_PROMPT,
  );
  assert.equal(got.summary.usage.promptTokens, 1);
  assertWithheld(got, /signs 255 prompt tokens, and its start counted 1/);
});

Deno.test("a worker stating a window of 10^9 is held to what NFKC can make of its prompt's bytes (33 for 'hi'), whatever window its model is listed with: a 100,000-token start and receipt are withheld", async () => {
  const got = await routed(await worker(1_000_000_000, CLAIM, CLAIM), "huge-window", WINDOW);
  const most = maxPromptTokens(jobFor("huge-window"), 1_000_000_000);
  assert.equal(most, NFKC_MAX_EXPANSION * 3);
  assert.equal(got.summary.usage.promptTokens, most);
  assertWithheld(got, /signs 100000 prompt tokens/);
});

Deno.test("with no window listed, a stated window of 10^9 is capped at MAX_STATED_CONTEXT_TOKENS: a count past it is withheld, the client told at most the cap", async () => {
  const claim = 2 * MAX_STATED_CONTEXT_TOKENS;
  // Bytes that, scaled by NFKC_MAX_EXPANSION, allow more than the cap: only the cap decides.
  const prompt = "x".repeat(Math.ceil(MAX_STATED_CONTEXT_TOKENS / NFKC_MAX_EXPANSION));
  const got = await routed(await worker(1_000_000_000, claim, claim), "capped", undefined, prompt);
  assert.equal(got.summary.usage.promptTokens, MAX_STATED_CONTEXT_TOKENS - 1);
  assertWithheld(got, new RegExp(`signs ${claim} prompt tokens`));
});

Deno.test("a worker stating no window, with none listed, is held to the prompt's bytes: its client is told at most that (not 9e15), and a receipt past it is withheld", async () => {
  const job = jobFor("no-window");
  const bound = maxPromptTokens(job); // "hi": 2 bytes and a marker
  assert.equal(bound, 3);
  const told = await routed(await worker(undefined, 9_000_000_000_000_000, bound), "no-window");
  assert.equal(told.summary.usage.promptTokens, bound);
  // Its receipt signs the count its client was told: inside the bound, taken.
  assert.equal(told.toValidator, 1, told.summary.error?.message ?? "");
  const past = await routed(await worker(undefined, CLAIM, CLAIM), "no-window-past");
  assert.equal(past.summary.usage.promptTokens, bound);
  assertWithheld(past, /signs 100000 prompt tokens, more than the model.s window allows \(3:/);
});

Deno.test("an honest worker's receipt (the count its start gave, inside the window stated and listed) reaches the validator and the client", async () => {
  const got = await routed(await worker(WINDOW, 5, 5), "honest", WINDOW);
  assert.equal(got.summary.usage.promptTokens, 5);
  assert.ok(got.summary.receipt !== undefined, got.summary.error?.message ?? "");
  assert.equal(got.toValidator, 1);
  assert.ok(!got.avoided);
});
