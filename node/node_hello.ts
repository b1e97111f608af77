/**
 * What this node's signed hello says about it (see `protocols/peer_hello.ts`): its roles, the
 * models it serves, its inference load and its storage use, read from the actors that know.
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import { type StorageMessage, unwrapReply } from "../actors/storage_actor.ts";
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
  /** Jobs run side by side. */
  slots: number;
  /** Jobs queued beyond the slots. */
  queueLimit: number;
}

/** A `describe` for the NetworkActor: reads the facts afresh on each call. */
export function nodeHello(sources: NodeHelloSources): () => Promise<PeerHelloBody> {
  const roles = (Object.keys(sources.roles) as PeerRole[]).filter((r) => sources.roles[r]);
  return async () => {
    const body: PeerHelloBody = { version: VERIFLOW_VERSION, roles, models: [] };
    const port = sources.inference();
    if (port !== undefined) {
      const [models, stats] = await Promise.all([port.models(), port.stats()]);
      body.models = models.map((m) => m.cid).slice(0, 64);
      body.load = {
        running: stats.activeJobs,
        queued: stats.queuedJobs,
        slots: sources.slots,
        queueLimit: sources.queueLimit,
      };
    }
    const storage = sources.storage();
    if (storage !== undefined) {
      const stats = unwrapReply<ChunkStoreStats>(
        await storage.ask({ type: "capacity" }, { timeoutMs: 5_000 }),
      );
      body.storage = { usedBytes: stats.usedBytes, quotaBytes: stats.quotaBytes };
    }
    return body;
  };
}
