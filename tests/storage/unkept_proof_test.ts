/**
 * A holder's proof names a chunk "unkept" when the holder has it as its own file's chunk but no
 * replica room left for the asker (`ProveChunksOptions.onUnkept`, review s81 vaudit2, F1). The
 * owner's placement check takes such a proof as no copy: it records nothing as given, sends the
 * copy on to the next peer, and blames no one when the holder later drops the chunk. Any other
 * proof is a copy, held to: a holder that proves a chunk in a placement check and drops it after
 * is caught by the next audit (the guard a first fix, which recorded proofs not at all, broke).
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { ProofsMessage } from "../../protocols/storage_messages.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { auditRounds, CHUNK, identityOf, putFile, TempDirs } from "./_audit_owner.ts";
import { auditOwner, chunksOf, givenTo, MemoryHolder, reasonsAgainst } from "./_unkept_fixture.ts";

/**
 * The owner stores a file with no peers, then gets `holders` (H first, which has every chunk of
 * the file already), repairs the file (each holder proves or is given each chunk) and runs a
 * round; H drops everything, and 3 more rounds.
 */
async function scenario(holders: MemoryHolder[], replicas: number) {
  const dirs = new TempDirs("unkept_proof_");
  const verdicts: Verdict[] = [];
  const ownerDir = await dirs.make();
  const owner = auditOwner(ownerDir, identityOf(1), replicas, verdicts);
  await owner.preStart();
  let chunks: string[] = [];
  try {
    const file = await putFile(owner, pseudoRandomBytes(8 * CHUNK, 5));
    chunks = await chunksOf(owner, file);
    for (const cid of chunks) {
      const bytes = unwrapReply<Uint8Array>(
        await owner.receive({ type: "get_block", cid, local: true } as never),
      );
      holders[0].chunks.set(storageKey(cid), bytes);
    }
    unwrapReply(await owner.receive({ type: "set_peers", peers: holders }));
    // Every chunk checked on its holders: a proof, or a copy given.
    unwrapReply(await owner.receive({ type: "repair" }));
    await auditRounds(owner, 1);
    holders[0].chunks.clear();
    await auditRounds(owner, 3);
  } finally {
    await owner.repairIdle();
    await owner.postStop();
  }
  const givenToH = (await givenTo(ownerDir, holders[0])).length;
  await dirs.removeAll();
  const against = (peer: StoragePeer) => reasonsAgainst(verdicts, peer);
  return { chunks, against, givenToH };
}

Deno.test("a holder that proves a chunk in a placement check, takes no copy and then drops it is caught by the next audit", async () => {
  const cheater = new MemoryHolder(identityOf(2).publicKey, {
    takesCopies: false,
    namesUnkept: "none",
  });
  const { against } = await scenario([cheater], 1);
  assert.ok(against(cheater).length > 0, "the proof counted as a copy it is held to");
  assert.ok(against(cheater).every((reason) => reason === "missing_chunk"), `${against(cheater)}`);
});

Deno.test("a holder that proves a chunk but names it unkept is no copy: the copy goes to the next peer, and its drop is blamed on no one", async () => {
  const h = new MemoryHolder(identityOf(2).publicKey, { takesCopies: false, namesUnkept: "held" });
  const next = new MemoryHolder(identityOf(3).publicKey, {
    takesCopies: true,
    namesUnkept: "none",
  });
  const { chunks, against, givenToH } = await scenario([h, next], 1);
  assert.deepEqual(against(h), [], "H never kept a copy for the owner");
  assert.deepEqual(against(next), []);
  // Each chunk's one copy is on the first peer past H in its rank (the owner itself is one: it
  // holds its files here), also where H ranks first: handed on, never counted on H.
  const ranked = (cid: string) =>
    rankPeers(storageKey(cid), [h, next, { id: toHex(identityOf(1).publicKey) }]);
  const onNext = chunks.filter((cid) => ranked(cid).find((p) => p.id !== h.id)?.id === next.id);
  assert.ok(onNext.some((cid) => ranked(cid)[0].id === h.id), "some were H's to hold");
  assert.deepEqual(onNext.filter((cid) => !next.chunks.has(storageKey(cid))), []);
  assert.equal(givenToH, 0, "the owner's record counts no copy on H");
});

Deno.test("storage.proofs names unkept chunks by index, and a reply naming them parses under the schema of a node from before (proofs only)", () => {
  const proof = new Uint8Array(32);
  const reply = { proofs: [proof, null], unkept: [0] };
  const parsed = ProofsMessage.schema.safeParse(reply);
  assert.ok(parsed.success);
  assert.deepEqual(parsed.data, reply);
  assert.equal(ProofsMessage.schema.safeParse({ proofs: [proof], unkept: [64] }).success, false);
  // The reply's schema up to review s81 vaudit2: not strict, so the field is dropped, not refused.
  const before = z.object({ proofs: z.array(z.instanceof(Uint8Array).nullable()).max(64) });
  assert.deepEqual(before.parse(reply), { proofs: [proof, null] });
});
