/**
 * Review s56: a storage peer that misbehaves (serves bytes that do not match the CID, times out,
 * fails reads or writes) is visible to the operator. `ReplicatedStore` reported each replica
 * failure to an `onReplicaFailure` observer, but the node passed none: such a holder showed in no
 * log line and no metric. The StorageActor now counts them by reason (the `capacity` answer,
 * `veriflow_storage_replica_failures_total` on `/metrics`) and logs them, a few lines per peer at
 * a time (`network/log_limiter.ts`).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type StorageAnswers,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { storageKey } from "../../protocols/cid.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { type ReplicaFailure, ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** A holder that, once `lying`, answers every read with one byte of garbage. */
class LyingPeer extends MemoryPeer {
  lying = false;

  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    return this.lying ? Promise.resolve(new Uint8Array([1])) : super.getChunk(cid, options);
  }
}

const FAILURES = "veriflow_storage_replica_failures_total";

/** A node's storage actor over `peers` (both hold every chunk; reads ask one at a time). */
async function storageNode(peers: LyingPeer[], lines: string[]) {
  const system = new ActorSystem({ name: "review-s56-replica-failures" });
  const dir = await Deno.makeTempDir();
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({
        dir,
        chunkSize: 1024,
        peers,
        replication: { replicas: 2, writeQuorum: 2, readParallelism: 1 },
        log: (line) => lines.push(line),
      }),
  });
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => undefined,
    network: () => undefined,
    storage: () => ref,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
  /** The replica failures `/metrics` shows, by reason. */
  const failures = async () => {
    const series = parsePrometheusText(await metrics.render());
    return Object.fromEntries(
      series.filter((s) => s.name === FAILURES).map((s) => [s.labels.reason, s.value]),
    );
  };
  const close = async () => {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  return { ref, failures, close };
}

Deno.test("s56: a storage peer serving garbage is counted by reason on /metrics, and the log names it", async () => {
  const peers = [new LyingPeer(), new LyingPeer()];
  const lines: string[] = [];
  const node = await storageNode(peers, lines);
  try {
    const data = pseudoRandomBytes(600, 7); // one chunk: the file's CID is the chunk's
    const { cid } = unwrapReply<StorageAnswers["put_bytes"]>(
      await node.ref.ask({ type: "put_bytes", bytes: data }),
    );
    const liar = rankPeers(storageKey(cid), peers)[0];
    const honest = peers.find((p) => p !== liar)!;
    liar.lying = true;
    const read = unwrapReply<Uint8Array>(await node.ref.ask({ type: "get_bytes", cid }));
    assert.deepEqual(read, data, "read from the honest holder");

    const counted = await node.failures();
    assert.equal(counted.corrupt, 1, `one read answered with garbage: ${JSON.stringify(counted)}`);
    for (const [reason, value] of Object.entries(counted)) {
      if (reason !== "corrupt") assert.equal(value, 0, `no ${reason} failure`);
    }
    const named = lines.filter((line) => line.includes(liar.id.slice(0, 16)));
    assert.equal(named.length, 1, `one line names the liar: ${JSON.stringify(lines)}`);
    assert.match(named[0], /corrupt/);
    assert.ok(
      !lines.some((line) => line.includes(honest.id.slice(0, 16))),
      "the honest holder is named nowhere",
    );
  } finally {
    await node.close();
  }
});

Deno.test("s56: honest storage peers leave no failure count and no log line", async () => {
  const peers = [new LyingPeer(), new LyingPeer()];
  const lines: string[] = [];
  const node = await storageNode(peers, lines);
  try {
    const data = pseudoRandomBytes(5000, 8);
    const { cid } = unwrapReply<StorageAnswers["put_bytes"]>(
      await node.ref.ask({ type: "put_bytes", bytes: data }),
    );
    const read = unwrapReply<Uint8Array>(await node.ref.ask({ type: "get_bytes", cid }));
    assert.deepEqual(read, data);
    const counted = await node.failures();
    assert.deepEqual(
      Object.keys(counted).sort(),
      ["corrupt", "error", "full", "missing", "timeout"],
      "every reason is a series from the start, at 0",
    );
    for (const [reason, value] of Object.entries(counted)) assert.equal(value, 0, reason);
    assert.deepEqual(lines, []);
  } finally {
    await node.close();
  }
});

Deno.test("s56: a peer serving garbage for many chunks writes a few log lines, then one count", async () => {
  const peers = [new LyingPeer(), new LyingPeer()];
  const lines: string[] = [];
  const node = await storageNode(peers, lines);
  try {
    const data = pseudoRandomBytes(40 * 1024, 9); // 40 chunks
    const { cid } = unwrapReply<StorageAnswers["put_bytes"]>(
      await node.ref.ask({ type: "put_bytes", bytes: data }),
    );
    const liar = peers[0];
    liar.lying = true;
    assert.deepEqual(unwrapReply<Uint8Array>(await node.ref.ask({ type: "get_bytes", cid })), data);
    const counted = await node.failures();
    assert.ok(counted.corrupt > 6, `the liar ranks first for many chunks: ${counted.corrupt}`);
    await node.close(); // the stop writes the count of the lines left out
    const named = lines.filter((line) => line.includes(liar.id.slice(0, 16)));
    assert.ok(named.length <= 6, `a few lines, not one per chunk: ${named.length}`);
    assert.match(named.at(-1)!, /more line\(s\) left out/);
  } finally {
    await node.close().catch(() => {});
  }
});

/** A holder whose writes never land: each waits until its call is aborted. */
class StalledWriter extends MemoryPeer {
  override putChunk(_cid: string, _bytes: Uint8Array, options?: PeerCallOptions): Promise<void> {
    return new Promise((_, reject) => {
      const signal = options?.signal;
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
}

Deno.test("s56: a put its caller gave up on is no failure of the holders it was writing to", async () => {
  const failures: ReplicaFailure[] = [];
  const store = new ReplicatedStore([new StalledWriter(), new StalledWriter()], {
    replicas: 2,
    writeQuorum: 2,
    onReplicaFailure: (f) => void failures.push(f),
  });
  const caller = new AbortController();
  const put = store.put(new TextEncoder().encode("a client that went away"), {
    signal: caller.signal,
  });
  caller.abort(new Error("the client went away"));
  await assert.rejects(put, /the client went away/);
  await store.flush();
  assert.deepEqual(failures.map((f) => `${f.op}:${f.reason}`), []);
});

/** A holder that times out on every proof (as its connection's request timeout says). */
class SilentProver extends MemoryPeer {
  override proveChunks(): Promise<(Uint8Array | null)[]> {
    return Promise.reject(new DOMException("no answer in time", "TimeoutError"));
  }
}

Deno.test("s56: a holder that timed out in a repair is one timeout, not one per chunk it holds", async () => {
  const failures: ReplicaFailure[] = [];
  const silent = new SilentProver();
  const store = new ReplicatedStore([silent, new MemoryPeer()], {
    replicas: 2,
    writeQuorum: 2,
    onReplicaFailure: (f) => void failures.push(f),
  });
  const cids: string[] = [];
  for (let i = 0; i < 6; i++) cids.push(await store.put(new TextEncoder().encode(`chunk ${i}`)));
  const report = await store.repair(cids, { presence: true });
  assert.equal(report.failedChecks, 6, "each of its chunks is a failed check, tried later");
  assert.deepEqual(failures.map((f) => `${f.op}:${f.peerId === silent.id}:${f.reason}`), [
    "prove:true:timeout",
  ]);
});
