/**
 * `POST /v1/files` and `GET /v1/files/{cid}`: a streamed put, reads whole and by range, and
 * the refusals a client can act on (bad CID, unknown file, unsatisfiable range, no key).
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
  assert.equal(parseRange("bytes=6-5", 10), "unsatisfiable");
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
