/**
 * The read slots of the gateway and `GET /v1/files/{cid}` (`server/read_slots.ts`): how many reads
 * one client (an API key, else an address) and the whole node may have under way at once, 429
 * `too_many_reads` past either, the shares kept for key holders and for a client's first read, a
 * client's reads past its limit waiting their turn, and a slot given back when its answer's body
 * is read whole, fails, is cancelled, its client goes away, or its client takes nothing for the
 * idle time. Bodies are held by not reading them, and a body that fails or never ends is a port
 * whose read stream the test controls; the idle cut-off and the waits run on fake timers that
 * fire only when a test says.
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
import { EdgeStats } from "../../server/edge_stats.ts";
import { serve } from "../../server/serve.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { parsePrometheusText } from "./_prometheus_text.ts";

/** Bytes of the stored file: many chunks of {@link CHUNK}, so its body is more than one piece. */
const FILE_BYTES = 64 * 1024;
const CHUNK = 1024;
const KEY = "read-slots-test-key-0123456789";
const OTHER_KEY = "read-slots-test-key-abcdefghij";
/**
 * The constants the fix names, written out: a test run against code without them must fail on
 * its assertions, not fail to build. `READ_IDLE_TIMEOUT_MS`, `READ_WAIT_MS`, `READ_RETRY_AFTER_S`.
 */
const IDLE_MS = 60_000;
const WAIT_MS = 30_000;
const RETRY_AFTER_S = 5;

/** What the test does to the store's read streams. */
type ReadPlan = "as stored" | "fail after the first piece" | "stall after the first piece";

/** The limits a test sets (the defaults of `ReadSlots` where not named, but waiting: none). */
interface SetupOptions {
  edge?: Partial<EdgeConfig>;
  maxReads?: number;
  perClient?: number;
  /** Reads of one client that may wait; 0 unless given, so a read past the limit is refused. */
  waiters?: number;
  /** The read slots' clock (the cooldown's); `Date.now` unless given. */
  now?: () => number;
}

async function setup(options: SetupOptions = {}) {
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
  // Time is fake: a read's idle cut-off and a waiting read's limit fire when a test says.
  const timers = new FakeTimers();
  // One set of edge counters for the app and the read slots, as `node/_http_api.ts` wires them.
  const stats = new EdgeStats();
  const reads = new ReadSlots({
    stats,
    maxReads: options.maxReads ?? 3,
    maxReadsPerClient: options.perClient ?? 2,
    maxWaitersPerClient: options.waiters ?? 0,
    keys: ApiKeys.fromConfig({ apiKeys: edge.apiKeys ?? [] }),
    timers,
    now: options.now,
  });
  const app = createApp({ inference: {} as InferencePort, edge, stats });
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
    timers,
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
  assert.equal(response.headers.get("retry-after"), String(RETRY_AFTER_S));
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
  // Key holders: the anonymous clients' share would refuse an address before the node's limit.
  const t = await setup({ maxReads: 3, perClient: 2, edge: { apiKeys: [KEY, OTHER_KEY] } });
  const held: Response[] = [];
  try {
    for (const key of [KEY, KEY, OTHER_KEY]) {
      const response = await t.from("198.51.100.1", `/ipfs/${t.cid}`, {
        headers: { authorization: `Bearer ${key}` },
      });
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

/** Whether a read's idle cut-off is armed now (the body handed over, its client owing a pull). */
function idleArmed(timers: FakeTimers): boolean {
  return [...timers.armed.values()].some((timer) => timer.ms === IDLE_MS);
}

Deno.test("a read whose client took nothing for 60 s keeps its slot while nobody wants it, and is cut once its client asks again: its slot comes back and the store's read is cancelled; a store slow to produce the next piece is not blamed on the client", async () => {
  const t = await setup({ perClient: 1 });
  try {
    t.plan.read = "stall after the first piece";
    const stalled = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    assert.equal(stalled.status, 200);
    const reader = stalled.body!.getReader();
    assert.ok((await reader.read()).value!.length > 0);
    // The client stops reading: only its silence is timed.
    assert.ok(idleArmed(t.timers), "no idle cut-off armed while the client owes a read");
    assert.equal(t.reads.open, 1);
    t.timers.fireFor(IDLE_MS);
    await turns(5);
    assert.equal(t.reads.open, 1, "a read cut though nobody wanted its slot");
    assert.equal(t.plan.cancelled, 0);
    // The same client asks again, past its limit of 1: the idle read is cut, the new one served.
    const next = await t.from("198.51.100.1", `/v1/files/${t.cid}`);
    assert.equal(next.status, 200);
    await turns(5);
    assert.equal(t.reads.open, 1, "the idle read still holds its slot");
    assert.equal(t.plan.cancelled, 1, "the store's read was not cancelled");
    // Cut: its body, of declared length, ends short of it (a real server then drops the
    // connection, `read_idle_cut_log_test.ts`).
    assert.equal((await reader.read()).done, true, "the cut read went on");
    const waiting = next.body!.getReader();
    await waiting.read();
    // The client asks for the next piece and the store does not answer: no cut-off runs.
    const pending = tracker(waiting.read());
    await turns(5);
    assert.equal(pending(), false);
    assert.equal(idleArmed(t.timers), false, "a slow store was timed as the client's silence");
    await waiting.cancel();
    assert.equal(t.reads.open, 0);
  } finally {
    await t.close();
  }
});

Deno.test("reads cut for idleness, on /ipfs and /v1/files alike, count in veriflow_http_idle_timeouts_total as streams' cuts do", async () => {
  const t = await setup({ maxReads: 8, perClient: 2 });
  try {
    t.plan.read = "stall after the first piece";
    const idleCuts = async () => {
      const metrics = await t.from("127.0.0.1", "/metrics");
      return parsePrometheusText(await metrics.text()).find((s) =>
        s.name === "veriflow_http_idle_timeouts_total"
      )?.value;
    };
    assert.equal(await idleCuts(), 0);
    const readers = [];
    for (const path of [`/ipfs/${t.cid}`, `/v1/files/${t.cid}`]) {
      const response = await t.from("198.51.100.1", path);
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      await reader.read();
      readers.push(reader);
    }
    t.timers.fireFor(IDLE_MS);
    await turns(5);
    assert.equal(await idleCuts(), 0, "a read cut though nobody wanted its slot");
    // Its client asks twice more, past its limit of 2: each cuts one of the idle reads.
    t.plan.read = "as stored";
    const again = [];
    for (let i = 0; i < 2; i++) {
      const whole = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
      assert.equal(whole.status, 200);
      again.push(whole);
    }
    // A read its client ends itself is no idle cut.
    for (const whole of again) await whole.body!.cancel();
    assert.equal(t.reads.open, 0);
    assert.equal(await idleCuts(), 2, "a read cut for idleness was counted nowhere");
    // Cut: bodies of declared length end short of it (`read_idle_cut_log_test.ts`).
    for (const reader of readers) assert.equal((await reader.read()).done, true);
  } finally {
    await t.close();
  }
});

Deno.test("a client that keeps reading, however slowly, within the idle time is never cut", async () => {
  const t = await setup({ perClient: 1 });
  try {
    const response = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    const reader = response.body!.getReader();
    let received = 0;
    for (;;) {
      // Each pull disarms the wait for the client and the piece it gets arms the next one.
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
      assert.ok(idleArmed(t.timers));
    }
    assert.equal(received, FILE_BYTES);
    assert.equal(idleArmed(t.timers), false, "a cut-off left armed after the read ended");
    assert.equal(t.reads.open, 0);
  } finally {
    await t.close();
  }
});

/** `count` reads of `/ipfs/{cid}` from `address`, their answers left unread (held). */
async function hold(
  t: Awaited<ReturnType<typeof setup>>,
  address: string,
  count: number,
  held: Response[],
): Promise<number> {
  let served = 0;
  for (let i = 0; i < count; i++) {
    const response = await t.from(address, `/ipfs/${t.cid}`);
    if (response.status === 200) {
      served++;
      held.push(response);
    } else await refusal(response);
  }
  return served;
}

Deno.test("stalled reads of clients without a key, from as many /64s as they like, refuse neither an API key holder nor a newcomer's first read", async () => {
  // The node's own limits: 64 reads, 16 per client (review verify_limits F1's run, in-process).
  const t = await setup({ maxReads: 64, perClient: 16, edge: { apiKeys: [KEY] } });
  const held: Response[] = [];
  const withKey = { headers: { authorization: `Bearer ${KEY}` } };
  try {
    // Four /64s of one /48, sixteen reads each, none read.
    for (let n = 1; n <= 4; n++) await hold(t, `2001:db8:0:${n}::5`, 16, held);
    const stalled = t.reads.open;
    assert.ok(stalled < 64, `the stalled readers took all ${stalled} slots`);
    // A newcomer without a key, and a key holder on both routes, are served.
    for (
      const [address, path, init] of [
        ["203.0.113.7", `/ipfs/${t.cid}`, undefined],
        ["203.0.113.8", `/ipfs/${t.cid}`, withKey],
        ["203.0.113.8", `/v1/files/${t.cid}`, withKey],
      ] as const
    ) {
      const response = await t.from(address, path, init);
      assert.equal(response.status, 200, `${address} ${path}`);
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), t.bytes);
    }
    // More /64s, one read each, fill what readers without a key may hold: the next such client
    // is refused, naming that share, and a key holder is still served.
    for (let n = 5; t.reads.open < 48 && n < 200; n++) await hold(t, `2001:db8:0:${n}::5`, 1, held);
    assert.match(
      await refusal(await t.from("2001:db8:0:ff::5", `/ipfs/${t.cid}`)),
      /without an API key.*share of 48/,
    );
    const keyed = await t.from("2001:db8:0:ff::5", `/ipfs/${t.cid}`, withKey);
    assert.equal(keyed.status, 200);
    await keyed.arrayBuffer();
  } finally {
    for (const response of held) await response.body?.cancel();
    await t.close();
  }
  assert.equal(t.reads.open, 0);
});

Deno.test("40 reads at once from one client (an HTTP/2 page behind a proxy) are all served: those past its 16 wait for its own reads to end", async () => {
  const t = await setup({ maxReads: 64, perClient: 16, waiters: 112 });
  try {
    const answers = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const response = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
        const body = new Uint8Array(await response.arrayBuffer());
        return `${response.status} ${body.length}`;
      }),
    );
    assert.deepEqual(answers, Array(40).fill(`200 ${FILE_BYTES}`));
    assert.equal(t.reads.open, 0);
    assert.equal(t.reads.waiting, 0);
  } finally {
    await t.close();
  }
});

Deno.test("reads past a client's limit wait at most 30 s, and at most its waiting places: past those 429 too_many_reads, and a waiting read takes the slot of one of its client's reads that ends", async () => {
  const t = await setup({ maxReads: 8, perClient: 2, waiters: 3 });
  const held: Response[] = [];
  try {
    t.plan.read = "stall after the first piece";
    held.push(await t.from("198.51.100.1", `/ipfs/${t.cid}`));
    held.push(await t.from("198.51.100.1", `/ipfs/${t.cid}`));
    const waiting = [0, 1, 2].map(() => Promise.resolve(t.from("198.51.100.1", `/ipfs/${t.cid}`)));
    const answered = waiting.map(tracker);
    await turns(5);
    assert.deepEqual(answered.map((settled) => settled()), [false, false, false]);
    assert.equal(t.reads.waiting, 3);
    // Its waiting places are full: the next is refused at once.
    assert.match(
      await refusal(await t.from("198.51.100.1", `/ipfs/${t.cid}`)),
      /per-client limit of 2, and 3 waiting \(at most 3/,
    );
    // One read ends: the oldest waiting read takes its slot, the others still wait.
    await held.shift()!.body!.cancel();
    const first = await waiting[0];
    assert.equal(first.status, 200);
    held.push(first);
    assert.equal(t.reads.open, 2);
    await turns(5);
    assert.deepEqual(answered.map((settled) => settled()), [true, false, false]);
    // Nothing else ends within the wait: the rest are refused, naming the client's limit.
    t.timers.fireFor(WAIT_MS);
    for (const answer of waiting.slice(1)) {
      assert.match(await refusal(await answer), /per-client limit of 2/);
    }
    assert.equal(t.reads.waiting, 0);
    assert.equal(t.reads.open, 2);
  } finally {
    for (const response of held) await response.body?.cancel();
    await t.close();
  }
  assert.equal(t.reads.open, 0);
});

Deno.test("an idle read keeps its slot while nobody wants it (a 16 KiB/s reader behind 4 MiB of socket buffers is pulled from every ~256 s), and is cut once a read of its pool would be refused or its client's read waits", async () => {
  const t = await setup({ maxReads: 3, perClient: 1, waiters: 1 });
  const held: Response[] = [];
  try {
    // A slow honest reader: the idle time passes between every two of its pulls, nobody waits.
    const slow = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    const slowReader = slow.body!.getReader();
    let received = 0;
    for (;;) {
      t.timers.fireFor(IDLE_MS);
      const { done, value } = await slowReader.read();
      if (done) break;
      received += value.length;
    }
    assert.equal(received, FILE_BYTES, "a slow reader that never stopped was cut");
    assert.equal(t.reads.open, 0);
    // A stalled reader, idle past 60 s: its slot is kept while nobody wants it.
    t.plan.read = "stall after the first piece";
    const stalled = await t.from("198.51.100.1", `/ipfs/${t.cid}`);
    const stalledReader = stalled.body!.getReader();
    await stalledReader.read();
    const other = (await t.from("198.51.100.2", `/ipfs/${t.cid}`)).body!.getReader();
    await other.read();
    t.timers.fireFor(IDLE_MS);
    await turns(5);
    assert.equal(t.reads.open, 2);
    // Keyless readers hold their share (2 of 3): a newcomer would be refused, so the read idle
    // longest (the stalled one) is cut and the newcomer served.
    const newcomer = await t.from("198.51.100.3", `/ipfs/${t.cid}`);
    assert.equal(newcomer.status, 200);
    held.push(newcomer);
    assert.equal((await stalledReader.read()).done, true, "the cut read went on");
    assert.equal(t.reads.open, 2);
    // A read not yet idle for 60 s, and its client's next read waiting: once the idle time
    // passes, the idle read is cut and the waiting one takes its slot.
    const waited = Promise.resolve(t.from("198.51.100.3", `/ipfs/${t.cid}`));
    const answered = tracker(waited);
    await turns(5);
    assert.equal(answered(), false);
    assert.equal(t.reads.waiting, 1);
    t.timers.fireFor(IDLE_MS);
    const served = await waited;
    assert.equal(served.status, 200);
    held.push(served);
    assert.equal(t.reads.waiting, 0);
    await other.cancel();
  } finally {
    for (const response of held) await response.body?.cancel().catch(() => {});
    await t.close();
  }
  assert.equal(t.reads.open, 0);
});

Deno.test("keyless addresses that close each stalled read and reopen it at once no longer hold the room kept for first reads: a newcomer is served", async () => {
  let now = 1_000_000;
  const t = await setup({ maxReads: 64, perClient: 16, now: () => now });
  const held = new Map<string, Response[]>();
  const holdAt = async (address: string, count: number) => {
    const mine = held.get(address) ?? [];
    held.set(address, mine);
    return await hold(t, address, count, mine);
  };
  try {
    // Review vreads2 F2's attack: 16 + 16 + 7 reads from three addresses (36 busy, the busy
    // share), then one from each of nine more: 48, all keyless readers may hold.
    await holdAt("198.51.100.1", 16);
    await holdAt("198.51.100.2", 16);
    await holdAt("198.51.100.3", 7);
    for (let n = 4; n <= 12; n++) await holdAt(`198.51.100.${n}`, 1);
    assert.equal(t.reads.open, 48);
    await refusal(await t.from("203.0.113.1", `/ipfs/${t.cid}`));
    // An address closes one of its sixteen and reopens it at once: it no longer holds a first
    // read's room (all its reads are busy now), so it is refused and a newcomer takes the place.
    await held.get("198.51.100.1")!.shift()!.body!.cancel();
    assert.equal(await holdAt("198.51.100.1", 1), 0, "198.51.100.1 took its read back");
    assert.equal(await holdAt("203.0.113.10", 1), 1, "a newcomer refused");
    // Each of the nine closes its read just before the cut and reopens it at once: refused now,
    // as a busy client's read past the busy share.
    for (let n = 4; n <= 12; n++) {
      const address = `198.51.100.${n}`;
      await held.get(address)!.shift()!.body!.cancel();
      now += 1_000;
      assert.equal(await holdAt(address, 1), 0, `${address} took the newcomers' room again`);
    }
    // Newcomers are served in the room they left.
    for (let n = 1; n <= 9; n++) {
      const address = `203.0.113.${n}`;
      assert.equal(await holdAt(address, 1), 1, `${address} refused`);
    }
    // After the cooldown an address's first read is a first read again.
    for (let n = 1; n <= 9; n++) await held.get(`203.0.113.${n}`)!.shift()!.body!.cancel();
    now += 60_000;
    assert.equal(await holdAt("198.51.100.4", 1), 1);
  } finally {
    for (const responses of held.values()) {
      for (const response of responses) await response.body?.cancel();
    }
    await t.close();
  }
  assert.equal(t.reads.open, 0);
});

Deno.test("a waiting read whose request is cancelled leaves the queue at once: its client's next read waits and is served, not refused", async () => {
  const t = await setup({ maxReads: 8, perClient: 1, waiters: 2 });
  const held: Response[] = [];
  try {
    t.plan.read = "stall after the first piece";
    held.push(await t.from("198.51.100.1", `/ipfs/${t.cid}`));
    const aborts = [new AbortController(), new AbortController()];
    const gone = aborts.map(({ signal }) =>
      Promise.resolve(t.from("198.51.100.1", `/ipfs/${t.cid}`, { signal }))
    );
    await turns(5);
    assert.equal(t.reads.waiting, 2);
    for (const abort of aborts) abort.abort();
    await turns(5);
    assert.equal(t.reads.waiting, 0, "cancelled reads still wait");
    for (const answer of gone) await (await answer).body?.cancel();
    // The client comes back: its read waits for a slot (it is not refused) and gets one.
    t.plan.read = "as stored";
    const next = Promise.resolve(t.from("198.51.100.1", `/ipfs/${t.cid}`));
    await turns(5);
    assert.equal(t.reads.waiting, 1);
    await held.shift()!.body!.cancel();
    const served = await next;
    assert.equal(served.status, 200);
    assert.deepEqual(new Uint8Array(await served.arrayBuffer()), t.bytes);
  } finally {
    for (const response of held) await response.body?.cancel();
    await t.close();
  }
  assert.equal(t.reads.open, 0);
  assert.equal(t.reads.waiting, 0);
});
