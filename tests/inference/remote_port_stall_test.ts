/**
 * The remote port's stall timeout: a worker that started a job and then sends nothing, its
 * connection alive, has the job cancelled and the stream failed with `worker_stalled` once
 * the timeout passes while the requester waits; a worker slow but progressing is never cut.
 * The port's timers are a fake clock the tests advance: no real time is waited on.
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import {
  RemoteInferencePort,
  serveInference,
  WorkerStalledError,
} from "../../inference/remote_port.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { eventually, params, ScriptedModel } from "../server/_fixtures.ts";
import { StallingPort, type StallingPortOptions } from "./_stalling_port.ts";

/** The stall timeout under test (on the fake clock, so its size costs nothing). */
const STALL_MS = 10_000;

/** `n` tokens, the last one ending the job. */
function script(n: number): StreamedToken[] {
  return Array.from({ length: n }, (_, i) => ({
    index: i,
    tokenId: 97 + i,
    text: String.fromCharCode(97 + i),
    finishReason: i === n - 1 ? "length" : undefined,
  }));
}

const served = new ScriptedModel().info;
const job: TextJob = {
  kind: "text",
  model: served.cid,
  prompt: "x",
  params: params({ maxTokens: 8 }),
  nonce: "stall",
};

/** A worker serving `port`, and a remote port to it on the fake clock. */
async function withWorker(
  port: StallingPort,
  body: (remote: RemoteInferencePort, timers: ManualTimers, workerKey: string) => Promise<void>,
): Promise<void> {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [client, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity, protocols }),
  ]);
  serveInference(worker, port);
  const timers = new ManualTimers();
  try {
    await body(
      new RemoteInferencePort(client, { timers, stallTimeoutMs: STALL_MS }),
      timers,
      toHex(identity.publicKey),
    );
  } finally {
    await client.close();
    await worker.close();
  }
}

/** Whether `promise` has settled (after the turns the fake clock already let run). */
function settledFlag(promise: Promise<unknown>): { settled: boolean } {
  const flag = { settled: false };
  promise.then(() => flag.settled = true, () => flag.settled = true);
  return flag;
}

function stalling(tokens: StreamedToken[], options?: StallingPortOptions): StallingPort {
  return new StallingPort(served, tokens, options);
}

Deno.test("a worker that started a job and then sends nothing fails the tokens with worker_stalled once the stall timeout passes, naming the worker and the time, and the job is cancelled on the worker", async () => {
  // Two tokens, then silence: the script goes on, the permits do not.
  const port = stalling(script(6), { permits: 2 });
  await withWorker(port, async (remote, timers, workerKey) => {
    const handle = await remote.submit(job);
    const reader = handle.tokens.getReader();
    assertEquals((await reader.read()).value?.index, 0);
    assertEquals((await reader.read()).value?.index, 1);
    const third = reader.read();
    const flag = settledFlag(third);
    await timers.advance(STALL_MS - 1);
    assert(!flag.settled, "cut before the stall timeout");
    await timers.advance(1);
    const error = await assertRejects(() => third, WorkerStalledError);
    assertEquals(error.code, "worker_stalled");
    assert(error.message.includes(workerKey.slice(0, 16)), error.message);
    assert(error.message.includes(`${STALL_MS} ms`), error.message);
    const summary = await handle.done;
    assertEquals(summary.finishReason, "error");
    assertEquals(summary.error?.code, "worker_stalled");
    assertEquals(summary.usage.completionTokens, 2);
    await eventually(() => port.cancelled === 1, "the worker's cancel");
    assertEquals((await remote.stats()).jobsFailed, 1);
  });
});

Deno.test("a worker slow but progressing, each token just under the stall timeout after the last, is never cut: the job ends normally", async () => {
  const tokens = script(5);
  const port = stalling(tokens, { permits: 0 });
  await withWorker(port, async (remote, timers) => {
    const handle = await remote.submit(job);
    const reader = handle.tokens.getReader();
    const got: StreamedToken[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const next = reader.read();
      const flag = settledFlag(next);
      await timers.advance(STALL_MS - 1);
      assert(!flag.settled, "no token was let out yet");
      port.release(1);
      const { done, value } = await next;
      assert(!done, `token ${i}`);
      got.push(value);
    }
    assert(timers.now() > STALL_MS, "the job took longer than one stall timeout");
    assertEquals(got.map((t) => t.index), tokens.map((t) => t.index));
    assert((await reader.read()).done);
    const summary = await handle.done;
    assertEquals(summary.finishReason, "length");
    assertEquals(summary.error, undefined);
    assertEquals(port.cancelled, 0);
  });
});

Deno.test("a requester that does not read is not a stall: the timeout runs only while it waits for the worker", async () => {
  const port = stalling(script(3));
  await withWorker(port, async (remote, timers) => {
    const handle = await remote.submit(job);
    await timers.advance(5 * STALL_MS);
    const got = [];
    for await (const token of handle.tokens) got.push(token.index);
    assertEquals(got, [0, 1, 2]);
    assertEquals((await handle.done).finishReason, "length");
    assertEquals(port.cancelled, 0);
  });
});
