/**
 * The node's own series on `/metrics` (`node/node_metrics.ts`) and what the node says about its
 * peers: every series a job moves moves by the job's amounts, the exposition parses, and peers are
 * counted as peers, not connections, whatever a peer does.
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { AskTimeoutError } from "../../actors/errors.ts";
import type { ProverMessage, ProverStats } from "../../actors/prover_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { DEFAULT_REPLICA_QUOTA_BYTES, parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { NodeActivity } from "../../node/node_activity.ts";
import { Identity } from "../../protocols/identity.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { parsePrometheusText, type Series, valueOf } from "../server/_prometheus_text.ts";
import { eventually } from "../_helpers/wait.ts";
import type { ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PEER_PROTOCOL, PeerHelloMessage, signPeerHello } from "../../protocols/peer_hello.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { dashboardSources } from "../../node/dashboard_sources.ts";
import { firstHeartbeat } from "./_first_heartbeat.ts";

/** A stand-in actor ref whose `ask` answers with `answer(message)`. */
function refAnswering<M>(answer: (message: M) => Promise<unknown>): ActorRef<M> {
  return { ask: (message: M) => answer(message) } as unknown as ActorRef<M>;
}

Deno.test("a busy validator leaves only its own series out of /metrics: the prover's and the process's are served, the timeout counted", async () => {
  const prover = refAnswering<ProverMessage>(() =>
    Promise.resolve({ proven: 7, failed: 1, active: 0 } satisfies Partial<ProverStats>)
  );
  // What a validator with a long mailbox does to an ask: it times out.
  const validator = refAnswering<ValidatorMessage>(() =>
    Promise.reject(new AskTimeoutError("node/validator", 1_000))
  );
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => prover,
    validator: () => validator,
    network: () => undefined,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);

  const text = await metrics.render();
  assert.match(text, /^veriflow_prover_receipts_signed_total 7$/m);
  assert.match(text, /^veriflow_process_rss_bytes \d+$/m);
  assert.doesNotMatch(text, /^veriflow_validator_/m);
  assert.match(
    text,
    /^veriflow_metrics_collector_failures_total\{collector="validator",reason="timeout"\} 1$/m,
  );
});

// `/metrics` after one known job: every counter and histogram it should move moved by exactly the
// job's amounts, and the whole exposition parses line by line (a promtool-style check).

Deno.test({
  name:
    "a known job moves each job counter and latency histogram by its own amounts; every line parses",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const node = await startNode(parseNodeConfig({
      dataDir: dir,
      http: { port: 0 },
      heartbeatMs: 0,
      model: { workers: 0 },
      network: { listening: false },
    }));
    try {
      const scrape = async () =>
        parsePrometheusText(await (await fetch(`${node.url}/metrics`)).text());
      const before = await scrape();
      const response = await fetch(`${node.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 12, seed: 1 }),
      });
      assert.equal(response.status, 200);
      const answer = await response.json();
      const n: number = answer.usage.completion_tokens;
      assert.ok(n >= 2, `the job streamed ${n} tokens`);
      // The validator records the node's own receipt by message, just after the answer.
      const after = await eventually(async () => {
        const s = await scrape();
        return valueOf(s, "veriflow_validator_own_receipts_total") >
            valueOf(before, "veriflow_validator_own_receipts_total")
          ? s
          : undefined;
      }, "the own receipt in the ledger");
      const delta = (name: string, labels?: Record<string, string>) =>
        valueOf(after, name, labels) - valueOf(before, name, labels);

      assert.equal(delta("veriflow_inference_jobs_started_total"), 1);
      assert.equal(delta("veriflow_jobs_total", { state: "finished" }), 1);
      assert.equal(delta("veriflow_jobs_total", { state: "failed" }), 0);
      assert.equal(valueOf(after, "veriflow_jobs_active", { state: "running" }), 0);
      assert.equal(valueOf(after, "veriflow_jobs_active", { state: "queued" }), 0);
      for (const state of ["running", "queued"]) {
        assert.ok(after.some((s) => s.name === "veriflow_jobs_active" && s.labels.state === state));
      }
      // One family name each under OpenMetrics, where a counter `X_total` is the family `X`: a
      // gauge named `X` beside it clashed in converters (review s70, `veriflow_jobs`).
      const names = new Set(after.map((s) => s.name));
      for (const name of names) {
        if (!name.endsWith("_total")) continue;
        assert.ok(!names.has(name.slice(0, -"_total".length)), `${name} beside its family name`);
      }
      assert.equal(delta("veriflow_inference_tokens_generated_total"), n);
      assert.equal(delta("veriflow_ttft_seconds_count"), 1);
      assert.equal(delta("veriflow_ttft_seconds_bucket", { le: "+Inf" }), 1);
      assert.ok(delta("veriflow_ttft_seconds_sum") > 0);
      assert.equal(
        delta("veriflow_inter_token_seconds_count"),
        n - 1,
        "one gap per token after the first",
      );
      assert.equal(delta("veriflow_job_tokens_per_second_count"), 1);
      assert.equal(delta("veriflow_prover_receipts_signed_total"), 1);
      assert.equal(delta("veriflow_validator_own_receipts_total"), 1);
      assert.equal(
        delta("veriflow_validation_seconds_count"),
        0,
        "own receipts are never challenged here",
      );
      assert.equal(delta("veriflow_receipts_by_verdict_total", { verdict: "valid" }), 0);
      // Stream claims come from this node's router only when a worker it forwarded to is lost.
      for (const outcome of ["confirmed", "refuted", "undecided"]) {
        assert.equal(valueOf(after, "veriflow_validator_stream_claims_total", { outcome }), 0);
        assert.ok(
          after.some((s) =>
            s.name === "veriflow_validator_stream_claims_total" && s.labels?.outcome === outcome
          ),
          `stream claims ${outcome} listed`,
        );
      }
      // Peers' stream proofs come only from peers: none here.
      for (const outcome of ["confirmed", "refuted", "undecided", "skipped"]) {
        assert.equal(valueOf(after, "veriflow_validator_stream_proofs_total", { outcome }), 0);
      }
      for (const name of ["veriflow_ledger_stake", "veriflow_ledger_balance", "veriflow_peers"]) {
        assert.ok(after.some((s) => s.name === name), name);
      }
      assert.ok(valueOf(after, "veriflow_storage_used_bytes") >= 0);
      assert.equal(valueOf(after, "veriflow_storage_peers"), 0);
      assert.equal(
        valueOf(after, "veriflow_actor_restarts_total", { actor: "node/inference" }),
        0,
      );
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("the validation-time histogram and receipts by verdict move by each verdict recorded", async () => {
  let now = 1_000;
  const activity = new NodeActivity({ now: () => now });
  const metrics = new MetricsRegistry();
  metrics.register(activity.collector(), "activity");
  const validator = Identity.generate();
  const verdict = (outcome: "valid" | "fraud") =>
    signVerdict({
      v: 1,
      subject: "inference",
      subjectId: "ab".repeat(32),
      target: Identity.generate().publicKey,
      outcome,
      reason: outcome === "valid" ? "ok" : "fingerprint_mismatch",
      issuedAt: now,
    }, validator);
  activity.record({ kind: "verdict", verdict: verdict("valid"), own: true, validationMs: 12 });
  now += 1;
  activity.record({ kind: "verdict", verdict: verdict("fraud"), own: false });
  const s = parsePrometheusText(await metrics.render());
  assert.equal(valueOf(s, "veriflow_validation_seconds_count"), 1, "only own verdicts are timed");
  assert.equal(valueOf(s, "veriflow_validation_seconds_sum"), 0.012);
  assert.equal(valueOf(s, "veriflow_validation_seconds_bucket", { le: "0.01" }), 0);
  assert.equal(valueOf(s, "veriflow_validation_seconds_bucket", { le: "0.025" }), 1);
  assert.equal(valueOf(s, "veriflow_receipts_by_verdict_total", { verdict: "valid" }), 1);
  assert.equal(valueOf(s, "veriflow_receipts_by_verdict_total", { verdict: "fraud" }), 1);
  assert.deepEqual(activity.recent().map((i) => [i.kind, i.outcome]), [
    ["verdict", "fraud"],
    ["verdict", "valid"],
  ]);
});

Deno.test("the format check fails on what promtool refuses", () => {
  assert.throws(() => parsePrometheusText("x 1\n"), /before its TYPE/);
  assert.throws(
    () =>
      parsePrometheusText(
        '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      ),
    /cumulative/,
  );
  assert.throws(() => parsePrometheusText("# TYPE c counter\nc 1\nc 2\n"), /twice/);
});

Deno.test({
  name:
    "what peers may place here is capped at half the storage quota by default, at a fixed default without one, and shown in /metrics",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const cases = [
      [{ quotaBytes: 1_000_001 }, 500_000],
      [{ quotaBytes: 1_000_000, replicaQuotaBytes: 900_000 }, 900_000],
      [{}, DEFAULT_REPLICA_QUOTA_BYTES], // no quota: the default cap (review s71, finding 4)
    ] as const;
    for (const [storage, expected] of cases) {
      const dir = await Deno.makeTempDir();
      const node = await startNode(parseNodeConfig({
        dataDir: dir,
        http: { port: 0 },
        heartbeatMs: 0,
        roles: { inference: false, prover: false, validator: false },
        network: { listening: false },
        storage,
      }));
      try {
        const scrape = parsePrometheusText(await (await fetch(`${node.url}/metrics`)).text());
        assert.equal(
          valueOf(scrape, "veriflow_storage_replica_quota_bytes"),
          expected,
          JSON.stringify(storage),
        );
        assert.equal(valueOf(scrape, "veriflow_storage_replica_bytes"), 0);
      } finally {
        await node.shutdown();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
  },
});

// The node's own series on `/metrics` (`node/node_metrics.ts`) as a peer sees them: what a peer
// does (send jobs, connect) must not make the exposition invalid or its series grow without bound.
//
// - `veriflow_actor_restarts_total` had one series per running job: the inference actor's
//   per-job runners (`node/inference/job-<job id>-<n>`, `restart: "temporary"`: never restarted,
//   their count always 0) were in the tree it walks. Every job that spanned a scrape added a
//   series named after its id and a sequence number, so Prometheus' series grew with the jobs
//   peers and clients sent, for good.
// - A peer key connected twice (both nodes dialled each other, or a peer opened a second
//   connection: `NetworkActor` keeps both) had its `veriflow_peer_jobs{key}` and
//   `veriflow_peer_stored_bytes{key}` written once per connection: the same series twice in one
//   exposition, which `promtool check metrics` (and `tests/server/_prometheus_text.ts`) refuses.

/** A registry with the node's collectors over `sources`' tree and network. */
function registryOf(
  sources: Partial<Parameters<typeof nodeCollectors>[0]>,
): MetricsRegistry {
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => undefined,
    network: () => undefined,
    ...sources,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
  return metrics;
}

type InferenceMsg = { type: "start"; id: string } | { type: "end"; name: string };

Deno.test("/metrics has no series per job: the per-job runners (temporary, never restarted) are not in veriflow_actor_restarts_total", async () => {
  const system = new ActorSystem({ name: "node" });
  // What the inference actor does per job: a linked runner named after the job id and a
  // sequence number (`#spawnRunner`), temporary, stopped when the job ends.
  let seq = 0;
  const inference = await system.spawn<InferenceMsg>({
    name: "node/inference",
    factory: () => ({
      async receive(m: InferenceMsg, ctx: ActorContext<InferenceMsg>) {
        if (m.type === "end") return await ctx.system.stop(m.name);
        const ref = await ctx.spawn<string>({
          name: `${ctx.name}/job-${m.id.slice(0, 12)}-${++seq}`,
          factory: () => ({ receive: () => {} }),
          restart: "temporary",
        });
        return ref.name;
      },
    }),
  });
  const metrics = registryOf({ tree: () => system.tree() });
  const actorSeries = (series: Series[]) =>
    series.filter((s) => s.name === "veriflow_actor_restarts_total").map((s) => s.labels.actor);
  try {
    const idle = actorSeries(parsePrometheusText(await metrics.render()));
    assert.ok(idle.includes("node/inference"), `the inference actor is counted: ${idle}`);
    // Jobs come and go; a scrape lands while each runs.
    const seen = new Set(idle);
    for (let i = 0; i < 5; i++) {
      const id = toHex(crypto.getRandomValues(new Uint8Array(16)));
      const runner = await inference.ask<string>({ type: "start", id });
      for (const actor of actorSeries(parsePrometheusText(await metrics.render()))) {
        seen.add(actor);
      }
      await inference.ask({ type: "end", name: runner });
    }
    assert.deepEqual([...seen].sort(), [...idle].sort(), "series came and went with the jobs");
  } finally {
    await system.shutdown();
  }
});

/**
 * Open a connection from `identity` to the network actor `net` under `address`, and send a
 * signed hello saying a load and a storage use. Resolves with the peer's end.
 */
async function connectAs(
  net: ActorRef<NetworkMessage>,
  identity: Identity,
  address: string,
  outbound: boolean,
): Promise<Connection> {
  const [a, b] = memoryDuplexPair();
  const [, peer] = await Promise.all([
    net.ask({ type: "attach", duplex: a, address, outbound }),
    Connection.open(b, { identity, protocols: [PEER_PROTOCOL] }),
  ]);
  const hello = signPeerHello(
    identity,
    {
      version: "1.0.0",
      roles: ["storage"],
      models: [],
      storage: { usedBytes: 4096, quotaBytes: null },
      load: { running: 1, queued: 2, slots: 4, queueLimit: 8 },
    },
    1,
    Date.now(),
  );
  await peer.notify(PeerHelloMessage, { hello });
  return peer;
}

Deno.test("a peer connected twice has one veriflow_peer_jobs and one veriflow_peer_stored_bytes series, and /metrics stays valid", async () => {
  const system = new ActorSystem({ name: "s50-peer-twice" });
  const net = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const peerKey = Identity.generate();
  const key = toHex(peerKey.publicKey);
  const peers: Connection[] = [];
  try {
    // It dialled us and we dialled it: two connections, one key.
    peers.push(await connectAs(net, peerKey, "127.0.0.1:40001", false));
    peers.push(await connectAs(net, peerKey, "127.0.0.1:9000", true));
    const metrics = registryOf({ network: () => net });
    // Both connections have had their hello.
    await eventually(async () => {
      const peers = await net.ask<{ load?: unknown }[]>({ type: "peers" });
      return peers.length === 2 && peers.every((p) => p.load !== undefined) || undefined;
    }, "both hellos taken");
    const series = parsePrometheusText(await metrics.render());
    const of = (name: string) => series.filter((s) => s.name === name && s.labels.key === key);
    assert.equal(of("veriflow_peer_info").length, 1, "one per key (review s78 F4)");
    assert.deepEqual(of("veriflow_peer_jobs").map((s) => s.value), [3]);
    assert.deepEqual(of("veriflow_peer_stored_bytes").map((s) => s.value), [4096]);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});

// What the node says about its peers (`node/node_metrics.ts`, `node/heartbeat.ts`,
// `node/dashboard_sources.ts`): counts of peers, not of connections. A peer key is often connected
// twice (both nodes dialled each other with `--peer`, or a TCP and a swarm connection: the
// `NetworkActor` keeps both, `tests/network/peers_test.ts`), and the router sends jobs,
// and the storage actor files, to the key (`worker_choice.ts`, `#holders`). Counted per connection,
// such a peer was two workers on `/metrics` and in the heartbeat, two storage peers, and the
// dashboard added the bytes it stores twice: an operator read twice the replication the node had.

const A = "aa".repeat(32);

const B = "bb".repeat(32);

/** A peer's connection as the network actor's table lists it. */
function connection(key: string, address: string, more: Partial<PeerInfo>): PeerInfo {
  return {
    key,
    address,
    outbound: false,
    protocols: [],
    models: [],
    convicted: false,
    roles: [],
    ...more,
  };
}

/**
 * Worker and storage peer A, connected twice (it dialled us, we dialled it), and storage peer
 * B, connected once.
 */
const TABLE: PeerInfo[] = [
  connection(A, "127.0.0.1:40001", {
    models: ["m"],
    roles: ["inference", "storage"],
    storage: { usedBytes: 4096, quotaBytes: null },
  }),
  connection(A, "127.0.0.1:7700", {
    outbound: true,
    models: ["m"],
    roles: ["inference", "storage"],
    storage: { usedBytes: 4096, quotaBytes: null },
  }),
  connection(B, "127.0.0.1:40002", {
    roles: ["storage"],
    storage: { usedBytes: 1000, quotaBytes: null },
  }),
];

/**
 * A network actor that answers `peers` with {@link TABLE} (and `static_peers` with none), and a
 * storage actor.
 */
async function nodeStandIns() {
  const system = new ActorSystem({ name: "review-s52-peer-counts" });
  const network = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => ({
      receive: (m: NetworkMessage) =>
        m.type === "peers" ? TABLE : m.type === "static_peers" ? [] : undefined,
    }),
  });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => ({
      receive: (m: StorageMessage) =>
        m.type === "capacity"
          ? {
            ok: true,
            value: {
              usedBytes: 0,
              quotaBytes: null,
              objectCount: 0,
              pinCount: 0,
              replicaCount: 0,
              replicaBytes: 0,
              replicaQuotaBytes: null,
            },
          }
          : { ok: true, value: [] },
    }),
  });
  return { system, network, storage };
}

Deno.test("s52: a worker and storage peer connected twice is one worker and one storage peer on /metrics", async () => {
  const { system, network, storage } = await nodeStandIns();
  try {
    const metrics = new MetricsRegistry();
    const collectors = nodeCollectors({
      publicKey: new Uint8Array(32),
      prover: () => undefined,
      validator: () => undefined,
      network: () => network,
      storage: () => storage,
    });
    for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
    const series = parsePrometheusText(await metrics.render());
    const value = (name: string) => series.find((s) => s.name === name)?.value;
    assert.equal(value("veriflow_peers"), 2, "peers by key (review s78 F4)");
    assert.equal(value("veriflow_peer_connections"), 3, "connections");
    assert.equal(value("veriflow_peer_workers"), 1, "workers jobs can go to");
    assert.equal(value("veriflow_storage_peers"), 2, "peers files are spread over");
  } finally {
    await system.shutdown();
  }
});

Deno.test("s52: the heartbeat counts a worker connected twice as one worker", async () => {
  const { system, network } = await nodeStandIns();
  try {
    const text = await firstHeartbeat(network);
    assert.match(text, /peers 2 \(3 connections, workers 1\)/, text);
  } finally {
    await system.shutdown();
  }
});

Deno.test("s52: the dashboard's storage panel counts a storage peer connected twice once, and its bytes once", async () => {
  const { system, network, storage } = await nodeStandIns();
  try {
    const sources = dashboardSources({
      publicKey: new Uint8Array(32),
      system,
      inferenceName: "node/inference",
      network: () => network,
      validator: () => undefined,
      storage: () => storage,
    });
    const panel = await sources.storage() as { storagePeers: number; peerBytes: number };
    assert.equal(panel.storagePeers, 2);
    assert.equal(panel.peerBytes, 4096 + 1000);
  } finally {
    await system.shutdown();
  }
});
