/**
 * `promptTokensAtIntake` (review s78 vprompt F1): the re-count a validator makes of every receipt
 * it records, with the model's tokenizer alone. A job without an input is counted exactly; one
 * that names an input (its bytes are not at hand) is held to the model's window, which no honest
 * prompt fills.
 *
 * @module
 */
import assert from "node:assert/strict";
import { promptTokensAtIntake } from "../../proof/prompt_token_check.ts";
import { cidOf } from "../../protocols/cid.ts";
import type { TextJob } from "../../protocols/job.ts";
import { loadFixture } from "./_models.ts";

const f = await loadFixture();
const CONTEXT = f.honest.info.contextLength;

function job(input?: string): TextJob {
  return {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "Count me",
    params: { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [] },
    nonce: "intake",
    ...(input === undefined ? {} : { input }),
  };
}

Deno.test("promptTokensAtIntake: a job without an input is re-counted exactly with the model's tokenizer; one more or one fewer is a prompt_tokens violation; a receipt with no count passes", () => {
  const plain = job();
  const truth = f.honest.tokenizer.encode(plain.prompt).length;
  assert.equal(promptTokensAtIntake({ promptTokens: truth }, plain, f.honest), null);
  assert.deepEqual(promptTokensAtIntake({ promptTokens: truth + 1 }, plain, f.honest), {
    reason: "prompt_tokens",
    position: 0,
    signed: truth + 1,
    counted: truth,
  });
  assert.equal(promptTokensAtIntake({ promptTokens: truth - 1 }, plain, f.honest)?.counted, truth);
  assert.equal(promptTokensAtIntake({}, plain, f.honest), null);
});

Deno.test("promptTokensAtIntake: a job naming an input is held to the model's window: context − 1 passes, the context itself and 100,000 are violations", () => {
  const withInput = job(cidOf(new TextEncoder().encode("Hello")));
  assert.equal(promptTokensAtIntake({ promptTokens: CONTEXT - 1 }, withInput, f.honest), null);
  assert.equal(
    promptTokensAtIntake({ promptTokens: CONTEXT }, withInput, f.honest)?.counted,
    CONTEXT - 1,
  );
  assert.equal(
    promptTokensAtIntake({ promptTokens: 100_000 }, withInput, f.honest)?.reason,
    "prompt_tokens",
  );
});
