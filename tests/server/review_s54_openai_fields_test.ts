/**
 * Review at stop 54 of the OpenAI request fields against what real clients send: a field that
 * would change the answer is honoured or refused, never silently dropped (`web_search_options`,
 * `verbosity` on chat; `max_completion_tokens`, OpenAI's newer name for `max_tokens`, on
 * completions too), and a prompt given as token ids (OpenAI's "array of tokens", what
 * lm-evaluation-harness sends by default) is refused saying so, not told it is too long a batch.
 */
import { assert, assertEquals } from "./_assert.ts";
import { GENERATION_LIMITS } from "../../protocols/job.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { recordingApp } from "./_recording_app.ts";

const MODEL: ServedModelInfo = { cid: "bafkfieldsmodel", name: "fields", kind: "text" };

Deno.test("review s54: chat web_search_options and a verbosity other than medium are refused with 400 unsupported_field naming them, not ignored; verbosity medium and null pass", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  for (
    const [field, value] of [
      ["web_search_options", {}],
      ["web_search_options", { search_context_size: "low" }],
      ["verbosity", "low"],
      ["verbosity", "high"],
    ] as const
  ) {
    const { status, error } = await chat({ [field]: value });
    assertEquals(
      [status, error.code, error.param, error.type],
      [400, "unsupported_field", field, "invalid_request_error"],
      `${field}: ${JSON.stringify(value)}`,
    );
  }
  assertEquals(jobs.length, 0, "a refused field made no job");
  // Values that ask for nothing the node lacks go through (the port then answers 429).
  for (const body of [{ verbosity: "medium" }, { verbosity: null }, { web_search_options: null }]) {
    assertEquals((await chat(body)).status, 429, JSON.stringify(body));
  }
  assertEquals(jobs.length, 3);
});

Deno.test("review s54: /v1/completions takes max_completion_tokens as chat does (not ignored for the default 64); out of range is a 400 naming it", async () => {
  const { jobs, completions } = recordingApp(MODEL);
  assertEquals((await completions({ max_completion_tokens: 100 })).status, 429);
  assertEquals((await completions({ max_tokens: 10, max_completion_tokens: 200 })).status, 429);
  assertEquals(jobs.map((job) => job.params.maxTokens), [100, 200]);
  const { status, error } = await completions({
    max_completion_tokens: GENERATION_LIMITS.maxTokens + 1,
  });
  assertEquals([status, error.code, error.param], [
    400,
    "invalid_request",
    "max_completion_tokens",
  ]);
  assertEquals(jobs.length, 2);
});

Deno.test("review s54: a completions prompt of token ids ([1, 2, 3] or [[1, 2, 3]]) is a 400 naming 'prompt' that says token ids are not taken, not that the array is too long", async () => {
  const { jobs, completions } = recordingApp(MODEL);
  for (const prompt of [[1, 2, 3], [[1, 2, 3]], [7]]) {
    const { status, error } = await completions({ prompt });
    assertEquals([status, error.code, error.param], [400, "invalid_request", "prompt"]);
    assert(/token ids/.test(error.message), `says why: ${error.message}`);
    assert(!/exactly 1/.test(error.message), `not a batch-size message: ${error.message}`);
  }
  // A batch of more than one text prompt is still told it is one prompt per request.
  const batch = await completions({ prompt: ["a", "b"] });
  assertEquals([batch.status, batch.error.param], [400, "prompt"]);
  assert(/1/.test(batch.error.message), batch.error.message);
  assertEquals(jobs.length, 0);
});
