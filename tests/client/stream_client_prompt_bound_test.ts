/**
 * A node's count of the prompt's tokens is its tokenizer's, and the client takes it as it is
 * (review s79 F1): a tokenizer whose normalizer lengthens text (NFKC counts the 6-byte "㌀㌀" as
 * 24 tokens) honestly counts more than the prompt's UTF-8 bytes, so the byte bound
 * (`protocols/prompt_token_bound.ts`) is no ground to call the node faulty, nor to fail the other
 * jobs on its socket. What still holds the count: its `done` must repeat it (`doneProblem`).
 */
import { StreamClient } from "../../client/stream_client.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { promptTokenBound } from "../../protocols/prompt_token_bound.ts";
import { doneFrame, framesServer, startFrame, tokenFrame } from "./_stub_servers.ts";
import { assertProtocolError, jobAgainst } from "./_job_against.ts";

/** What an NFKC tokenizer counts for "㌀㌀" (each "㌀" becomes "アパート": 12 byte tokens). */
const NFKC_COUNT = 24;

/** A job whose `start` counts `startTokens` prompt tokens and whose `done` bills `doneTokens`. */
function billing(startTokens: number, doneTokens = startTokens) {
  return (id: string) => [
    { ...startFrame(id), prompt_tokens: startTokens },
    tokenFrame(id, 0),
    {
      ...doneFrame(id, 1),
      usage: { prompt_tokens: doneTokens, completion_tokens: 1, total_tokens: doneTokens + 1 },
    },
  ];
}

Deno.test("a start that counts more prompt tokens than the prompt has bytes (a normalizer that lengthens text) is taken as it is, and its done bills it", async () => {
  assert(NFKC_COUNT > promptTokenBound("㌀㌀", 0));
  const got = await jobAgainst(billing(NFKC_COUNT), { prompt: "㌀㌀", max_tokens: 4 });
  assertEquals(got.error, undefined);
  assertEquals(got.seen, ["A"]);
  assertEquals((got.done as { usage: { prompt_tokens: number } }).usage.prompt_tokens, NFKC_COUNT);
});

Deno.test("a job whose start counts more prompt tokens than the prompt's bytes does not fail the other jobs on its socket", async () => {
  await using server = framesServer(billing(NFKC_COUNT));
  using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  const long = client.infer({ prompt: "㌀㌀", max_tokens: 4 });
  const plain = client.infer({ prompt: "hi", max_tokens: 4 });
  const [first, second] = await Promise.all([long.done, plain.done]);
  assertEquals(first.usage.prompt_tokens, NFKC_COUNT);
  assertEquals(second.usage.prompt_tokens, NFKC_COUNT);
  assertEquals((await long.start).prompt_tokens, NFKC_COUNT);
});

Deno.test("a done that bills another prompt count than its start told is still a protocol error", async () => {
  const got = await jobAgainst(billing(NFKC_COUNT, NFKC_COUNT + 1), {
    prompt: "㌀㌀",
    max_tokens: 4,
  });
  assertEquals(got.done, undefined);
  assertProtocolError(got.error, "done", `counts ${NFKC_COUNT + 1} prompt tokens`);
});

Deno.test("the bound is one token per UTF-8 byte of the prompt, one more, and the input's bytes", () => {
  assertEquals(promptTokenBound("", 0), 1);
  assertEquals(promptTokenBound("hi", 0), 3);
  assertEquals(promptTokenBound("é", 0), 3);
  assertEquals(promptTokenBound("hi", 10), 13);
  // A job that leaves its input no room (negative) adds nothing.
  assertEquals(promptTokenBound("hi", -5), 3);
});
