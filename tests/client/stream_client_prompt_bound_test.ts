/**
 * A server cannot bill prompt tokens the prompt cannot have (review s77 vclient, F1): a `start`
 * whose `prompt_tokens` is above the bound the router applies to a worker's claim (one token per
 * UTF-8 byte of the prompt, one more, and the input's room when the job names an input:
 * `protocols/prompt_token_bound.ts`) is a protocol error, however its `done` agrees with it.
 */
import { assertEquals } from "../server/_assert.ts";
import { MAX_JOB_INPUT_BYTES, promptTokenBound } from "../../protocols/prompt_token_bound.ts";
import { doneFrame, startFrame, tokenFrame } from "./_stub_servers.ts";
import { assertProtocolError, jobAgainst } from "./_job_against.ts";

/** A job for `prompt` whose `start` and `done` both bill `promptTokens` for it. */
function billing(promptTokens: number) {
  return (id: string) => [
    { ...startFrame(id), prompt_tokens: promptTokens },
    tokenFrame(id, 0),
    {
      ...doneFrame(id, 1),
      usage: { prompt_tokens: promptTokens, completion_tokens: 1, total_tokens: promptTokens + 1 },
    },
  ];
}

const INPUT_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

Deno.test("a start that counts more prompt tokens than the prompt can have is a protocol error, even when its done agrees", async () => {
  const inflated = await jobAgainst(billing(999_999_999), { prompt: "hi", max_tokens: 4 });
  assertEquals(inflated.done, undefined);
  assertProtocolError(inflated.error, "start", "999999999 prompt tokens");
  // "hi" is 2 bytes: 3 is the most, and one past it is refused too.
  const onePast = await jobAgainst(billing(4), { prompt: "hi", max_tokens: 4 });
  assertProtocolError(onePast.error, "start", "at most 3");
});

Deno.test("a start at the prompt's bound passes; a multi-byte prompt counts its UTF-8 bytes", async () => {
  const atBound = await jobAgainst(billing(3), { prompt: "hi", max_tokens: 4 });
  assertEquals(atBound.error, undefined);
  assertEquals((atBound.done as { usage: { prompt_tokens: number } }).usage.prompt_tokens, 3);
  // "é" is 2 bytes in UTF-8, 1 UTF-16 unit: 3 tokens is within its bound.
  const accented = await jobAgainst(billing(3), { prompt: "é", max_tokens: 4 });
  assertEquals(accented.error, undefined);
});

Deno.test("a job that names an input may count the input's room more prompt tokens, and no more", async () => {
  const most = promptTokenBound("hi", MAX_JOB_INPUT_BYTES);
  const request = { prompt: "hi", max_tokens: 4, input: INPUT_CID };
  const within = await jobAgainst(billing(most), request);
  assertEquals(within.error, undefined);
  const past = await jobAgainst(billing(most + 1), request);
  assertProtocolError(past.error, "start", `${most + 1} prompt tokens`);
});

Deno.test("the bound is one token per UTF-8 byte of the prompt, one more, and the input's bytes", () => {
  assertEquals(promptTokenBound("", 0), 1);
  assertEquals(promptTokenBound("hi", 0), 3);
  assertEquals(promptTokenBound("é", 0), 3);
  assertEquals(promptTokenBound("hi", 10), 13);
  // A job that leaves its input no room (negative) adds nothing.
  assertEquals(promptTokenBound("hi", -5), 3);
});
