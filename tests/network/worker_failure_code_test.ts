/**
 * Review s71, findings 2 and 3: what a client is told when a routed job's only worker fails it
 * mid-stream and no worker takes it over. A worker's code is not the client's: a failure the
 * worker caused ends with the router's `worker_failed` (502, `server_error`), the worker's code and
 * message in the text only (before, `invalid_api_key` answered 401, `rate_limited` 429,
 * `context_length_exceeded` 400). A broken stream, which this side found itself, keeps its
 * `inference_stream_invalid`, a 502 too (before, a 500 "internal server error" that hid the
 * router's explanation). The router's summary goes through the edge's own mapping.
 */
import assert from "node:assert/strict";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { jobFor } from "./_hostile_worker_fixture.ts";
import {
  events,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";
import { httpStatusOf, jobFailureForClient, openAiErrorBody } from "../../server/http_errors.ts";

/** Run one job whose only worker streams `list` after its start, then fails with `code` if given. */
async function onlyWorker(nonce: string, list: InferenceEvent[], code?: string) {
  const w = await scriptedWorker((body) =>
    events(
      [start(body.job), ...list],
      code === undefined ? undefined : Promise.resolve(new VeriflowError(code, "worker side")),
    )
  );
  const r = await router([w.toWorker]);
  try {
    const got = await run(r.port, jobFor(nonce));
    const error = got.summary.error!;
    const told = jobFailureForClient(error.code, error.message);
    return { got, error, told, status: httpStatusOf(told), body: openAiErrorBody(told) };
  } finally {
    await w.close();
    await r.system.shutdown();
  }
}

const TWO_TOKENS = [wireToken(0), wireToken(1)];

for (
  const code of [
    "invalid_api_key",
    "rate_limited",
    "context_length_exceeded",
    "model_worker_failed",
    "internal_error",
  ]
) {
  Deno.test(`s71: a worker that fails a job mid-stream with its own "${code}" and no takeover ends it worker_failed, 502, its code in the message only`, async () => {
    const { got, error, told, status, body } = await onlyWorker(`own-${code}`, TWO_TOKENS, code);
    assert.deepEqual(got.positions, [0, 1]);
    assert.equal(got.failed, "worker_failed", "the client's stream failed with the router's code");
    assert.equal(error.code, "worker_failed");
    assert.equal(status, 502);
    assert.equal(body.error.type, "server_error");
    assert.equal(body.error.code, "worker_failed");
    assert.equal(told.message, error.message, "the router's explanation reaches the client");
    assert.match(told.message, new RegExp(`its error ${code}: worker side`), told.message);
    assert.match(told.message, /lost after 2 tokens/, told.message);
  });
}

Deno.test("s71: a worker whose stream breaks (a duplicated token) with no takeover ends inference_stream_invalid, 502, with the router's explanation", async () => {
  const { got, error, told, status, body } = await onlyWorker("dup", [...TWO_TOKENS, wireToken(1)]);
  assert.deepEqual(got.positions, [0, 1]);
  assert.equal(error.code, "inference_stream_invalid", "this side's own finding keeps its code");
  assert.equal(status, 502);
  assert.equal(body.error.type, "server_error");
  assert.notEqual(told.message, "internal server error", "the router's explanation was hidden");
  assert.match(told.message, /lost after 2 tokens/, told.message);
});
