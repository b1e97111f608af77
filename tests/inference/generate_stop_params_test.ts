/**
 * `TextModel.generate` checks `params.stop` itself, with the limits every job has on the wire
 * (`GENERATION_LIMITS`): a direct caller gets a typed `invalid_generation_params` before any
 * compute, never a `TypeError`, a silently dropped entry, or more or longer stop sequences than
 * a job may carry.
 */
import assert from "node:assert/strict";
import { InvalidGenerationParamsError } from "../../inference/errors.ts";
import { GENERATION_LIMITS } from "../../protocols/job.ts";
import { collect, params, tinyModel } from "./_fixtures.ts";

const { model, cleanup } = await tinyModel();
Deno.test.afterAll(cleanup);

const PROMPT = model.tokenizer.encode("Once upon a time");
const { maxStopSequences, maxStopChars } = GENERATION_LIMITS;

for (
  const [label, stop] of [
    ["a string instead of an array", "x"],
    ["null", null],
    ["a number among the strings", ["a", 42]],
    ["an empty sequence (it would stop every generation at once)", [""]],
    [
      `more than ${maxStopSequences} sequences`,
      Array.from({ length: maxStopSequences + 1 }, String),
    ],
    [`a sequence longer than ${maxStopChars} characters`, ["x".repeat(maxStopChars + 1)]],
  ] as const
) {
  Deno.test(`generate refuses stop as ${label} with invalid_generation_params, before any compute`, () => {
    const runs = model.runCount;
    assert.throws(
      () => model.generate(PROMPT, params({ stop: stop as unknown as string[] })),
      (e: unknown) => {
        assert.ok(e instanceof InvalidGenerationParamsError, `${(e as Error)?.constructor?.name}`);
        assert.equal(e.code, "invalid_generation_params");
        assert.match(e.message, /stop/);
        return true;
      },
    );
    assert.equal(model.runCount, runs);
  });
}

Deno.test("generate takes stop at the limits, and no stop at all, as before", async () => {
  const limit = Array.from({ length: maxStopSequences }, (_, i) => String(i).repeat(maxStopChars));
  const free = await collect(model.generate(PROMPT, params({ maxTokens: 8 })));
  const atLimits = await collect(model.generate(PROMPT, params({ maxTokens: 8, stop: limit })));
  const { stop: _stop, ...withoutStop } = params({ maxTokens: 8 });
  const absent = await collect(
    model.generate(PROMPT, withoutStop as unknown as ReturnType<typeof params>),
  );
  assert.deepEqual(atLimits.map((c) => c.tokenId), free.map((c) => c.tokenId));
  assert.deepEqual(absent.map((c) => c.tokenId), free.map((c) => c.tokenId));
});

Deno.test("a stop list changed by its caller after generate returns does not change the generation", async () => {
  const free = await collect(model.generate(PROMPT, params({ maxTokens: 12 })));
  const text = free.map((c) => c.text).join("");
  const stop: string[] = [];
  const stream = model.generate(PROMPT, params({ maxTokens: 12, stop }));
  stop.push(text.slice(2, 4)); // would end the generation early if it were read live
  const chunks = await collect(stream);
  assert.deepEqual(chunks.map((c) => c.tokenId), free.map((c) => c.tokenId));
});
