/**
 * An SSE idle cut-off (`http.clientIdleTimeoutMs`) ends the body with a typed `client_idle` error
 * whose stack is its one line, naming the job (review s77 sse, F2): `Deno.serve` prints the error
 * of every errored body on the node's stderr, where an untyped `Error` wrote an 8-line stack of a
 * timer per cut, naming no job, into the node's log lines (`--log-format json`).
 */
import { assert, assertEquals } from "./_assert.ts";
import { sseAnswer } from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import type { InferenceHandle } from "../../inference/inference_port.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

const JOB_ID = "cd".repeat(32);
const IDLE_MS = 100;

Deno.test("SSE idle cut-off: the body errors with a typed client_idle error naming the job, its stack one line, and the job is cancelled", async () => {
  let cancels = 0;
  const handle: InferenceHandle = {
    jobId: JOB_ID,
    model: { cid: "bafkidle", name: "idle", kind: "text" },
    promptTokens: 1,
    tokens: ReadableStream.from(
      Array.from({ length: 5 }, (_, i) => ({ index: i, tokenId: 0x61, text: "a" })),
    ),
    done: new Promise(() => {}),
    cancel: () => void cancels++,
  };
  const timers = new ManualTimers();
  const stats = new EdgeStats();
  const reader = sseAnswer(handle, COMPLETION_SHAPE, {
    stops: [],
    logprobs: false,
    includeUsage: false,
    idleTimeoutMs: IDLE_MS,
    timers,
    stats,
    computesOnEventLoop: false,
  }).body!.getReader();
  await reader.read(); // one event, then the client reads no more
  await timers.advance(IDLE_MS);
  const error = await reader.read().then(() => undefined, (e) => e);
  assert(error instanceof Error, `the body errored: ${error}`);
  assertEquals((error as Error & { code?: string }).code, "client_idle");
  assert(error.message.includes(JOB_ID), error.message);
  assertEquals(error.stack, `${error.name}: ${error.message}`);
  assertEquals([cancels, stats.idleTimeouts], [1, 1]);
});

Deno.test("SSE idle cut-off over a real server: the node's stderr gets one line naming the job, no stack trace; the job is cancelled and counted", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-no-legacy-abort",
      new URL("./_sse_idle_cut_child.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await child.output();
  const err = new TextDecoder().decode(stderr);
  assertEquals(code, 0, err);
  const result = JSON.parse(new TextDecoder().decode(stdout));
  assertEquals([result.cancelled, result.idleCuts], [true, 1]);
  const lines = err.split("\n").filter((line) => line.trim() !== "");
  assertEquals(lines.filter((line) => /^\s+at /.test(line)), [], err);
  assertEquals(lines.length, 1, err);
  assert(lines[0].includes("ClientIdleError"), err);
  assert(lines[0].includes(result.jobId), err);
});
