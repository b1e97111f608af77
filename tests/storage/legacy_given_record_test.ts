/**
 * The owner's given-chunks record already says holder H was given chunks that H holds only as
 * its own (pinned) file, with no replica room left for the owner: what code before review s81
 * (vaudit, F2) recorded from a proof of an own chunk, kept in `given-chunks.log` across the
 * upgrade. H proves them, and names them kept for no one on the owner's behalf (`unkept`, over the
 * wire): no verdict while it holds them, the owner forgets the pairs (durably), and none after H
 * unpins and collects its own file either (review s81 vaudit2, F1: three `missing_chunk` verdicts
 * against a holder that held 8/8 chunks, when it answered null).
 */
import assert from "node:assert/strict";
import type { StorageActor } from "../../actors/storage_actor.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../../storage/given_chunks.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { auditRounds, CHUNK, identityOf, putFile, reach, TempDirs } from "./_audit_owner.ts";
import { auditOwner, chunksOf, quotaHolder, silentPeer } from "./_unkept_fixture.ts";

Deno.test("a given record of a holder's own chunks that it keeps no replica of: proven, forgotten, and no verdict before or after it drops its file", async () => {
  const dirs = new TempDirs("legacy_given_");
  const ownerId = identityOf(1);
  const holderId = identityOf(2);
  const holderKey = toHex(holderId.publicKey);
  const verdicts: Verdict[] = [];
  const ownerDir = await dirs.make();
  const holder = quotaHolder(await dirs.make(), holderId, 1); // no room for anyone's replicas
  await holder.preStart();
  const bytes = pseudoRandomBytes(8 * CHUNK, 11);
  let owner: StorageActor | undefined;
  let link: Awaited<ReturnType<typeof reach>> | undefined;
  let heldWhileAudited = 0;
  let chunks: string[] = [];
  let verdictsWhileHeld = -1;
  let gc: { removed: number } | undefined;
  try {
    const holderFile = await putFile(holder, bytes);
    chunks = await chunksOf(holder, holderFile);
    // The owner's record as the code before vaudit F2 left it: a proof of H's own chunk counted.
    const seeded = await GivenChunks.open(`${ownerDir}/${GIVEN_CHUNKS_FILE}`);
    for (const cid of chunks) seeded.add(holderKey, cid);
    await seeded.close();
    owner = auditOwner(ownerDir, ownerId, 2, verdicts);
    await owner.preStart();
    link = await reach(holder, holderId, ownerId);
    assert.equal(await putFile(owner, bytes), holderFile);
    unwrapReply(
      await holder.receive({ type: "set_peers", peers: [silentPeer(ownerId.publicKey)] }),
    );
    unwrapReply(await owner.receive({ type: "set_peers", peers: [link.peer] }));
    await auditRounds(owner, 2);
    verdictsWhileHeld = verdicts.length;
    for (const cid of chunks) {
      const got = await holder.receive({ type: "get_block", cid, local: true } as never)
        .then((reply) => unwrapReply<Uint8Array>(reply), () => undefined);
      if (got instanceof Uint8Array && got.length > 0) heldWhileAudited++;
    }
    // H drops its own file: unpin, collect. It never kept a copy for the owner.
    unwrapReply(await holder.receive({ type: "unpin", cid: holderFile }));
    gc = unwrapReply<{ removed: number }>(await holder.receive({ type: "gc", graceMs: 0 }));
    await auditRounds(owner, 3);
  } finally {
    await link?.close();
    await owner?.repairIdle();
    await holder.repairIdle();
    await owner?.postStop();
    await holder.postStop();
  }
  try {
    assert.equal(heldWhileAudited, chunks.length, "H held every chunk while it was audited");
    assert.equal(verdictsWhileHeld, 0, "an honest holder that proves every chunk is blamed");
    assert.ok(gc !== undefined && gc.removed > 0, "H's own file's chunks are gone");
    assert.deepEqual(
      verdicts.map((v) => `${v.outcome} ${(v as { reason?: string }).reason}`),
      [],
      "a holder that never kept a copy for the owner is judged for none",
    );
    // The owner's record on disk no longer holds H to those chunks (the unkept pairs forgotten).
    const reread = await GivenChunks.open(`${ownerDir}/${GIVEN_CHUNKS_FILE}`);
    try {
      assert.deepEqual(chunks.filter((cid) => reread.has(holderKey, cid)), []);
    } finally {
      await reread.close();
    }
  } finally {
    await dirs.removeAll();
  }
});
