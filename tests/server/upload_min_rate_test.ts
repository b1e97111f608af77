/**
 * An upload (`POST /v1/files`, `server/file_routes.ts`) is held to a minimum rate
 * (`UPLOAD_MIN_RATE`, `server/body_min_rate.ts`) beside its silence deadline. Before, it was held
 * by silence only: a client sending one byte every 59 s kept its upload open for ever, and 32 such
 * clients (8 of one key) held every upload slot of the node (429 `too_many_uploads` for everyone).
 * Time here is fake: the rate's 10 s windows and the 60 s silence deadline fire when a test says.
 */
import { assert, assertEquals } from "./_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import type { Hono } from "hono";
import type { EdgeEnv } from "../../server/client_access.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { readUntil } from "./_raw_reply.ts";

/** `http.requestBodyTimeoutMs` here: the default, so the silence and the rate are the node's. */
const SILENCE_MS = 60_000;
/** The rate's window (`BODY_RATE_WINDOW_MS`), written out: the test must fail, not fail to build. */
const WINDOW_MS = 10_000;
const KIB = 1024;
const LOOPBACK_ADDR: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };

/** A store whose put reads its source to the end, or waits while `busy` is set (a slow disk). */
function readingStore() {
  let open = 0;
  const state = { busy: undefined as Promise<void> | undefined };
  const port = {
    put: async (source: ReadableStream<Uint8Array>) => {
      open++;
      try {
        let size = 0;
        for await (const chunk of source) {
          size += chunk.byteLength;
          if (state.busy !== undefined) await state.busy;
        }
        return { cid: "bafkfile", size, chunkCount: 1 };
      } finally {
        open--;
      }
    },
  } as unknown as GatewayStorage;
  return { port, open: () => open, state };
}

/**
 * An upload to `app` whose body the test writes: `send(bytes)` (kept if the upload is over),
 * `window()` ends one rate window (only those timers: never the silence deadline), `close()`.
 */
function upload(app: Hono<EdgeEnv>, timers: FakeTimers) {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const cancelled = Promise.withResolvers<void>();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      cancelled.resolve();
    },
  });
  const answer = Promise.resolve(app.fetch(
    new Request("http://127.0.0.1/v1/files?name=big.bin", {
      method: "POST",
      headers: { host: "127.0.0.1" },
      body,
    }),
    { remoteAddr: LOOPBACK_ADDR },
  ));
  const answered = tracker(answer);
  return {
    answer,
    answered,
    bodyCancelled: tracker(cancelled.promise),
    send: async (bytes: number) => {
      if (!answered()) controller.enqueue(new Uint8Array(bytes).fill(7));
      await turns(10);
    },
    window: async () => {
      assert(
        [...timers.armed.values()].some((t) => t.ms === WINDOW_MS),
        "no minimum-rate window armed for the upload",
      );
      timers.fireFor(WINDOW_MS);
      await turns(10);
    },
    close: async () => {
      controller.close();
      await turns(10);
    },
  };
}

/** The file routes over `port` with fake timers and one upload slot per `maxUploads`. */
function filesApp(port: GatewayStorage, timers: FakeTimers, maxUploads = 32): Hono<EdgeEnv> {
  const app = createApp({ inference: {} as InferencePort });
  app.route(
    "/v1",
    fileRoutes(() => port, { requestBodyTimeoutMs: SILENCE_MS, timers, maxUploads }),
  );
  return app;
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

Deno.test("an upload that trickles a byte every 59 s is cut within a minute with 408 request_body_too_slow, its partial put abandoned (no pending record, the gc collects its chunks) and its upload slot freed", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "upload-trickle" });
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir, chunkSize: 1024 }) as never,
    });
    const timers = new FakeTimers();
    const app = filesApp(storageGateway(storage), timers, 1);
    const trickler = upload(app, timers);
    await trickler.send(3000); // two chunks stored: the put holds them by its pending record
    await eventually(async () => (await pendingRecords(dir)).length > 0, "a put under way");
    // Then a byte just within each silence deadline: windows end at 10, 20 ... 60 s.
    for (let second = 10; second <= 50; second += 10) await trickler.window();
    assert(!trickler.answered(), "cut within its grace of five windows (50 s)");
    await trickler.send(1); // at 59 s: the silence deadline is met again
    await trickler.window(); // 60 s: 3001 bytes against 6 × 16 KiB, past a grace of 80 KiB
    await eventually(() => trickler.answered(), "an upload trickling a byte a minute cut");
    const response = await trickler.answer;
    const { error } = await response.json();
    assertEquals([response.status, error?.code], [408, "request_body_too_slow"]);
    assert(error.message.includes("slower than 1.6 KiB/s"), error.message);
    assert(
      !error.message.includes("after its first"),
      `no free bytes for an upload: ${error.message}`,
    );
    assert(trickler.bodyCancelled(), "the trickling body was not cancelled");
    // Abandoned as an interrupted put: nothing pinned, so the gc may take what it stored.
    await eventually(async () => (await pendingRecords(dir)).length === 0, "the put released");
    const gc = unwrapReply<{ removed: number }>(await storage.ask({ type: "gc", graceMs: -1 }));
    assert(gc.removed > 0, "the gc collected none of the abandoned put's chunks");
    assertEquals(timers.armed.size, 0, "a timer of the cut upload left armed");
    // Its only slot is free: the next upload is taken on and stored.
    const next = upload(app, timers);
    await next.send(500);
    await next.close();
    const stored = await next.answer;
    assertEquals(stored.status, 201);
    assertEquals((await stored.json()).size, 500);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an upload at a modest honest rate (4 KiB/s) that pauses 50 s, twice, is stored whole; one that pauses a window longer is cut", async () => {
  const timers = new FakeTimers();
  const { port } = readingStore();
  const app = filesApp(port, timers);
  const honest = upload(app, timers);
  const pattern = [40, 40, 40, 0, 0, 0, 0, 0, 40, 40, 40, 40, 0, 0, 0, 0, 0, 40];
  for (const kib of pattern) {
    if (kib > 0) await honest.send(kib * KIB);
    await honest.window();
  }
  assert(!honest.answered(), "an honest upload cut by its pauses");
  await honest.send(40 * KIB);
  await honest.close();
  const response = await honest.answer;
  assertEquals(response.status, 201);
  assertEquals((await response.json()).size, 40 * KIB * 9);
  // The boundary: the same link paused six windows (60 s) has spent its grace.
  const stalled = upload(app, timers);
  for (const kib of [40, 40, 40, 0, 0, 0, 0, 0]) {
    if (kib > 0) await stalled.send(kib * KIB);
    await stalled.window();
  }
  assert(!stalled.answered(), "cut before its grace was spent");
  await stalled.window();
  await eventually(() => stalled.answered(), "the sixth empty window cuts");
  assertEquals((await (await stalled.answer).json()).error?.code, "request_body_too_slow");
});

Deno.test("a store slow to write what it read is not taken for a slow client: a window that ends while nobody reads is not judged, and the rate's clock waits for the next read", async () => {
  const timers = new FakeTimers();
  const { port, state } = readingStore();
  const app = filesApp(port, timers);
  const client = upload(app, timers);
  const disk = Promise.withResolvers<void>();
  state.busy = disk.promise; // the store stops reading after the first chunk, as long as it likes
  await client.send(64 * KIB);
  await client.window(); // ends while the store writes: not judged
  const rateWindows = () => [...timers.armed.values()].filter((t) => t.ms === WINDOW_MS).length;
  assertEquals(rateWindows(), 0, "the rate's clock ran on while nobody read the body");
  assert(!client.answered(), "the client was cut for its store's pace");
  state.busy = undefined;
  disk.resolve();
  await turns(10);
  assertEquals(rateWindows(), 1, "the rate's clock did not start again with the next read");
  // Its credit is whole: five windows without a byte are still within the grace.
  for (let window = 0; window < 5; window++) await client.window();
  assert(!client.answered(), "cut within its grace after the store's pause");
  await client.send(64 * KIB);
  await client.close();
  const response = await client.answer;
  assertEquals(response.status, 201);
  assertEquals((await response.json()).size, 128 * KIB);
});

Deno.test("a put that fails before it has read its body leaves no timer of the upload armed", async () => {
  const timers = new FakeTimers();
  const full = Promise.withResolvers<void>();
  const port = {
    put: async (source: ReadableStream<Uint8Array>) => {
      const reader = source.getReader();
      await reader.read(); // one chunk, then the store gives up (a full disk) and reads no more
      await full.promise;
      throw new Error("disk full");
    },
  } as unknown as GatewayStorage;
  const app = filesApp(port, timers);
  const client = upload(app, timers);
  await client.send(1000);
  assert(
    [...timers.armed.values()].some((t) => t.ms === WINDOW_MS),
    "no minimum-rate window armed for the upload",
  );
  full.resolve();
  await eventually(() => client.answered(), "the failed put answered");
  assertEquals((await client.answer).status, 500);
  assertEquals(timers.armed.size, 0, "a timer of the failed upload left armed");
});

Deno.test("the silence limit still applies beside the rate: an upload that sent fast and then nothing is cut at http.requestBodyTimeoutMs with 408 request_timeout", async () => {
  const timers = new FakeTimers();
  const { port, open } = readingStore();
  const app = filesApp(port, timers);
  const client = upload(app, timers);
  await client.send(1024 * KIB); // 1 MiB at once: its credit is full
  for (let second = 10; second <= 50; second += 10) await client.window();
  assert(!client.answered(), "cut by the rate within its grace");
  const silence = [...timers.armed.values()].filter((t) => t.ms === SILENCE_MS);
  assertEquals(silence.length, 1, "no silence deadline armed beside the rate");
  timers.fireFor(SILENCE_MS); // 60 s without a byte
  await eventually(() => client.answered(), "an answer at the silence deadline");
  const response = await client.answer;
  const { error } = await response.json();
  assertEquals([response.status, error?.code], [408, "request_timeout"]);
  assert(error.message.includes("http.requestBodyTimeoutMs"), error.message);
  await eventually(() => open() === 0, "the abandoned put ended");
  assertEquals(timers.armed.size, 0, "a timer of the cut upload left armed");
});

Deno.test("over TCP, an upload that sends part of its body and then trickles gets 408 request_body_too_slow and its store is told to stop", async () => {
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
  const server = serve({ app: filesApp(port, timers) });
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
    await eventually(() => [...timers.armed.values()].some((t) => t.ms === SILENCE_MS), "a read");
    for (let window = 0; window < 6; window++) {
      await conn.write(new TextEncoder().encode("x")); // a byte a window: still a trickle
      await eventually(() => [...timers.armed.values()].some((t) => t.ms === SILENCE_MS), "a read");
      assert([...timers.armed.values()].some((t) => t.ms === WINDOW_MS), "no rate window armed");
      timers.fireFor(WINDOW_MS);
      await turns(10);
    }
    const received = await readUntil(conn, "request_body_too_slow");
    assert(received.startsWith("HTTP/1.1 408"), received);
    assert(received.includes("request_body_too_slow"), received);
    assertEquals(await ended.promise, "aborted");
  } finally {
    conn.close();
    await server.shutdown();
  }
});
