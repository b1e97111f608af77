/**
 * What a faulty or hostile `/v1/stream` server cannot make the client believe (red-team review
 * s74): a `done` that counts other tokens than came (an answer cut on its way), more tokens than
 * the node would ever send for the job, frames of the wrong shape or over the frame limit. Each is
 * a protocol error with its own code, `stream_protocol_error`, and what was wrong in `details`,
 * told apart from a dropped connection or the caller's own `close()`.
 */
import {
  MAX_FRAME_CHARS,
  StreamClient,
  StreamClosedError,
  StreamRequestError,
} from "../../client/stream_client.ts";
import { DEFAULT_GENERATION_PARAMS, GENERATION_LIMITS } from "../../protocols/job.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { doneFrame, framesServer, startFrame, tokenFrame } from "./_stub_servers.ts";
import { assertProtocolError, jobAgainst } from "./_job_against.ts";

const three = (id: string) => [0, 1, 2].map((index) => tokenFrame(id, index, `t${index} `));

Deno.test("a done that counts other tokens than came (an answer cut on its way) fails the job with stream_protocol_error, after the tokens that came", async () => {
  for (const counted of [10, 2]) {
    const { seen, error } = await jobAgainst((id) => [
      startFrame(id),
      ...three(id),
      doneFrame(id, counted),
    ]);
    assertEquals(seen, ["t0 ", "t1 ", "t2 "]);
    assertProtocolError(error, "done", `a done that counts ${counted} tokens after 3`);
  }
});

// More than came only after the client's cancel: tests/client/stream_client_done_agrees_test.ts.
Deno.test("a cancelled job's done never counts fewer tokens than came", async () => {
  const cancelled = (counted: number) => (id: string) => [
    startFrame(id),
    ...three(id),
    doneFrame(id, counted, "cancelled"),
  ];
  const whole = await jobAgainst(cancelled(3));
  assertEquals(whole.error, undefined);
  assertEquals((whole.done as { finish_reason: string }).finish_reason, "cancelled");
  const short = await jobAgainst(cancelled(2));
  assertProtocolError(short.error, "done", "a done that counts 2 tokens after 3");
});

Deno.test("a done whose prompt_tokens is not its start's, or whose total_tokens is not prompt plus completion, fails the job with stream_protocol_error; a cancelled job's too (review s74 verify1, F5)", async () => {
  const billed = (usage: Record<string, number>, finish = "length") => (id: string) => {
    const done = doneFrame(id, 3, finish);
    done.usage = { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4, ...usage };
    return [startFrame(id), ...three(id), done];
  };
  // The review's case: 2 tokens sent, a billion billed.
  const billion = await jobAgainst(billed({ prompt_tokens: 999_999_000, total_tokens: 1e9 + 3 }));
  assertEquals(billion.seen, ["t0 ", "t1 ", "t2 "]);
  assertProtocolError(
    billion.error,
    "done",
    "a done that counts 999999000 prompt tokens after a start that counted 1",
  );
  for (const finish of ["length", "cancelled"]) {
    const total = await jobAgainst(billed({ total_tokens: 1_000_000_000 }, finish));
    assertProtocolError(
      total.error,
      "done",
      "a done whose total_tokens 1000000000 is not its prompt_tokens 1 plus its completion_tokens 3",
    );
  }
  // Counts that agree pass, a cancelled job's included.
  const honest = await jobAgainst(billed({}));
  assertEquals(honest.error, undefined);
  const cancelled = await jobAgainst(billed({}, "cancelled"));
  assertEquals(cancelled.error, undefined);
});

Deno.test("without max_tokens (or with null), a job takes the node's default max_tokens and no more", async () => {
  const most = DEFAULT_GENERATION_PARAMS.maxTokens;
  const tokens = (n: number) => (id: string) => [
    startFrame(id),
    ...Array.from({ length: n }, (_, index) => tokenFrame(id, index)),
    doneFrame(id, n),
  ];
  for (const request of [{ prompt: "x" }, { prompt: "x", max_tokens: null }]) {
    const whole = await jobAgainst(tokens(most), request);
    assertEquals([whole.seen.length, whole.error], [most, undefined]);
    const over = await jobAgainst(tokens(most + 1), request);
    assertEquals(over.seen.length, most);
    assertProtocolError(over.error, "token", `the node's default max_tokens (${most}`);
  }
});

Deno.test("a max_tokens over the node's most takes the node's most, GENERATION_LIMITS.maxTokens, and no more", async () => {
  const most = GENERATION_LIMITS.maxTokens;
  const { seen, error } = await jobAgainst((id) => [
    startFrame(id),
    ...Array.from({ length: most + 1 }, (_, index) => tokenFrame(id, index)),
    doneFrame(id, most + 1),
  ], { prompt: "x", max_tokens: 2 * most });
  assertEquals(seen.length, most);
  assertProtocolError(error, "token", `the node's most max_tokens (${most}`);
});

// Each a frame of the wrong shape: the field it names, and the frame.
const MALFORMED: [string, string, (id: string) => Record<string, unknown>][] = [
  ["error", "code", (id) => ({ type: "error", id, code: { x: 1 }, message: "m" })],
  ["error", "code", (id) => ({ type: "error", id, code: "bad\x1b[2J", message: "m" })],
  ["error", "code", (id) => ({ type: "error", id, code: "a".repeat(65), message: "m" })],
  ["error", "message", (id) => ({ type: "error", id, code: "internal_error", message: 42 })],
  ["error", "retry_after_s", (id) => ({
    type: "error",
    id,
    code: "rate_limited",
    message: "m",
    retry_after_s: "soon",
  })],
  ["done", "usage is missing", (id) => ({ ...doneFrame(id, 0), usage: undefined })],
  ["done", "usage.completion_tokens", (id) => ({
    ...doneFrame(id, 0),
    usage: { prompt_tokens: 1, completion_tokens: "0", total_tokens: 1 },
  })],
  ["done", "timings", (id) => ({ ...doneFrame(id, 0), timings: null })],
  ["done", "finish_reason", (id) => ({ ...doneFrame(id, 0), finish_reason: "\x1b]0;x\x07" })],
  ["done", "job_id", (id) => ({ ...doneFrame(id, 0), job_id: 7 })],
  ["token", "text", (id) => ({ ...tokenFrame(id, 0), text: { evil: 1 } })],
  ["token", "index", (id) => ({ ...tokenFrame(id, 0), index: "0" })],
  ["queued", "position", (id) => ({ type: "queued", id, position: "\x1b]52;c;ZXZpbA==\x07" })],
];

Deno.test("a frame of the wrong shape (an error's code not a short snake_case string, a done without usage, a token's text not a string, ...) fails the job as a protocol error naming the frame type and the field", async () => {
  for (const [type, field, frame] of MALFORMED) {
    const { error } = await jobAgainst((id) =>
      type === "start" || type === "queued" || type === "error"
        ? [startFrame(id), frame(id), doneFrame(id, 0)]
        : [startFrame(id), frame(id)]
    );
    assertProtocolError(error, type, field);
  }
});

Deno.test("a protocol error whose account is longer than a close frame's reason may be (123 bytes) still fails the job and closes the socket", async () => {
  const good = { token_id: 1, text: "a", logprob: -1 };
  const { error } = await jobAgainst((id) => [
    startFrame(id),
    {
      ...tokenFrame(id, 0),
      logprob: -1,
      top_logprobs: [...Array(12).fill(good), { ...good, token_id: -1 }],
    },
  ]);
  assertProtocolError(error, "token", "top_logprobs[12].token_id is not a whole number");
  // The client's close reason is `protocol error: ` and this account: too long for a close frame.
  const reason = `protocol error: ${(error as StreamClosedError).details.protocolError}`;
  assert(new TextEncoder().encode(reason).length > 123, reason);
});

Deno.test("a start of the wrong shape fails the job's start as a protocol error", async () => {
  await using server = framesServer((id) => [{ ...startFrame(id), prompt_tokens: -1 }]);
  using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  const job = client.infer({ prompt: "x" });
  assertProtocolError(await job.start.catch((e) => e), "start", "prompt_tokens");
});

Deno.test("a frame of a type this client does not know (a later node's) is ignored", async () => {
  const { seen, error } = await jobAgainst((id) => [
    startFrame(id),
    tokenFrame(id, 0, "A"),
    { type: "progress", id, anything: { x: 1 } },
    doneFrame(id, 1),
  ]);
  assertEquals([seen, error], [["A"], undefined]);
});

Deno.test("a frame of any type over MAX_FRAME_CHARS (an error with a huge message) is a protocol error naming the limit; a real error's few KiB come whole", async () => {
  const huge = await jobAgainst((id) => [
    startFrame(id),
    { type: "error", id, code: "internal_error", message: "A".repeat(MAX_FRAME_CHARS) },
  ]);
  assertProtocolError(huge.error, undefined, `limit of ${MAX_FRAME_CHARS} characters`);
  // A relayed worker's message is at most 1,024 characters, each escaped to six at most.
  const message = "\u0001".repeat(1024);
  const real = await jobAgainst((id) => [
    startFrame(id),
    { type: "error", id, code: "worker_failed", message },
  ]);
  assert(real.error instanceof StreamRequestError, String(real.error));
  assertEquals([real.error.code, real.error.message], ["worker_failed", message]);
});

Deno.test("a protocol error has its own code and details, told apart from the caller's close(), for the jobs it fails and those started after", async () => {
  await using server = framesServer((id) => [startFrame(id), "<html>not json</html>"]);
  using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  const error = await client.infer({ prompt: "x" }).done.catch((e) => e);
  assertProtocolError(error, undefined, "a frame that is not JSON");
  const later = await client.infer({ prompt: "x" }).done.catch((e) => e);
  assertProtocolError(later, undefined, "a frame that is not JSON");

  await using quiet = framesServer((id) => [startFrame(id)]);
  using closing = await StreamClient.connect(`ws://127.0.0.1:${quiet.addr.port}`);
  const job = closing.infer({ prompt: "x" });
  await job.start;
  closing.close();
  const closed = await job.done.catch((e) => e);
  assert(closed instanceof StreamClosedError, String(closed));
  assertEquals([closed.code, closed.details.protocolError], ["stream_closed", undefined]);
});
