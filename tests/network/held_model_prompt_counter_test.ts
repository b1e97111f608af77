/**
 * A router's prompt-token count for the models it holds (`_held_model_prompt_counter.ts`, review
 * s78 vprompt F1 and F4): a job on a held model is counted with the model's own tokenizer, read
 * once; one that names an input (its bytes are not the router's) is held to the model's window,
 * not to the input allowance (262,147 for "hi" and a 5-byte input). Without the model the router
 * refuses no count: an honest count of a normalizing tokenizer (NFKC: the 3-byte "ﷺ" is 33
 * tokens) reaches the validator and its worker is not kept off the model.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  HeldModelPromptCounter,
  type HeldModels,
} from "../../network/_held_model_prompt_counter.ts";
import type { ForwardingOptions } from "../../network/network_inference_port.ts";
import type { RegisteredModel } from "../../inference/model_registry.ts";
import { HfTokenizer } from "../../inference/text_tokenizer.ts";
import { byteLevelTokenizerJson } from "../../inference/byte_tokenizer.ts";
import { cidOf } from "../../protocols/cid.ts";
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
import { INFO } from "./_router_fixture.ts";

/** The review's inflated claim. */
const CLAIM = 100_000;
/** The held model's window (the built-in tiny model's). */
const CONTEXT = 256;
/** A 3-byte character NFKC expands to 18 characters, 33 bytes. */
const NFKC_PROMPT = "\uFDFA";

/** A byte-level tokenizer with an NFKC normalizer, as an exported model's may have. */
function nfkcTokenizer(): HfTokenizer {
  return new HfTokenizer({
    ...byteLevelTokenizerJson() as Record<string, unknown>,
    normalizer: { type: "NFKC" },
  });
}

/** A node holding one text model, `jobFor`'s, with a `CONTEXT`-token window. */
function heldModels(): HeldModels {
  const model: RegisteredModel = {
    cid: jobFor("any").model,
    name: "held",
    kind: "text",
    path: "/nowhere",
    sizeBytes: 1,
    contextLength: CONTEXT,
    loaded: false,
  };
  return {
    info: (cid) => cid === model.cid ? model : undefined,
    list: () => [model],
  };
}

/**
 * A worker that states the model's window, tells `promptTokens` in its start (a receipt must sign
 * its start's count), runs each job whole and signs `promptTokens`.
 */
function workerSigning(promptTokens: number): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity) => {
    const model = { ...INFO, contextLength: CONTEXT };
    const list: InferenceEvent[] = [start(body.job, { model, promptTokens })];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    const { sig: _s, worker: _w, ...unsigned } = receiptFor(body.job, identity, TEXT);
    list.push(endEvent(body.job, TOKENS, signReceipt({ ...unsigned, promptTokens }, identity)));
    return events(list);
  });
}

/** A router over `worker` with `options` runs `job`: what became of the receipt. */
function routed(worker: TestWorker, job: TextJob, options: ForwardingOptions = {}) {
  return routeOnce("held-model-prompt-counter", worker, job, options);
}

Deno.test("a router holding the model refuses 100,000 prompt tokens for 'hi' and a 5-byte input: held to the model's window (255), not the input allowance; withheld from the validator", async () => {
  const counter = new HeldModelPromptCounter(heldModels(), () => Promise.resolve(nfkcTokenizer()));
  await counter.prepare();
  const job: TextJob = { ...jobFor("with-input"), input: cidOf(new TextEncoder().encode("Hello")) };
  assert.deepEqual(counter.count(job), { atMost: CONTEXT - 1 });
  const got = await routed(await workerSigning(CLAIM), job, { countPromptTokens: counter.count });
  assert.equal(got.summary.error?.code, "receipt_rejected");
  assert.equal(got.summary.receipt, undefined);
  assert.equal(got.toValidator, 0, "the inflated receipt reached the validator");
});

Deno.test("a router holding the model counts a prompt with the model's tokenizer, read once: the NFKC count of 'ﷺ' (33) is taken, one more is refused; before the read, the window bounds it; a model it does not hold is not counted", async () => {
  let reads = 0;
  const counter = new HeldModelPromptCounter(heldModels(), () => {
    reads++;
    return Promise.resolve(nfkcTokenizer());
  });
  const job: TextJob = { ...jobFor("nfkc-held"), prompt: NFKC_PROMPT };
  assert.deepEqual(counter.count(job), { atMost: CONTEXT - 1 }, "counted before its read");
  await counter.prepare();
  const honest = nfkcTokenizer().encode(NFKC_PROMPT).length;
  assert.equal(honest, 33);
  assert.equal(counter.count(job), honest);
  assert.equal(reads, 1, "the tokenizer was read more than once");
  assert.equal(counter.count({ ...job, model: "not-held" }), undefined);

  const exact = await routed(await workerSigning(honest), job, {
    countPromptTokens: counter.count,
  });
  assert.ok(exact.summary.receipt !== undefined, exact.summary.error?.message ?? "");
  assert.equal(exact.toValidator, 1);
  const more = await routed(await workerSigning(honest + 1), { ...job, nonce: "nfkc-more" }, {
    countPromptTokens: counter.count,
  });
  assert.equal(more.summary.error?.code, "receipt_rejected");
  assert.ok(more.avoided);
});

Deno.test("a router without the model takes an NFKC tokenizer's honest count of 'ﷺ' (33 tokens for 3 bytes): the receipt reaches the validator and the worker is not kept off the model", async () => {
  const honest = nfkcTokenizer().encode(NFKC_PROMPT).length;
  assert.ok(honest > new TextEncoder().encode(NFKC_PROMPT).length + 1);
  const job: TextJob = { ...jobFor("nfkc-unheld"), prompt: NFKC_PROMPT };
  const got = await routed(await workerSigning(honest), job);
  assert.equal(got.summary.error, undefined);
  assert.equal(
    (got.summary.receipt as { promptTokens?: number } | undefined)?.promptTokens,
    honest,
  );
  assert.equal(got.toValidator, 1, "the honest receipt was withheld from the validator");
  assert.ok(!got.avoided, "the honest worker was kept off the model");
});
