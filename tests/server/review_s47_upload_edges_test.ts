/**
 * Review s47 of two edges: an upload (`POST /v1/files`) whose client stalls mid-body must not
 * hold the put (its pending record, its store) forever; and a job the node refuses for want of
 * room (`too_many_jobs`) must not cost the client's API key one of its starts a minute.
 */
import type { Hono } from "hono";
import { assert, assertEquals } from "./_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { createApp } from "../../server/app.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { KeyLimits } from "../../server/key_limits.ts";
import { serve } from "../../server/serve.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { eventually } from "../_helpers/wait.ts";
import { codesOfRetries, refusingPort } from "./_refusing_port.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

const LOOPBACK: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };

/**
 * The file routes with an upload deadline. Called through a wider type: the option is new, and
 * the test must fail (not fail to compile) on code that lacks it.
 */
const filesWith = fileRoutes as unknown as (
  storage: () => GatewayStorage | undefined,
  options: { requestBodyTimeoutMs: number; timers: FakeTimers },
) => Hono<EdgeEnv>;

/** Files under `dir`, recursively, whose path has a `pending` folder in it. */
async function pendingRecords(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const child = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(child);
      else if (child.includes("/pending/")) found.push(child);
    }
  };
  await walk(dir);
  return found;
}

Deno.test("review s47: an upload that stalls mid-body is answered 408 request_timeout once no bytes came for http.requestBodyTimeoutMs, its put abandoned and its pending record released", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "upload-stall" });
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir, chunkSize: 1024 }) as never,
    });
    const timers = new FakeTimers();
    const app = createApp({ inference: {} as InferencePort });
    app.route(
      "/v1",
      filesWith(() => storageGateway(storage), { requestBodyTimeoutMs: 5_000, timers }),
    );
    const cancelled = Promise.withResolvers<void>();
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        // Three chunks, then nothing: the client stalls and never ends the body.
        if (pulls++ < 3) controller.enqueue(new Uint8Array(1500).fill(pulls));
      },
      cancel() {
        cancelled.resolve();
      },
    }, { highWaterMark: 0 });
    const answer = Promise.resolve(app.fetch(
      new Request("http://127.0.0.1/v1/files?name=big.bin", {
        method: "POST",
        headers: { host: "127.0.0.1" },
        body,
      }),
      { remoteAddr: LOOPBACK },
    ));
    const answered = tracker(answer);
    const bodyCancelled = tracker(cancelled.promise);
    // The put is under way: its pending record holds what it stored so far from GC.
    await eventually(async () => pulls > 3 && (await pendingRecords(dir)).length > 0, "a put");
    await turns(10);
    assert(!answered(), "answered before the deadline");
    const deadline = [...timers.armed.values()].find((t) => t.ms === 5_000);
    assert(deadline !== undefined, "no upload idle deadline armed at http.requestBodyTimeoutMs");
    timers.fireAll();
    await eventually(() => answered(), "an answer past the deadline");
    const response = await answer;
    const { error } = await response.json();
    assertEquals([response.status, error?.code], [408, "request_timeout"]);
    assert(error.message.includes("http.requestBodyTimeoutMs"), error.message);
    assert(bodyCancelled(), "the stalled body was not cancelled");
    // The partial put is let go as an interrupted one is: its pending record is gone.
    await eventually(async () => (await pendingRecords(dir)).length === 0, "the put released");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s47: an upload is limited by idleness, not length: each chunk that arrives re-arms the deadline, and a slow but steady upload completes with no timer left armed", async () => {
  const timers = new FakeTimers();
  const received: number[] = [];
  const port = {
    put: async (source: ReadableStream<Uint8Array>) => {
      for await (const chunk of source) received.push(chunk.byteLength);
      const size = received.reduce((a, b) => a + b, 0);
      return { cid: "bafkfile", size, chunkCount: received.length };
    },
  } as unknown as GatewayStorage;
  const app = createApp({ inference: {} as InferencePort });
  app.route("/v1", filesWith(() => port, { requestBodyTimeoutMs: 5_000, timers }));
  const next = [Promise.withResolvers<void>()];
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await next[sent].promise;
      next.push(Promise.withResolvers<void>());
      if (++sent > 4) controller.close();
      else controller.enqueue(new Uint8Array(100));
    },
  }, { highWaterMark: 0 });
  const answer = Promise.resolve(app.fetch(
    new Request("http://127.0.0.1/v1/files", {
      method: "POST",
      headers: { host: "127.0.0.1" },
      body,
    }),
    { remoteAddr: LOOPBACK },
  ));
  // Each chunk comes just before a deadline would pass: the whole upload takes longer than
  // one deadline, but the client never goes quiet for one.
  for (let i = 0; i < 5; i++) {
    await eventually(() => timers.armed.size === 1, "a deadline armed while waiting");
    next[i].resolve();
    await turns(10);
  }
  const response = await answer;
  assertEquals(response.status, 201);
  assertEquals((await response.json()).size, 400);
  assertEquals(timers.armed.size, 0, "a deadline timer left armed after the upload");
});

Deno.test("review s47: over TCP, an upload that sends its headers and part of its body then stalls gets 408", async () => {
  const timers = new FakeTimers();
  const ended = Promise.withResolvers<string>();
  const port = {
    put: async (source: ReadableStream<Uint8Array>, options: { signal?: AbortSignal }) => {
      try {
        for await (const _ of source) {
          // consumed
        }
        ended.resolve("ended");
      } catch (error) {
        ended.resolve(options.signal?.aborted ? "aborted" : `failed: ${error}`);
        throw error;
      }
      return { cid: "bafkfile", size: 0, chunkCount: 0 };
    },
  } as unknown as GatewayStorage;
  const app = createApp({ inference: {} as InferencePort });
  app.route("/v1", filesWith(() => port, { requestBodyTimeoutMs: 5_000, timers }));
  const server = serve({ app });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(new URL(server.url).port),
  });
  try {
    await conn.write(
      new TextEncoder().encode(
        "POST /v1/files HTTP/1.1\r\nhost: 127.0.0.1\r\n" +
          "content-length: 100000\r\n\r\n" + "x".repeat(1000),
      ),
    );
    await eventually(() => [...timers.armed.values()].some((t) => t.ms === 5_000), "the deadline");
    timers.fireAll();
    const buffer = new Uint8Array(4096);
    let received = "";
    while (!received.includes("request_timeout")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received += new TextDecoder().decode(buffer.subarray(0, n));
    }
    assert(received.startsWith("HTTP/1.1 408"), received);
    // The store was told to stop, not left to find out from a failed read.
    assertEquals(await ended.promise, "aborted");
  } finally {
    conn.close();
    await server.shutdown();
  }
});

const KEY = "a-long-random-key-for-tests-1234";

Deno.test("review s47: a client retrying while the node is full (too_many_jobs) keeps its API key's starts a minute: it is told too_many_jobs every time, never rate_limited", async () => {
  const app = createApp({
    inference: refusingPort(() => new VeriflowError("too_many_jobs", "the node has no room")),
    edge: { apiKeys: [KEY], perKeyRequestsPerMinute: 2 },
  });
  const codes = await codesOfRetries(app, KEY);
  assertEquals(codes, Array(5).fill("too_many_jobs"));
});

Deno.test("review s47: a start given back for the node's refusal does not lift the key's limit: jobs the node starts, and prompts it refuses, still count", async () => {
  let now = 0;
  let refusal: string | undefined = "too_many_jobs";
  const gateway = new InferenceGateway({
    inference: refusingPort(() =>
      refusal === undefined ? undefined : new VeriflowError(refusal, "the node has no room")
    ),
    keyLimits: new KeyLimits({ concurrency: 100, requestsPerMinute: 2, now: () => now }),
  });
  const client = { label: "key k", keyId: "k" };
  const start = () =>
    gateway.startText({ prompt: "hi", params: {} as never }, { client }).then(
      () => "started",
      (error) => (error as VeriflowError).code,
    );
  assertEquals(await start(), "too_many_jobs");
  assertEquals(await start(), "too_many_jobs");
  refusal = "no_worker"; // no peer to forward to: the node's refusal too
  assertEquals(await start(), "no_worker");
  refusal = undefined;
  assertEquals([await start(), await start(), await start()], [
    "started",
    "started",
    "rate_limited",
  ]);
  // A refusal of the client's own prompt is not the node's: it costs a start as before.
  now += 30_000; // one start refilled
  refusal = "context_length_exceeded";
  assertEquals(await start(), "context_length_exceeded");
  refusal = undefined;
  assertEquals(await start(), "rate_limited");
});
