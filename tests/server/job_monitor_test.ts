/**
 * The job monitor (`server/job_monitor.ts`) and the operator's view of jobs: a bounded tail of each
 * job's text, listeners told only when asked, and job log lines that count in English.
 */
import assert from "node:assert/strict";
import { type JobEvent, JobMonitor, MAX_KEPT_TEXT } from "../../server/job_monitor.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import "./_assert.ts";
import { eventually, startTestNode } from "./_fixtures.ts";

// The job monitor keeps a bounded tail of each job's text, and tells listeners only when asked.

/** A port whose one job streams `count` tokens "t0 ", "t1 ", … and ends. */
function portOf(count: number): InferencePort {
  return {
    submit: () => {
      const tokens = ReadableStream.from(
        Array.from({ length: count }, (_, i): StreamedToken => ({
          index: i,
          tokenId: i,
          text: `t${i} `,
        })),
      );
      const summary = {
        jobId: "j",
        finishReason: "length",
        usage: { promptTokens: 1, completionTokens: count },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      } as JobSummary;
      let ended: (s: JobSummary) => void = () => {};
      const done = new Promise<JobSummary>((resolve) => ended = resolve);
      const handle = {
        jobId: "j",
        model: { cid: "m", name: "m", kind: "text" },
        promptTokens: 1,
        tokens: tokens.pipeThrough(
          new TransformStream({ flush: () => ended(summary) }),
        ),
        done,
        cancel: () => {},
      } as unknown as InferenceHandle;
      return Promise.resolve(handle);
    },
    models: () => Promise.resolve([]),
    stats: () => Promise.resolve(emptyInferenceStats()),
  };
}

Deno.test("a long job's text is kept as its last MAX_KEPT_TEXT characters, live and after it ends", async () => {
  const monitor = new JobMonitor();
  const handle = await monitor.wrap(portOf(5_000)).submit({} as TextJob);
  let all = "";
  let maxLive = 0;
  for await (const token of handle.tokens) {
    all += token.text;
    const [live] = monitor.snapshot().live;
    maxLive = Math.max(maxLive, live.text.length);
    assert.equal(live.text, all.slice(-MAX_KEPT_TEXT));
  }
  await handle.done;
  assert.ok(maxLive <= MAX_KEPT_TEXT);
  const [finished] = monitor.snapshot().recent;
  assert.equal(finished.text, all.slice(-MAX_KEPT_TEXT));
  assert.equal(finished.tokens, 5_000);
});

Deno.test("listeners hear each token; with none, the job still counts", async () => {
  const monitor = new JobMonitor();
  const heard: JobEvent[] = [];
  const stop = monitor.subscribe((event) => heard.push(event));
  const one = await monitor.wrap(portOf(3)).submit({} as TextJob);
  for await (const _ of one.tokens) { /* read */ }
  await one.done;
  assert.deepEqual(heard.map((e) => e.type), [
    "job_started",
    "job_token",
    "job_token",
    "job_token",
    "job_ended",
  ]);
  stop();
  const two = await monitor.wrap(portOf(4)).submit({} as TextJob);
  for await (const _ of two.tokens) { /* read */ }
  await two.done;
  assert.equal(heard.length, 5, "nobody listening: nothing built");
  assert.equal(monitor.snapshot().recent[0].tokens, 4);
});

/** A port whose one job has ended before its requester reads: `count` tokens wait in a queue. */
function endedPortOf(count: number): InferencePort {
  return {
    ...portOf(count),
    submit: () =>
      Promise.resolve({
        jobId: "e",
        model: { cid: "m", name: "m", kind: "text" },
        promptTokens: 1,
        tokens: ReadableStream.from(
          Array.from({ length: count }, (_, i): StreamedToken => ({
            index: i,
            tokenId: i,
            text: `t${i} `,
          })),
        ),
        done: Promise.resolve({
          jobId: "e",
          finishReason: "length",
          usage: { promptTokens: 1, completionTokens: count },
          timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        } as JobSummary),
        cancel: () => {},
      } as unknown as InferenceHandle),
  };
}

Deno.test("a job's end is heard after its requester took the last token, even when the job ended first; a requester that stops reading ends it there", async () => {
  const monitor = new JobMonitor();
  const heard: JobEvent[] = [];
  monitor.subscribe((event) => heard.push(event));
  const types = () => heard.map((e) => e.type === "job_token" ? `token${e.index}` : e.type);
  const handle = await monitor.wrap(endedPortOf(3)).submit({} as TextJob);
  await handle.done; // the job is over; its tokens wait for a slow requester
  const reader = handle.tokens.getReader();
  for (let i = 0; i < 3; i++) {
    await reader.read();
    assert.deepEqual(types().at(-1), `token${i}`, "nothing heard ahead of the requester");
  }
  assert.equal((await reader.read()).done, true);
  await Promise.resolve();
  assert.deepEqual(types(), ["job_started", "token0", "token1", "token2", "job_ended"]);
  const [ended] = heard.filter((e) => e.type === "job_ended") as Extract<
    JobEvent,
    { type: "job_ended" }
  >[];
  assert.equal(ended.job.tokens, 3);
  // A requester that cancels after one token: the end comes then, with that one token.
  heard.length = 0;
  const left = await monitor.wrap(endedPortOf(3)).submit({} as TextJob);
  const leftReader = left.tokens.getReader();
  await leftReader.read();
  await left.done;
  assert.deepEqual(types(), ["job_started", "token0"]);
  await leftReader.cancel();
  await Promise.resolve();
  assert.deepEqual(types(), ["job_started", "token0", "job_ended"]);
  assert.equal(monitor.snapshot().recent[0].tokens, 1);
});

/** A port whose one job streams until cancelled through its handle, then ends `cancelled`. */
function endlessPortOf(): InferencePort {
  return {
    ...portOf(0),
    submit: () => {
      let i = 0;
      const done = Promise.withResolvers<JobSummary>();
      const tokens = new ReadableStream<StreamedToken>({
        pull: (c) => c.enqueue({ index: i, tokenId: i, text: `t${i++} ` }),
      }, { highWaterMark: 0 });
      return Promise.resolve({
        jobId: "c",
        model: { cid: "m", name: "m", kind: "text" },
        promptTokens: 1,
        tokens,
        done: done.promise,
        // As the ports' handles: end the job there (its stream, locked by the monitor, is not
        // this cancel's to close).
        cancel: () =>
          done.resolve({
            jobId: "c",
            finishReason: "cancelled",
            usage: { promptTokens: 1, completionTokens: i },
            timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
          }),
      } as unknown as InferenceHandle);
    },
  };
}

Deno.test("a job cancelled through its handle, its stream left unread (an SSE client cut off), leaves the live list and its end is heard", async () => {
  const monitor = new JobMonitor();
  const ended: string[] = [];
  monitor.subscribe((e) => e.type === "job_ended" && ended.push(e.job.state));
  const handle = await monitor.wrap(endlessPortOf()).submit({} as TextJob);
  const reader = handle.tokens.getReader();
  await reader.read();
  await reader.read();
  handle.cancel();
  assert.equal((await handle.done).finishReason, "cancelled");
  await Promise.resolve();
  assert.deepEqual(monitor.snapshot().live, []);
  assert.deepEqual(ended, ["cancelled"]);
  assert.equal(monitor.snapshot().recent[0].tokens, 2);
});

// The operator's job lines count in English: "after 1 token", "1 prompt token", not "1 tokens" (a
// WebSocket closed after its first token logged `job 5c99936d90c1 cancelled after 1 tokens in 17
// ms`).

Deno.test("a one-token job's lines say 'token', and a many-token job's 'tokens'", async () => {
  const lines: string[] = [];
  const node = await startTestNode({ log: (line) => lines.push(line) });
  try {
    for (const max_tokens of [1, 3]) {
      const response = await fetch(`${node.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "a", max_tokens }),
      });
      const body = await response.text();
      assert(response.ok, body);
    }
    await eventually(() => lines.filter((line) => line.includes(" ended (")).length === 2);
    const said = lines.join("\n");
    assert(/ ended \(length\) after 1 token in \d+ ms/.test(said), said);
    assert(/ ended \(length\) after 3 tokens in \d+ ms/.test(said), said);
    assert(/\(completions, loopback, 1 prompt token\)/.test(said), said);
    assert(!/\b1 (prompt )?tokens\b/.test(said), said);
  } finally {
    await node.close();
  }
});
