/**
 * One client's request bodies hold at most a share of the node's body budget
 * (`http.maxBufferedBodyBytes`, `server/body_limit.ts`), never less than one largest body, and a
 * body that slows below a minimum rate is cut before `http.requestBodyTimeoutMs`
 * (`server/body_min_rate.ts`). Review s74 openai, F1: one client's 32 bodies stalled one byte
 * short of their end took the whole budget, and every other client got 429
 * `too_many_request_bodies` for the 60 s of the body deadline, again and again.
 */
import { assert, assertEquals } from "./_assert.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

const KEY_A = "test-key-aaaaaaaaaaaaaaaa";
const KEY_B = "test-key-bbbbbbbbbbbbbbbb";
const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } } as const;
/** The body deadline in these tests: far from the rate window, so each timer is told by its ms. */
const BODY_TIMEOUT_MS = 600_000;
/** What ends each test body: a chat request (the bytes before it are JSON whitespace). */
const CHAT = '{"messages":[{"role":"user","content":"hi"}]}';

/** An app whose port records each job and refuses it (429 too_many_jobs): a job made is seen. */
function recordingNode(edge: Record<string, unknown>) {
  const jobs: TextJob[] = [];
  const port: InferencePort = {
    submit: (job: TextJob) => {
      jobs.push(job);
      return Promise.reject(new VeriflowError("too_many_jobs", "recorded"));
    },
    models: () => Promise.resolve([{ cid: "bafkshare", name: "m", kind: "text" }] as never),
    stats: () => Promise.resolve({} as InferenceStats),
  };
  const timers = new FakeTimers();
  const options = {
    inference: port,
    edge: { requestBodyTimeoutMs: BODY_TIMEOUT_MS, ...edge },
    timers,
  };
  const app = createApp(options);
  /**
   * A chat request whose body sends `pad` spaces (then `more`'s), not ended yet: the request comes
   * with `end`.
   */
  const send = (key: string | undefined, pad: number) => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const cancelled = Promise.withResolvers<void>();
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        c.enqueue(new TextEncoder().encode(" ".repeat(pad)));
      },
      cancel() {
        cancelled.resolve();
      },
    });
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (key !== undefined) headers.authorization = `Bearer ${key}`;
    const answer: Promise<Response> = Promise.resolve(app.fetch(
      new Request("http://127.0.0.1/v1/chat/completions", { method: "POST", headers, body }),
      LOOPBACK,
    ));
    const answered = tracker(answer);
    return {
      answer,
      answered,
      cancelled: tracker(cancelled.promise),
      more: (bytes: number) => controller.enqueue(new TextEncoder().encode(" ".repeat(bytes))),
      end: () => {
        if (answered()) return; // refused: its body was cancelled
        controller.enqueue(new TextEncoder().encode(CHAT));
        controller.close();
      },
    };
  };
  /** Fire the armed timers other than the body deadline (the rate's windows); how many fired. */
  const fireWindows = () => {
    let fired = 0;
    for (const [handle, timer] of [...timers.armed]) {
      if (timer.ms === BODY_TIMEOUT_MS) continue;
      timers.armed.delete(handle);
      timer.callback();
      fired++;
    }
    return fired;
  };
  return { jobs, send, timers, fireWindows };
}

Deno.test("one API key's stalled bodies fill only its share of http.maxBufferedBodyBytes: its next body is 429 too_many_request_bodies naming its share, another key's request is still taken", async () => {
  // Budget 16 KiB of 4 KiB bodies: a key's share is a quarter, 4 KiB, one largest body.
  const node = recordingNode({
    apiKeys: [KEY_A, KEY_B],
    maxRequestBytes: 4096,
    maxBufferedBodyBytes: 16384,
  });
  // Key A stalls a body of 3000 bytes, then tries more (before the fix: five fit, 15000 held).
  const stalled = node.send(KEY_A, 3000);
  await turns(10);
  assert(!stalled.answered(), "a stalled body was answered");
  const hogs = [];
  for (let i = 0; i < 4; i++) {
    hogs.push(node.send(KEY_A, 3000));
    await turns(10);
  }
  // Each would take key A past its 4 KiB share: every one is refused, at once.
  assertEquals(hogs.map((hog) => hog.answered()), [true, true, true, true]);
  for (const hog of hogs) {
    const response = await hog.answer;
    const { error } = await response.json();
    assertEquals([response.status, error.code], [429, "too_many_request_bodies"]);
    assertEquals(response.headers.get("retry-after"), "1");
    assert(error.message.includes("your share"), error.message);
  }

  // Key B's body of 3000 bytes, sent whole, is read and becomes a job.
  const other = node.send(KEY_B, 3000);
  other.end();
  const answer = await other.answer;
  assertEquals(
    [answer.status, (await answer.json()).error.code],
    [429, "too_many_jobs"],
    "key B's request was refused at the body budget, not made a job",
  );
  assertEquals(node.jobs.length, 1);

  // Key A's own stalled body, ended, is read as always: its share came back with the refusal.
  stalled.end();
  assertEquals((await stalled.answer).status, 429);
  assertEquals(node.jobs.length, 2, "key A's finished body became a job");
});

Deno.test("a client alone may always send a body of http.maxRequestBytes, even where a quarter of the budget is less", async () => {
  // A quarter of 8 KiB is 2 KiB, under the 4 KiB largest body: the share is one largest body.
  const node = recordingNode({ maxRequestBytes: 4096, maxBufferedBodyBytes: 8192 });
  const big = node.send(undefined, 4000);
  await turns(10);
  big.end();
  const response = await big.answer;
  assertEquals([response.status, (await response.json()).error.code], [429, "too_many_jobs"]);
  assertEquals(node.jobs.length, 1);
});

Deno.test("a body that stalls after its first 64 KiB is cut with 408 request_body_too_slow once its grace (two 10 s rate windows) is spent, long before http.requestBodyTimeoutMs", async () => {
  const node = recordingNode({});
  const stalled = node.send(undefined, 100_000);
  await turns(10);
  const windowMs = [...node.timers.armed.values()].find((t) => t.ms !== BODY_TIMEOUT_MS)?.ms;
  assertEquals(windowMs, 10_000, "no rate window of 10 s armed beside the body deadline");
  // The first window brought its 100 KB: not too slow yet.
  node.fireWindows();
  await turns(10);
  assert(!stalled.answered(), "cut in a window that brought 100 KB");
  // The next two brought nothing: the grace for a pause.
  for (let window = 0; window < 2; window++) {
    assertEquals(node.fireWindows(), 1);
    await turns(10);
    assert(!stalled.answered(), "cut within the grace for a pause");
  }
  // A third window with nothing is past it.
  assertEquals(node.fireWindows(), 1);
  await turns(10);
  assert(stalled.answered(), "a stalled body still held after its grace");
  const response = await stalled.answer;
  const { error } = await response.json();
  assertEquals([response.status, error.code], [408, "request_body_too_slow"]);
  assert(error.message.includes("slower than"), error.message);
  assert(stalled.cancelled(), "the stalled body was not cancelled");
  assertEquals(node.jobs.length, 0);
});

Deno.test("a slow body that keeps bringing 16 KiB per 10 s, or one that holds under 64 KiB, is not cut by the rate: only the body deadline ends it", async () => {
  const node = recordingNode({});
  const steady = node.send(undefined, 70_000);
  const small = node.send(undefined, 60_000);
  await turns(10);
  for (let window = 0; window < 5; window++) {
    steady.more(16 * 1024);
    await turns(10);
    node.fireWindows();
    await turns(10);
  }
  assert(!steady.answered(), "a body at the minimum rate was cut");
  assert(!small.answered(), "a body under 64 KiB was cut by the rate");
  steady.end();
  assertEquals((await steady.answer).status, 429, "the steady body was read whole, a job made");
  assertEquals(node.jobs.length, 1);
  // The deadline still ends the small stalled one.
  node.timers.fireAll();
  await turns(10);
  const response = await small.answer;
  const { error } = await response.json();
  assertEquals([response.status, error.code], [408, "request_timeout"]);
  assert(error.message.includes("http.requestBodyTimeoutMs"), error.message);
});
