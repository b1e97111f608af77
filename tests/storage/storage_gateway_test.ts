/**
 * The StorageActor's gateway (`storageGateway`, `actors/storage_actor_peer.ts`) as the HTTP
 * gateway uses it.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage, StorageReply } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { cidOf, DAG_PB_CODEC } from "../../protocols/cid.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";

// ---- a block read its client gave up on ---------------------------------------------------------
//
// A gateway block read its client gave up on (`storageGateway(ref).block(cid, signal)`,
// `actors/storage_actor_peer.ts`): the signal was dropped on the way to the StorageActor, so the
// read's fetch from a storage peer ran on to its own timeout (10 s by default), holding the peer
// connection's slot and the actor's attention for a reader long gone.

/** A storage peer whose reads never answer: they end only when their signal aborts them. */
class SilentPeer extends MemoryPeer {
  /** The signal of each read asked of it, in order. */
  readonly signals: AbortSignal[] = [];
  #asked = Promise.withResolvers<void>();
  readonly #pending = new Set<(reason: unknown) => void>();

  /** Resolves once a read has been asked of it. */
  get asked(): Promise<void> {
    return this.#asked.promise;
  }

  override getChunk(_cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    const signal = options?.signal;
    if (signal) this.signals.push(signal);
    this.#asked.resolve();
    return new Promise((_, reject) => {
      this.#pending.add(reject);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }

  /** End every read still waiting (cleanup, so the actor can stop). */
  release(): void {
    for (const reject of this.#pending) reject(new Error("released by the test"));
    this.#pending.clear();
  }
}

/** A StorageActor whose one storage peer never answers a read, and a CID only it could have. */
async function silentNetwork() {
  const dir = await Deno.makeTempDir();
  const peer = new SilentPeer();
  const actor = new StorageActor({
    dir,
    store: { durable: false },
    peers: [peer],
    replication: { replicas: 1, writeQuorum: 1, readParallelism: 1 },
  });
  const cid = cidOf(new TextEncoder().encode("a block no one here holds"));
  const close = async () => {
    peer.release();
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  };
  return { peer, actor, cid, close };
}

Deno.test("a gateway block read aborted by its caller aborts the fetch from the storage peer at once, with the caller's reason", async () => {
  const { peer, actor, cid, close } = await silentNetwork();
  // The ask's own options are left out: the fetch must stop because the message carries the
  // signal to the actor, not only because the asker stops waiting for the answer.
  const gateway = storageGateway({
    ask: (message: StorageMessage) => actor.receive(message) as never,
  });
  try {
    const client = new AbortController();
    const read = gateway.block(cid, client.signal);
    read.catch(() => {}); // judged below, after the abort
    await peer.asked;
    assert.equal(peer.signals.length, 1);
    const reason = new Error("the client went away");
    client.abort(reason);
    // Aborts propagate synchronously through AbortSignal.any: nothing to wait for.
    assert.equal(peer.signals[0].aborted, true, "the peer's fetch is aborted with the read");
    assert.equal(peer.signals[0].reason, reason);
    peer.release(); // before the fix the fetch would wait for its timeout: end it either way
    await assert.rejects(read, (error) => (error as Error).cause === reason);
  } finally {
    await close();
  }
});

Deno.test("a block read aborted mid-fetch is answered as a read_aborted error, not thrown: the StorageActor does not crash", async () => {
  const { peer, actor, cid, close } = await silentNetwork();
  try {
    const client = new AbortController();
    const reply = actor.receive({ type: "get_block", cid, signal: client.signal });
    await peer.asked;
    const reason = new DOMException("the client went away", "AbortError");
    client.abort(reason);
    peer.release(); // before the fix the fetch would wait for its timeout: end it either way
    // A rejected receive is a crash: the supervisor restarts the node's storage.
    const answer = await reply as StorageReply<Uint8Array>;
    assert.equal(answer.ok, false);
    const { error } = answer as { error: VeriflowError };
    assert.equal(error.code, "read_aborted");
    assert.equal(error.cause, reason);
  } finally {
    await close();
  }
});

Deno.test("a CAR export aborted while its root block is fetched aborts that fetch and is answered read_aborted", async () => {
  // The export read its root with no signal: a client gone before the first block came held
  // the actor for the peer timeout, as a plain block read did.
  const { peer, actor, cid, close } = await silentNetwork();
  try {
    const client = new AbortController();
    const reply = actor.receive({ type: "export_car", cid, signal: client.signal });
    await peer.asked;
    const reason = new DOMException("the client went away", "AbortError");
    client.abort(reason);
    assert.equal(peer.signals[0]?.aborted, true, "the root's fetch is aborted with the export");
    peer.release();
    const answer = await reply as StorageReply<ReadableStream<Uint8Array>>;
    assert.equal(answer.ok, false);
    assert.equal((answer as { error: VeriflowError }).error.code, "read_aborted");
  } finally {
    await close();
  }
});

Deno.test("a gateway request whose client goes away while a path's block is fetched aborts that fetch", async () => {
  // The gateway read its blocks with no signal: a path resolved against a silent peer ran on to
  // the peer timeout after its client had gone, as the actor's own reads did.
  const { peer, actor, close } = await silentNetwork();
  // A directory's CID (dag-pb), so its path is resolved by reading it.
  const cid = cidOf(new TextEncoder().encode("a directory no one here holds"), DAG_PB_CODEC);
  const app = createApp({ inference: {} as InferencePort });
  app.route("/", gatewayRoutes(() => storageGateway({ ask: (m) => actor.receive(m) as never })));
  try {
    const client = new AbortController();
    const answer = Promise.resolve(
      app.request(`/ipfs/${cid}/a.txt`, { signal: client.signal }, {
        remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
      } as never),
    );
    answer.catch(() => {}); // its status is not the point: the fetch is
    await peer.asked;
    client.abort(new DOMException("the client went away", "AbortError"));
    assert.equal(peer.signals[0]?.aborted, true, "the path's block fetch is aborted");
    peer.release();
    await answer.then((response) => response.body?.cancel(), () => {});
  } finally {
    await close();
  }
});
