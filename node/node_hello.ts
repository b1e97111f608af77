/**
 * What this node's signed hello says about it (see `protocols/peer_hello.ts`): its roles, the
 * models it serves, its inference load and its storage use, read from the actors that know.
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import { type StorageMessage, unwrapReply } from "../actors/storage_actor_messages.ts";
import type { InferencePort } from "../inference/inference_port.ts";
import type { PeerHelloBody, PeerRole } from "../protocols/peer_hello.ts";
import type { ChunkStoreStats } from "../storage/chunk_store.ts";
import { VERIFLOW_VERSION } from "./version.ts";

/** Where the hello's facts come from. */
export interface NodeHelloSources {
  /** The roles the node runs. */
  roles: Record<PeerRole, boolean>;
  /** The local inference port (absent: no model here). */
  inference: () => InferencePort | undefined;
  /** The StorageActor (absent: no storage here). */
  storage: () => ActorRef<StorageMessage> | undefined;
  /** Jobs queued per model beyond its slots (`inference.queueLimit`). */
  queueLimit: number;
}

/**
 * How long a storage reading is reused: the store's stats list its replica roots (a directory
 * read), too much to do every second for a number that moves slowly.
 */
const STORAGE_READ_EVERY_MS = 30_000;

/**
 * A `describe` for the NetworkActor: the load afresh on each call (in memory), the storage use
 * at most every {@link STORAGE_READ_EVERY_MS}.
 */
export function nodeHello(
  sources: NodeHelloSources,
  now: () => number = Date.now,
): () => Promise<PeerHelloBody> {
  const roles = (Object.keys(sources.roles) as PeerRole[]).filter((r) => sources.roles[r]);
  let storageRead: { at: number; value: PeerHelloBody["storage"] } | undefined;
  return async () => {
    const body: PeerHelloBody = { version: VERIFLOW_VERSION, roles, models: [] };
    const port = sources.inference();
    if (port !== undefined) {
      const [models, stats] = await Promise.all([port.models(), port.stats()]);
      body.models = models.map((m) => m.cid).slice(0, 64);
      // The slots are the port's (the InferenceActor's lanes: each served model's batch seats),
      // not `inference.concurrency`, which a model that reports its seats does not run: a worker
      // running 4 of its 8 seats looked full to its routers, and one with a single seat taken
      // looked like it had 3 free, drawing jobs that waited in its queue (review s58). The
      // actor's lanes are per model and the load is per node: `slots` sums them over the models
      // served, as running and queued count every model's jobs. A node serves one model as the
      // CLI configures it, so the sum is that model's; the format stays as older peers know it.
      body.load = {
        running: stats.activeJobs,
        queued: stats.queuedJobs,
        slots: stats.slots,
        queueLimit: sources.queueLimit,
      };
    }
    const storage = sources.storage();
    if (storage !== undefined) {
      if (storageRead === undefined || now() - storageRead.at >= STORAGE_READ_EVERY_MS) {
        // A reading that fails (the actor restarting or timing out, its store failing to list a
        // directory) keeps the last one until the next try: it must not stop the hello, whose
        // load routers weigh (none sent, a worker's last "full" stood while it was idle).
        const value = await storage.ask({ type: "capacity" }, { timeoutMs: 5_000 })
          .then((reply) => {
            const stats = unwrapReply<ChunkStoreStats>(reply);
            return { usedBytes: stats.usedBytes, quotaBytes: stats.quotaBytes };
          })
          .catch(() => storageRead?.value);
        storageRead = { at: now(), value };
      }
      if (storageRead.value !== undefined) body.storage = storageRead.value;
    }
    return body;
  };
}
