/**
 * A holder proves a chunk it keeps for no one on the asker's behalf (its own file's chunk, no
 * replica room left for the asker) and names it unkept only to an asker that says it reads
 * `unkept` (`storage.prove`'s `unkept: true`, sent where `ProveChunksOptions.onUnkept` is set). An
 * asker on older code sends no such flag and drops the reply's `unkept`: it recorded the proof as a
 * copy given, and signed `missing_chunk` once the holder unpinned and collected its own file (review
 * s82 vstore, F1). Such an asker gets `null` for the chunk, the answer it got before. The older
 * asker is stood in for by {@link OlderAsker}: today's owner, asking the way older code asked.
 */
import assert from "node:assert/strict";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Identity } from "../../protocols/identity.ts";
import { ProveMessage } from "../../protocols/storage_messages.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { ConnectionStoragePeer } from "../../storage/connection_storage_peer.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../../storage/given_chunks.ts";
import {
  type PeerCallOptions,
  possessionProof,
  type StoragePeer,
} from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { auditRounds, CHUNK, identityOf, putFile, reach, TempDirs } from "./_audit_owner.ts";
import { auditOwner, chunksOf, quotaHolder, silentPeer } from "./_unkept_fixture.ts";

/**
 * A remote holder as an asker on code before `unkept` reached it: `storage.prove { nonce, cids }`
 * with no flag, and only the reply's proofs read (its schema dropped `unkept`).
 */
class OlderAsker implements StoragePeer {
  readonly id: string;
  readonly #peer: ConnectionStoragePeer;
  constructor(readonly connection: Connection, readonly publicKey: Uint8Array) {
    this.id = toHex(publicKey);
    this.#peer = new ConnectionStoragePeer(connection, publicKey);
  }
  putChunk(cid: string, bytes: Uint8Array, options?: PeerCallOptions): Promise<void> {
    return this.#peer.putChunk(cid, bytes, options);
  }
  getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    return this.#peer.getChunk(cid, options);
  }
  hasChunk(cid: string, options?: PeerCallOptions): Promise<boolean> {
    return this.#peer.hasChunk(cid, options);
  }
  async proveChunks(nonce: Uint8Array, cids: readonly string[], options?: PeerCallOptions) {
    const reply = await this.connection.request(ProveMessage, { nonce, cids: [...cids] }, {
      signal: options?.signal,
    });
    return reply.proofs;
  }
}

/** H: a node with no replica room for anyone, holding `bytes` as its own pinned file. */
async function holderWithOwnFile(dirs: TempDirs, holderId: Identity, ownerId: Identity) {
  const holder = quotaHolder(await dirs.make(), holderId, 1); // no room for anyone's replicas
  await holder.preStart();
  const file = await putFile(holder, pseudoRandomBytes(8 * CHUNK, 11));
  const chunks = await chunksOf(holder, file);
  // With the owner, r = 2 ranks H among every chunk's holders: a proof of one is kept for the
  // asker if its share allows (it does not).
  unwrapReply(
    await holder.receive({ type: "set_peers", peers: [silentPeer(ownerId.publicKey)] }),
  );
  return { holder, file, chunks };
}

Deno.test("storage.prove: a chunk kept for no one is proven and named unkept only to an asker that sets unkept, null to one that does not", async () => {
  const dirs = new TempDirs("unkept_older_wire_");
  const ownerId = identityOf(1);
  const holderId = identityOf(2);
  const { holder, chunks } = await holderWithOwnFile(dirs, holderId, ownerId);
  const conn = await reach(holder, holderId, ownerId);
  try {
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const older = await conn.client.request(ProveMessage, { nonce, cids: chunks });
    assert.deepEqual(older.proofs, chunks.map(() => null), "the older asker reads null, as before");
    assert.equal(older.unkept, undefined);
    const current = await conn.client.request(ProveMessage, { nonce, cids: chunks, unkept: true });
    assert.ok(current.proofs.every((p) => p instanceof Uint8Array), "the bytes are here: proven");
    assert.deepEqual(current.unkept, chunks.map((_, i) => i));
    // And the proofs are H's own, over the bytes it holds.
    const bytes = unwrapReply<Uint8Array>(
      await holder.receive({ type: "get_block", cid: chunks[0], local: true } as never),
    );
    assert.deepEqual(current.proofs[0], await possessionProof(nonce, holderId.publicKey, bytes));
  } finally {
    await conn.close();
    await holder.repairIdle();
    await holder.postStop();
    await dirs.removeAll();
  }
});

Deno.test("an owner asking as older code did counts none of a holder's own-file chunks as given, and signs no verdict after the holder unpins them", async () => {
  const dirs = new TempDirs("unkept_older_owner_");
  const ownerId = identityOf(1);
  const holderId = identityOf(2);
  const holderKey = toHex(holderId.publicKey);
  const verdicts: Verdict[] = [];
  const ownerDir = await dirs.make();
  const { holder, file, chunks } = await holderWithOwnFile(dirs, holderId, ownerId);
  const owner = auditOwner(ownerDir, ownerId, 2, verdicts);
  await owner.preStart();
  const conn = await reach(holder, holderId, ownerId);
  let givenWhileHeld = -1;
  let verdictsWhileHeld = -1;
  let gc: { removed: number } | undefined;
  try {
    assert.equal(await putFile(owner, pseudoRandomBytes(8 * CHUNK, 11)), file);
    unwrapReply(
      await owner.receive({
        type: "set_peers",
        peers: [new OlderAsker(conn.client, holderId.publicKey)],
      }),
    );
    unwrapReply(await owner.receive({ type: "repair" }));
    await auditRounds(owner, 2);
    verdictsWhileHeld = verdicts.length;
    const record = await GivenChunks.open(`${ownerDir}/${GIVEN_CHUNKS_FILE}`);
    givenWhileHeld = chunks.filter((cid) => record.has(holderKey, cid)).length;
    await record.close();
    // H drops its own file: it never kept a copy for the owner.
    unwrapReply(await holder.receive({ type: "unpin", cid: file }));
    gc = unwrapReply<{ removed: number }>(await holder.receive({ type: "gc", graceMs: 0 }));
    await auditRounds(owner, 3);
  } finally {
    await conn.close();
    await owner.repairIdle();
    await holder.repairIdle();
    await owner.postStop();
    await holder.postStop();
    await dirs.removeAll();
  }
  assert.equal(verdictsWhileHeld, 0);
  assert.equal(givenWhileHeld, 0, "the owner's record counts H's own chunks as copies given");
  assert.ok(gc !== undefined && gc.removed > 0, "H's own file's chunks are gone");
  assert.deepEqual(
    verdicts.map((v) => `${v.outcome} ${(v as { reason?: string }).reason}`),
    [],
    "a holder that never kept a copy for the owner is judged for none",
  );
});
