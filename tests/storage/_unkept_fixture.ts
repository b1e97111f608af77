/**
 * The setup the storage "unkept" tests share (reviews s81 vaudit/vaudit2, s82 vstore): an owner
 * node that records its verdicts, a holder node with a replica quota, the owner as a holder sees
 * it, holders in memory that prove, take copies and name chunks unkept as told, and what the
 * owner's record and verdicts say of a peer. Built on {@link auditNodeOptions}.
 *
 * @module
 */
import { StorageActor } from "../../actors/storage_actor.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { ChunkNotFoundError, ReplicaQuotaExceededError } from "../../storage/errors.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../../storage/given_chunks.ts";
import {
  possessionProof,
  type ProveChunksOptions,
  type StoragePeer,
} from "../../storage/storage_peer.ts";
import { auditNodeOptions } from "./_audit_owner.ts";

/** An owner node `identity` in `dir` writing `replicas` copies; its verdicts go to `verdicts`. */
export function auditOwner(
  dir: string,
  identity: Identity,
  replicas: number,
  verdicts: Verdict[],
): StorageActor {
  return new StorageActor({
    ...auditNodeOptions(dir, identity, replicas),
    onVerdict: (v) => void verdicts.push(v),
  });
}

/** A holder node `identity` in `dir` (r = 2) with `replicaQuotaBytes` of room for replicas. */
export function quotaHolder(
  dir: string,
  identity: Identity,
  replicaQuotaBytes: number | undefined,
): StorageActor {
  return new StorageActor({
    ...auditNodeOptions(dir, identity, 2),
    store: { durable: false, replicaQuotaBytes }, // 1: no room for anyone's replicas
  });
}

/** The chunk CIDs of file `cid` on `actor`. */
export async function chunksOf(actor: StorageActor, cid: string): Promise<string[]> {
  return unwrapReply<{ chunks: string[] }>(await actor.receive({ type: "stat", cid })).chunks;
}

/** The owner as a holder sees it: a peer id only (the holder never reads from it). */
export function silentPeer(key: Uint8Array): StoragePeer {
  const no = () => Promise.reject(new Error("not used"));
  return {
    id: toHex(key),
    publicKey: key,
    putChunk: no,
    getChunk: no,
    hasChunk: no,
    proveChunks: no,
  } as StoragePeer;
}

/** How a {@link MemoryHolder} answers. */
export interface MemoryHolderMode {
  /** It takes copies (else it refuses them as full). */
  takesCopies: boolean;
  /**
   * Which challenged chunks it names unkept: none, those it holds (when it holds any), or every
   * one, proof or none.
   */
  namesUnkept: "none" | "held" | "all";
}

/** A holder in memory that proves what it has, and counts what it is sent and asked. */
export class MemoryHolder implements StoragePeer {
  readonly id: string;
  readonly chunks = new Map<string, Uint8Array>();
  puts = 0;
  proves = 0;
  /** The keys of the chunks it was challenged on. */
  readonly asked = new Set<string>();
  constructor(readonly publicKey: Uint8Array, public mode: MemoryHolderMode) {
    this.id = toHex(publicKey);
  }
  putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    if (!this.mode.takesCopies) {
      return Promise.reject(new ReplicaQuotaExceededError(bytes.length, "no room (test)"));
    }
    this.puts++;
    this.chunks.set(storageKey(cid), bytes);
    return Promise.resolve();
  }
  getChunk(cid: string): Promise<Uint8Array> {
    const bytes = this.chunks.get(storageKey(cid));
    return bytes ? Promise.resolve(bytes) : Promise.reject(new ChunkNotFoundError(cid));
  }
  hasChunk(cid: string): Promise<boolean> {
    return Promise.resolve(this.chunks.has(storageKey(cid)));
  }
  async proveChunks(nonce: Uint8Array, cids: readonly string[], options?: ProveChunksOptions) {
    this.proves += cids.length;
    for (const cid of cids) this.asked.add(storageKey(cid));
    const proofs: (Uint8Array | null)[] = [];
    for (const cid of cids) {
      const bytes = this.chunks.get(storageKey(cid));
      proofs.push(bytes ? await possessionProof(nonce, this.publicKey, bytes) : null);
    }
    if (this.mode.namesUnkept === "all") options?.onUnkept?.(cids);
    if (this.mode.namesUnkept === "held") {
      const held = cids.filter((cid) => this.chunks.has(storageKey(cid)));
      if (held.length > 0) options?.onUnkept?.(held);
    }
    return proofs;
  }
}

/** The chunk keys the owner's record in `dir` counts as given to `peer`. */
export async function givenTo(dir: string, peer: StoragePeer): Promise<string[]> {
  const record = await GivenChunks.open(`${dir}/${GIVEN_CHUNKS_FILE}`);
  try {
    return record.chunksOf(peer.id);
  } finally {
    await record.close();
  }
}

/** The reasons of the `invalid` verdicts in `verdicts` against `peer`. */
export const reasonsAgainst = (verdicts: Verdict[], peer: StoragePeer): (string | undefined)[] =>
  verdicts.filter((v) => v.outcome === "invalid" && toHex(v.target) === peer.id)
    .map((v) => (v as { reason?: string }).reason);
