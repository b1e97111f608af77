/**
 * `POST /v1/files` and `GET /v1/files/{cid}` (`server/file_routes.ts`): a streamed put, reads whole
 * and by range, the refusals a client can act on, uploads held to a silence deadline and to a
 * node-wide number of open uploads; and a refusal for want of room costs no API-key start.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { fileRoutes, parseRange } from "../../server/file_routes.ts";
import { cidOf } from "../../protocols/cid.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { serve } from "../../server/serve.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { eventually } from "../_helpers/wait.ts";
import { readUntil } from "./_raw_reply.ts";
import type { Hono } from "hono";
import { assertEquals } from "./_assert.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { KeyLimits } from "../../server/key_limits.ts";
import { codesOfRetries, refusingPort } from "./_refusing_port.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

// `POST /v1/files` and `GET /v1/files/{cid}`: a streamed put, reads whole and by range, and
// the refusals a client can act on (bad CID, unknown file, unsatisfiable range, no key).

const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } };

async function setup() {
  const dir = await Deno.makeTempDir();
  const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const system = new ActorSystem({ name: "files-test" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({
        dir,
        chunkSize: 1024,
        ownerKey, // the node can read its private files; HTTP clients still cannot
      }) as never,
  });
  const app = createApp({ inference: {} as InferencePort });
  app.route("/v1", fileRoutes(() => storageGateway(storage)));
  const request = (path: string, init?: RequestInit) => app.request(path, init, LOOPBACK as never);
  return {
    storage,
    request,
    close: async () => {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("files over HTTP: a put answers its CID; the file reads back whole and by range", async () => {
  const t = await setup();
  try {
    const bytes = pseudoRandomBytes(5_000, 3);
    const put = await t.request("/v1/files?name=a.bin", {
      method: "POST",
      body: ReadableStream.from([bytes.subarray(0, 1_000), bytes.subarray(1_000)]),
      headers: { "content-type": "video/mp4" },
    });
    assert.equal(put.status, 201);
    const { cid, size, chunks } = await put.json();
    assert.equal(size, 5_000);
    assert.equal(chunks, 5);
    const whole = await t.request(`/v1/files/${cid}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("content-type"), "video/mp4");
    assert.equal(whole.headers.get("accept-ranges"), "bytes");
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
    const part = await t.request(`/v1/files/${cid}`, { headers: { range: "bytes=1020-2050" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), "bytes 1020-2050/5000");
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(1020, 2051));
    const tail = await t.request(`/v1/files/${cid}`, { headers: { range: "bytes=-10" } });
    assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.subarray(4990));
    const beyond = await t.request(`/v1/files/${cid}`, { headers: { range: "bytes=5000-" } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), "bytes */5000");
    await beyond.body?.cancel();
    // No ETag is sent, so an If-Range (a resumed download of some version) matches nothing: the
    // whole file, never a piece of this one spliced onto another (review s54).
    const resumed = await t.request(`/v1/files/${cid}`, {
      headers: { range: "bytes=1020-2050", "if-range": `"${cid}"` },
    });
    assert.equal(resumed.status, 200);
    assert.deepEqual(new Uint8Array(await resumed.arrayBuffer()), bytes);
  } finally {
    await t.close();
  }
});

Deno.test("files over HTTP: a bad CID is 400, an unknown one 404, a private file 403", async () => {
  const t = await setup();
  try {
    const bad = await t.request("/v1/files/not-a-cid");
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.param, "cid");
    const unknown = await t.request(`/v1/files/${cidOf(new Uint8Array([1, 2, 3]))}`);
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.code, "chunk_not_found");
    const { done } = await t.storage.ask<{ done: Promise<{ cid: string }> }>({
      type: "put",
      source: ReadableStream.from([new Uint8Array([9, 9, 9])]),
      private: true,
    });
    const { cid } = await done;
    const secret = await t.request(`/v1/files/${cid}`);
    assert.equal(secret.status, 403);
    assert.equal((await secret.json()).error.code, "key_required");
  } finally {
    await t.close();
  }
});

Deno.test("parseRange: one range as [start, end); none, several or malformed: the whole file", () => {
  assert.deepEqual(parseRange("bytes=0-0", 10), { start: 0, end: 1 });
  assert.deepEqual(parseRange("bytes=5-", 10), { start: 5, end: 10 });
  assert.deepEqual(parseRange("bytes=5-99", 10), { start: 5, end: 10 });
  assert.deepEqual(parseRange("bytes=-3", 10), { start: 7, end: 10 });
  assert.deepEqual(parseRange("bytes=-30", 10), { start: 0, end: 10 });
  assert.equal(parseRange("bytes=10-", 10), "unsatisfiable");
  assert.equal(parseRange("bytes=-0", 10), "unsatisfiable");
  assert.equal(parseRange("bytes=6-5", 10), undefined); // invalid (RFC 9110 §14.1.1): ignored
  assert.equal(parseRange(undefined, 10), undefined);
  assert.equal(parseRange("bytes=0-1,4-5", 10), undefined);
  assert.equal(parseRange("items=0-1", 10), undefined);
});

/**
 * A storage port over one file in memory, for the file routes over a real socket: what `read`
 * was given (its signal) and whether its stream was cancelled.
 */
function memoryPort(bytes: Uint8Array, piece = 1024) {
  const cid = cidOf(bytes);
  const reads: { signal?: AbortSignal; cancelled: boolean }[] = [];
  const port = {
    put: async (source: ReadableStream<Uint8Array>) => {
      let size = 0;
      for await (const chunk of source) size += chunk.length;
      return { cid, size, chunkCount: 1, tier: "public" as const, tsize: size };
    },
    stat: () =>
      Promise.resolve({
        cid,
        tier: "public" as const,
        size: bytes.length,
        chunkSize: null,
        chunks: [],
      }),
    read: (_cid: string, range: { start: number; end: number; signal?: AbortSignal }) => {
      const read = { signal: range.signal, cancelled: false };
      reads.push(read);
      let at = range.start;
      return Promise.resolve(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (at >= range.end) return controller.close();
            controller.enqueue(bytes.slice(at, Math.min(range.end, at + piece)));
            at += piece;
          },
          cancel() {
            read.cancelled = true;
          },
        }, { highWaterMark: 0 }),
      );
    },
  } as unknown as GatewayStorage;
  return { cid, port, reads };
}

Deno.test("files over a socket: an upload and a download leave no Deno request.signal warning in the operator's log", async () => {
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...a: unknown[]) => void warnings.push(a.join(" "));
  const abort = new AbortController();
  try {
    const bytes = pseudoRandomBytes(5_000, 4);
    const { cid, port } = memoryPort(bytes);
    const app = createApp({ inference: {} as InferencePort });
    app.route("/v1", fileRoutes(() => port));
    const server = serve({ app, signal: abort.signal });
    const put = await fetch(`${server.url}/v1/files?name=a.bin`, {
      method: "POST",
      body: ReadableStream.from([bytes]),
    });
    assert.equal(put.status, 201);
    assert.equal((await put.json()).size, 5_000);
    const get = await fetch(`${server.url}/v1/files/${cid}`);
    assert.equal(get.status, 200);
    assert.deepEqual(new Uint8Array(await get.arrayBuffer()), bytes);
    const part = await fetch(`${server.url}/v1/files/${cid}`, {
      headers: { range: "bytes=10-19" },
    });
    assert.equal(part.status, 206);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(10, 20));
    abort.abort();
    await server.finished;
    assert.deepEqual(warnings.filter((w) => /request\.signal|legacy/.test(w)), []);
  } finally {
    abort.abort();
    console.warn = warn;
  }
});

Deno.test("files over a socket: a client that goes away mid-download cancels the read and aborts its signal", async () => {
  const abort = new AbortController();
  try {
    const bytes = pseudoRandomBytes(4 * 1024 * 1024, 5);
    const { cid, port, reads } = memoryPort(bytes, 16 * 1024);
    const app = createApp({ inference: {} as InferencePort });
    app.route("/v1", fileRoutes(() => port));
    const server = serve({ app, signal: abort.signal });
    const client = new AbortController();
    const get = await fetch(`${server.url}/v1/files/${cid}`, { signal: client.signal });
    const reader = get.body!.getReader();
    assert.ok(!(await reader.read()).done);
    client.abort();
    await reader.closed.catch(() => {});
    const read = await eventually(() => reads[0]?.cancelled && reads[0], "the read's cancel");
    assert.equal(read.signal?.aborted, true, "the signal given to the store is aborted too");
  } finally {
    abort.abort();
  }
});

// Two edges: an upload (`POST /v1/files`) whose client stalls mid-body must not hold the put (its
// pending record, its store) forever; and a job the node refuses for want of room (`too_many_jobs`)
// must not cost the client's API key one of its starts a minute.

const LOOPBACK_ADDR: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };

/**
 * The file routes with an upload deadline. Called through a wider type: the option is new, and
 * the test must fail (not fail to compile) on code that lacks it.
 */
const filesWith = fileRoutes as unknown as (
  storage: () => GatewayStorage | undefined,
  options: { requestBodyTimeoutMs: number; timers: FakeTimers },
) => Hono<EdgeEnv>;

/**
 * Silence deadlines armed (`ms`, the test's `http.requestBodyTimeoutMs`): an upload's minimum-rate
 * window timer (`body_min_rate.ts`) is armed beside each, for as long as the upload lasts.
 */
function silences(timers: FakeTimers, ms: number): number {
  return [...timers.armed.values()].filter((t) => t.ms === ms).length;
}

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

Deno.test("an upload that stalls mid-body is answered 408 request_timeout once no bytes came for http.requestBodyTimeoutMs, its put abandoned and its pending record released", async () => {
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
      { remoteAddr: LOOPBACK_ADDR },
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

Deno.test("an upload is limited by idleness, not length: each chunk that arrives re-arms the deadline, and a slow but steady upload completes with no timer left armed", async () => {
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
    { remoteAddr: LOOPBACK_ADDR },
  ));
  // Each chunk comes just before a deadline would pass: the whole upload takes longer than
  // one deadline, but the client never goes quiet for one.
  for (let i = 0; i < 5; i++) {
    await eventually(() => silences(timers, 5_000) === 1, "a deadline armed while waiting");
    next[i].resolve();
    await turns(10);
  }
  const response = await answer;
  assertEquals(response.status, 201);
  assertEquals((await response.json()).size, 400);
  assertEquals(timers.armed.size, 0, "a deadline timer left armed after the upload");
});

Deno.test("over TCP, an upload that sends its headers and part of its body then stalls gets 408", async () => {
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
    const received = await readUntil(conn, "request_timeout");
    assert(received.startsWith("HTTP/1.1 408"), received);
    // The store was told to stop, not left to find out from a failed read.
    assertEquals(await ended.promise, "aborted");
  } finally {
    conn.close();
    await server.shutdown();
  }
});

const KEY = "a-long-random-key-for-tests-1234";

Deno.test("a client retrying while the node is full (too_many_jobs) keeps its API key's starts a minute: it is told too_many_jobs every time, never rate_limited", async () => {
  const app = createApp({
    inference: refusingPort(() => new VeriflowError("too_many_jobs", "the node has no room")),
    edge: { apiKeys: [KEY], perKeyRequestsPerMinute: 2 },
  });
  const codes = await codesOfRetries(app, KEY);
  assertEquals(codes, Array(5).fill("too_many_jobs"));
});

Deno.test("a start given back for the node's refusal does not lift the key's limit: jobs the node starts, and prompts it refuses, still count", async () => {
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

// Uploads that trickle: an upload is held to a silence deadline and a minimum rate, not a length
// (`upload_min_rate_test.ts` for the rate), so while it lasts (up to a minute for a trickle) it holds
// a chunk's worth of buffered bytes (256 KiB by default), a locked pending record and its
// connection. Many such uploads at once must not grow without bound: past the node's limit of open
// uploads the next is refused at once (429 `too_many_uploads`), and a slot comes back when an upload
// ends, whichever way it ends.

/**
 * The file routes with a limit of open uploads. Called through a wider type: the option is new,
 * and the test must fail (not fail to compile) on code that lacks it.
 */
const slotFilesWith = fileRoutes as unknown as (
  storage: () => GatewayStorage | undefined,
  options: {
    requestBodyTimeoutMs: number;
    timers: FakeTimers;
    maxUploads: number;
    maxUploadsPerKey?: number;
  },
) => Hono<EdgeEnv>;

/** A store whose put reads its source to the end; counts the puts under way. */
function readingStore(): { port: GatewayStorage; open: () => number } {
  let open = 0;
  const port = {
    put: async (source: ReadableStream<Uint8Array>) => {
      open++;
      try {
        let size = 0;
        for await (const chunk of source) size += chunk.byteLength;
        return { cid: "bafkfile", size, chunkCount: 1 };
      } finally {
        open--;
      }
    },
  } as unknown as GatewayStorage;
  return { port, open: () => open };
}

function upload(
  app: Hono<EdgeEnv>,
  body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>,
  key?: string,
) {
  const headers: Record<string, string> = { host: "127.0.0.1" };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  return Promise.resolve(app.fetch(
    new Request("http://127.0.0.1/v1/files", { method: "POST", headers, body }),
    { remoteAddr: LOOPBACK_ADDR },
  ));
}

/** A body that sent its first bytes and then nothing (a trickle between two of its bytes). */
function trickling(): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return new Promise<void>(() => {});
      sent = true;
      controller.enqueue(new Uint8Array(1000));
    },
  }, { highWaterMark: 0 });
}

Deno.test("uploads that trickle hold at most the node's open uploads: the next is refused at once with 429 too_many_uploads, and a slot comes back when one ends (a 408 or a finished put)", async () => {
  const timers = new FakeTimers();
  const { port, open } = readingStore();
  const app = createApp({ inference: {} as InferencePort });
  app.route(
    "/v1",
    slotFilesWith(() => port, { requestBodyTimeoutMs: 5_000, timers, maxUploads: 2 }),
  );
  const held = [upload(app, trickling()), upload(app, trickling())];
  await eventually(
    () => open() === 2 && silences(timers, 5_000) === 2,
    "two uploads under way",
  );
  const refused = upload(app, trickling());
  const answered = tracker(refused);
  await turns(10);
  assert(answered(), "a third trickling upload was taken on past the limit of open uploads");
  const response = await refused;
  const { error } = await response.json();
  assertEquals([response.status, error?.code], [429, "too_many_uploads"]);
  assert(response.headers.get("retry-after") !== null, "a 429 without Retry-After");
  assertEquals(open(), 2, "the refused upload reached the store");
  // The trickling ones go silent past the deadline: 408, and their slots come back.
  timers.fireAll();
  for (const answer of held) assertEquals((await answer).status, 408);
  await eventually(() => open() === 0, "the abandoned puts ended");
  const next = await upload(app, new Uint8Array(300));
  assertEquals(next.status, 201);
  assertEquals((await next.json()).size, 300);
  // And so does a finished one's: as many again fit.
  const again = await Promise.all([upload(app, new Uint8Array(1)), upload(app, new Uint8Array(2))]);
  assertEquals(again.map((r) => r.status), [201, 201]);
  await Promise.all(again.map((r) => r.body?.cancel()));
});

Deno.test("one API key's trickling uploads hold at most its share of the slots: its next is refused (429 too_many_uploads, naming the key's limit) while another key's still fit, and its slot comes back when one ends", async () => {
  const timers = new FakeTimers();
  const { port, open } = readingStore();
  const [first, second] = ["first-key-0123456789abcdef", "second-key-0123456789abcdef"];
  const app = createApp({ inference: {} as InferencePort, edge: { apiKeys: [first, second] } });
  app.route(
    "/v1",
    slotFilesWith(() => port, {
      requestBodyTimeoutMs: 5_000,
      timers,
      maxUploads: 4,
      maxUploadsPerKey: 2,
    }),
  );
  const held = [upload(app, trickling(), first), upload(app, trickling(), first)];
  await eventually(() => open() === 2, "the first key's two uploads under way");
  const third = upload(app, trickling(), first);
  const answered = tracker(third);
  await turns(10);
  assert(answered(), "the key's third trickling upload was taken on past its limit");
  const refused = await third;
  const { error } = await refused.json();
  assertEquals([refused.status, error?.code], [429, "too_many_uploads"]);
  assert(
    /key [0-9a-f]{8}\) has 2 uploads/.test(error?.message),
    `not the key's limit: ${error?.message}`,
  );
  assert(refused.headers.get("retry-after") !== null, "a 429 without Retry-After");
  assertEquals(open(), 2, "the refused upload reached the store");
  // The other key is not shut out by the first one's trickles.
  const other = [upload(app, trickling(), second), upload(app, trickling(), second)];
  await eventually(
    () => open() === 4 && silences(timers, 5_000) === 4,
    "the second key's uploads under way beside the first's",
  );
  // Past the deadline every trickle ends (408) and each key has its slots back.
  timers.fireAll();
  for (const answer of [...held, ...other]) assertEquals((await answer).status, 408);
  await eventually(() => open() === 0, "the abandoned puts ended");
  const again = await Promise.all([
    upload(app, new Uint8Array(1), first),
    upload(app, new Uint8Array(2), first),
  ]);
  assertEquals(again.map((r) => r.status), [201, 201]);
  await Promise.all(again.map((r) => r.body?.cancel()));
});

/** An upload to `app` from `address` (another machine, without a key). */
function uploadFrom(app: Hono<EdgeEnv>, address: string, body: ReadableStream<Uint8Array>) {
  return Promise.resolve(app.fetch(
    new Request("http://node.example/v1/files", { method: "POST", body }),
    { remoteAddr: { transport: "tcp", hostname: address, port: 40000 } },
  ));
}

Deno.test("on an open node one address without a key holds at most its share of the uploads: its next is refused (429 too_many_uploads naming it) while another address's still fit", async () => {
  const timers = new FakeTimers();
  const { port, open } = readingStore();
  const app = createApp({
    inference: {} as InferencePort,
    edge: { allowUnauthenticatedRemote: true },
  });
  app.route(
    "/v1",
    slotFilesWith(() => port, {
      requestBodyTimeoutMs: 5_000,
      timers,
      maxUploads: 4,
      maxUploadsPerKey: 2,
    }),
  );
  const held = [
    uploadFrom(app, "198.51.100.1", trickling()),
    uploadFrom(app, "198.51.100.1", trickling()),
  ];
  await eventually(() => open() === 2, "the address's two uploads under way");
  const third = uploadFrom(app, "198.51.100.1", trickling());
  const answered = tracker(third);
  await turns(10);
  assert(answered(), "the address's third trickling upload was taken on past its share");
  const refused = await third;
  const { error } = await refused.json();
  assertEquals([refused.status, error?.code], [429, "too_many_uploads"]);
  assert(/anonymous 198\.51\.100\.1\) has 2 uploads/.test(error?.message), error?.message);
  assertEquals(open(), 2, "the refused upload reached the store");
  // Another address is not shut out by the first one's trickles.
  const other = [
    uploadFrom(app, "203.0.113.9", trickling()),
    uploadFrom(app, "203.0.113.9", trickling()),
  ];
  await eventually(() => open() === 4, "the other address's uploads under way beside the first's");
  timers.fireAll();
  for (const answer of [...held, ...other]) assertEquals((await answer).status, 408);
  await eventually(() => open() === 0, "the abandoned puts ended");
});

Deno.test("this machine's tools are one client for the uploads' share: past it the next is refused, naming this machine", async () => {
  const timers = new FakeTimers();
  const { port, open } = readingStore();
  const app = createApp({ inference: {} as InferencePort });
  app.route(
    "/v1",
    slotFilesWith(() => port, {
      requestBodyTimeoutMs: 5_000,
      timers,
      maxUploads: 4,
      maxUploadsPerKey: 2,
    }),
  );
  const held = [upload(app, trickling()), upload(app, trickling())];
  await eventually(() => open() === 2, "two uploads of this machine under way");
  const third = upload(app, trickling());
  const answered = tracker(third);
  await turns(10);
  assert(answered(), "this machine's third trickling upload was taken on past its share");
  const refused = await third;
  const { error } = await refused.json();
  assertEquals([refused.status, error?.code], [429, "too_many_uploads"]);
  assert(/loopback\) has 2 uploads/.test(error?.message), error?.message);
  timers.fireAll();
  for (const answer of held) assertEquals((await answer).status, 408);
  await eventually(() => open() === 0, "the abandoned puts ended");
});
