/**
 * The read slots of the gateway and `GET /v1/files/{cid}` (`server/read_slots.ts`): how many reads
 * one client (an API key, else an address) and the whole node may have under way at once, 429
 * `too_many_reads` past either, and a slot given back when its answer's body is read whole, fails,
 * is cancelled, or its client goes away. Bodies are held by not reading them, and a body that
 * fails or never ends is a port whose read stream the test controls: no timing is involved.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { ApiKeys } from "../../server/api_keys.ts";
import { createApp } from "../../server/app.ts";
import type { EdgeConfig } from "../../server/edge_config.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { ReadSlots } from "../../server/read_slots.ts";
import { serve } from "../../server/serve.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { eventually } from "../_helpers/wait.ts";
import { parsePrometheusText } from "./_prometheus_text.ts";

/** Bytes of the stored file: many chunks of {@link CHUNK}, so its body is more than one piece. */
const FILE_BYTES = 64 * 1024;
const CHUNK = 1024;
const KEY = "read-slots-test-key-0123456789";

/** What the test does to the store's read streams. */
type ReadPlan = "as stored" | "fail after the first piece" | "stall after the first piece";

async function setup(
  options: { edge?: Partial<EdgeConfig>; maxReads?: number; perClient?: number } = {},
) {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "read-slots-test" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir, chunkSize: CHUNK }) as never,
  });
  const inner = storageGateway(storage);
  const bytes = new Uint8Array(FILE_BYTES).map((_, i) => i % 251);
  const { cid } = await inner.put(ReadableStream.from([bytes]), { name: "f.bin" });
  const plan = { read: "as stored" as ReadPlan, cancelled: 0 };
  const port = (): GatewayStorage => ({
    ...inner,
    // Share "s1" opens the stored file (its root is the one block this test asks of it).
    share: (id) =>
      Promise.resolve(id === "s1" ? { v: 1, id, cid, expiresAt: null, createdAt: 0 } : undefined),
    read: async (file, range, opts) => {
      const stream = await inner.read(file, range, opts);
      // A read of one chunk or less is the gateway's sniff of the first bytes: left as stored.
      if (plan.read === "as stored" || range.end - range.start <= CHUNK) return stream;
      const reader = stream.getReader();
      let pieces = 0;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (pieces++ === 0) {
            const { value } = await reader.read();
            controller.enqueue(value!);
          } else if (plan.read === "fail after the first piece") {
            controller.error(new Error("the disk failed mid-read"));
          } else await new Promise(() => {}); // never more: only a cancel ends this body
        },
        cancel(reason) {
          plan.cancelled++;
          return reader.cancel(reason);
        },
      }, { highWaterMark: 0 });
    },
  });
  const edge = { allowUnauthenticatedRemote: true, ...options.edge };
  const reads = new ReadSlots({
    maxReads: options.maxReads ?? 3,
    maxReadsPerClient: options.perClient ?? 2,
    keys: ApiKeys.fromConfig({ apiKeys: edge.apiKeys ?? [] }),
  });
  const app = createApp({ inference: {} as InferencePort, edge });
  app.route("/v1", fileRoutes(port, { reads }));
  app.route("/", gatewayRoutes(port, { reads }));
  /** A request from `address` (a client without a key unless `init` sends one). */
  const from = (address: string, path: string, init?: RequestInit) =>
    app.request(path, init, { remoteAddr: { transport: "tcp", hostname: address, port: 1 } });
  return {
    app,
    cid,
    bytes,
    plan,
    reads,
    from,
    close: async () => {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** The error body of a refusal, asserted to be 429 `too_many_reads` with a `Retry-After`. */
async function refusal(response: Response): Promise<string> {
  const body = await response.json();
  assert.equal(response.status, 429, JSON.stringify(body));
  assert.equal(body.error.code, "too_many_reads");
  assert.equal(response.headers.get("retry-after"), "1");
  return body.error.message;
}

Deno.test("a client past its reads under way gets 429 too_many_reads naming its per-client limit, counted over /ipfs and /v1/files together, while another client is served", async () => {
  const t = await setup({ maxReads: 8, perClient: 2 });
  const held: Response[] = [];
  try {
    held.push(await t.from("198.51.100.1", `/ipfs/${t.cid}`));
    held.push(await t.from("198.51.100.1", `/v1/files/${t.cid}`));
    for (const response of held) assert.equal(response.status, 200);
    assert.equal(t.reads.open, 2);
    for (const path of [`/ipfs/${t.cid}`, `/v1/files/${t.cid}`, `/ipfs/${t.cid}?format=car`]) {
      const message = await refusal(await t.from("198.51.100.1", path));
      assert.match(message, /per-client limit of 2/, path);
      assert.match(message, /198\.51\.100\.1/, path);
    }
    // Another client is not held back by the first one's reads.
    const other = await t.from("203.0.113.9", `/ipfs/${t.cid}`);
    assert.equal(other.status, 200);
    assert.deepEqual(new Uint8Array(await other.arrayBuffer()), t.bytes);
  } finally {
    for (const response of held) await response.body?.cancel();
    await t.close();
  }
});

Deno.test("past the node-wide reads under way every client gets 429 too_many_reads naming the node-wide limit", async () => {
  const t = await setup({ maxReads: 3, perClient: 2 });
  const held: Response[] = [];
  try {
    for (const address of ["198.51.100.1", "198.51.100.1", "198.51.100.2"]) {
      const response = await t.from(address, `/ipfs/${t.cid}`);
      assert.equal(response.status, 200);
      held.push(response);
    }
    const message = await refusal(await t.from("203.0.113.9", `/ipfs/${t.cid}`));
    assert.match(message, /node-wide limit of 3/);
  } finally {
    for (const response of held) await response.body?.cancel();
    await t.close();
  }
});

Deno.test("a read's slot comes back when its body has been read whole", async () => {
  const t = await setup({ perClient: 1 });
  try {
    const first = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    assert.equal(first.status, 200);
    await refusal(await t.from("198.51.100.1", `/ipfs/${t.cid}`));
    assert.deepEqual(new Uint8Array(await first.arrayBuffer()), t.bytes);
    assert.equal(t.reads.open, 0);
    const next = await t.from("198.51.100.1", `/v1/files/${t.cid}`);
    assert.equal(next.status, 200);
    assert.deepEqual(new Uint8Array(await next.arrayBuffer()), t.bytes);
  } finally {
    await t.close();
  }
});

Deno.test("a read's slot comes back when its body fails mid-way", async () => {
  const t = await setup({ perClient: 1 });
  try {
    t.plan.read = "fail after the first piece";
    const first = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    assert.equal(first.status, 200);
    assert.equal(t.reads.open, 1);
    await assert.rejects(first.arrayBuffer());
    assert.equal(t.reads.open, 0);
    t.plan.read = "as stored";
    const next = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    assert.equal(next.status, 200);
    await next.arrayBuffer();
  } finally {
    await t.close();
  }
});

Deno.test("a read's slot comes back when its body is cancelled, and the store's read is cancelled with it", async () => {
  const t = await setup({ perClient: 1 });
  try {
    t.plan.read = "stall after the first piece";
    const first = await t.from("198.51.100.1", `/v1/files/${t.cid}`);
    assert.equal(first.status, 200);
    assert.equal(t.reads.open, 1);
    await first.body!.cancel();
    assert.equal(t.reads.open, 0);
    assert.equal(t.plan.cancelled, 1);
    t.plan.read = "as stored";
    const next = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    assert.equal(next.status, 200);
    await next.arrayBuffer();
  } finally {
    await t.close();
  }
});

Deno.test("a client that goes away from a read served over HTTP gives its slot back", async () => {
  const t = await setup({ perClient: 1 });
  const server = serve({ app: t.app });
  try {
    // Its body never ends by itself: only the client going away can end it.
    t.plan.read = "stall after the first piece";
    const abort = new AbortController();
    const first = await fetch(`${server.url}/ipfs/${t.cid}`, { signal: abort.signal });
    assert.equal(first.status, 200);
    const reader = first.body!.getReader();
    assert.ok((await reader.read()).value!.length > 0);
    assert.equal(t.reads.open, 1);
    const second = await fetch(`${server.url}/ipfs/${t.cid}`);
    await refusal(second);
    abort.abort();
    await reader.closed.catch(() => {});
    await eventually(() => t.reads.open === 0, "the slot given back");
    assert.equal(t.plan.cancelled, 1);
    t.plan.read = "as stored";
    const next = await fetch(`${server.url}/ipfs/${t.cid}`);
    assert.equal(next.status, 200);
    assert.deepEqual(new Uint8Array(await next.arrayBuffer()), t.bytes);
  } finally {
    await server.shutdown();
    await t.close();
  }
});

Deno.test("answers without a body to hold (HEAD, 304, an error) give their slot back at once", async () => {
  const t = await setup({ perClient: 1 });
  try {
    const head = await t.from("198.51.100.1", `/ipfs/${t.cid}`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(t.reads.open, 0);
    const notModified = await t.from("198.51.100.1", `/ipfs/${t.cid}`, {
      headers: { "if-none-match": `"${t.cid}"` },
    });
    assert.equal(notModified.status, 304);
    assert.equal(t.reads.open, 0);
    const bad = await t.from("198.51.100.1", "/ipfs/not-a-cid");
    // Its body (a few bytes of JSON) left unread holds nothing.
    assert.equal(bad.status, 400);
    assert.equal(t.reads.open, 0);
    const read = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    assert.equal(read.status, 200);
    await read.arrayBuffer();
  } finally {
    await t.close();
  }
});

Deno.test("a gateway reader with a valid API key is counted by its key, one without by its address", async () => {
  const t = await setup({ perClient: 1, maxReads: 8, edge: { apiKeys: [KEY] } });
  const held: Response[] = [];
  try {
    const withKey = { headers: { authorization: `Bearer ${KEY}` } };
    const keyed = await t.from("198.51.100.1", `/ipfs/${t.cid}`, withKey);
    assert.equal(keyed.status, 200);
    held.push(keyed);
    // The same key from another address is the same client, at its limit.
    assert.match(
      await refusal(await t.from("203.0.113.9", `/ipfs/${t.cid}`, withKey)),
      /key [0-9a-f]{8}/,
    );
    // The same address without the key (or with one the node does not know) is its own client.
    const keyless = await t.from("198.51.100.1", `/ipfs/${t.cid}`, {
      headers: { authorization: "Bearer not-a-key-of-this-node-0123" },
    });
    assert.equal(keyless.status, 200);
    held.push(keyless);
  } finally {
    for (const response of held) await response.body?.cancel();
    await t.close();
  }
});

Deno.test("too_many_reads refusals are counted in veriflow_http_refused_total", async () => {
  const t = await setup({ perClient: 1 });
  try {
    const held = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    await refusal(await t.from("198.51.100.1", `/ipfs/${t.cid}`));
    await refusal(await t.from("198.51.100.1", `/v1/files/${t.cid}`));
    await held.body!.cancel();
    const metrics = await t.from("127.0.0.1", "/metrics");
    const series = parsePrometheusText(await metrics.text()).find((s) =>
      s.name === "veriflow_http_refused_total" && s.labels.code === "too_many_reads"
    );
    assert.equal(series?.value, 2);
  } finally {
    await t.close();
  }
});

Deno.test("a share link's block read holds a slot of its client like the gateway's other reads", async () => {
  const t = await setup({ perClient: 1 });
  try {
    const share = await t.from("198.51.100.1", `/share/s1/${t.cid}`);
    assert.equal(share.status, 200);
    assert.equal(t.reads.open, 1);
    assert.match(
      await refusal(await t.from("198.51.100.1", `/ipfs/${t.cid}`)),
      /per-client limit of 1/,
    );
    await share.arrayBuffer();
    assert.equal(t.reads.open, 0);
    const next = await t.from("198.51.100.1", `/share/s1/${t.cid}`);
    assert.equal(next.status, 200);
    await next.arrayBuffer();
  } finally {
    await t.close();
  }
});
