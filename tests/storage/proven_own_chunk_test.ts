/**
 * A holder the owner's repair asked to prove a chunk it has as its own (a public file both nodes
 * pinned) counts as given that chunk only when it now keeps it for the owner, as a replica (review
 * s81 vaudit, F2). With no room left for replicas (`replicaQuotaBytes`) it answers that it holds
 * none for the asker (a null proof), so after it unpins and collects its own file, the owner signs
 * no `missing_chunk` against it.
 */
import assert from "node:assert/strict";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { AuditRoundReport } from "../../storage/audit_round.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { auditRounds, CHUNK, identityOf, putFile, reach, TempDirs } from "./_audit_owner.ts";
import { auditOwner, quotaHolder, silentPeer } from "./_unkept_fixture.ts";

async function scenario(replicaQuotaBytes: number | undefined) {
  const dirs = new TempDirs("vaudit_own_");
  const ownerId = identityOf(1);
  const holderId = identityOf(2);
  const verdicts: Verdict[] = [];
  const owner = auditOwner(await dirs.make(), ownerId, 2, verdicts);
  const holder = quotaHolder(await dirs.make(), holderId, replicaQuotaBytes);
  await owner.preStart();
  await holder.preStart();
  const link = await reach(holder, holderId, ownerId);
  const bytes = pseudoRandomBytes(8 * CHUNK, 11);
  const rounds: AuditRoundReport[] = [];
  let holderFile = "";
  let gc: unknown = undefined;
  try {
    // H's own file (the same bytes: a public file both nodes have), put before it knew any peer.
    holderFile = await putFile(holder, bytes);
    const file = await putFile(owner, bytes);
    assert.equal(file, holderFile);
    unwrapReply(
      await holder.receive({ type: "set_peers", peers: [silentPeer(ownerId.publicKey)] }),
    );
    unwrapReply(await owner.receive({ type: "set_peers", peers: [link.peer] }));
    // Round 1: H was given nothing; the placement checks find it holds the chunks and record that.
    rounds.push(...await auditRounds(owner, 1));
    // H drops its own file: unpin, collect.
    unwrapReply(await holder.receive({ type: "unpin", cid: holderFile }));
    gc = unwrapReply(await holder.receive({ type: "gc", graceMs: 0 }));
    rounds.push(...await auditRounds(owner, 3));
  } finally {
    await link.close();
    await owner.repairIdle();
    await holder.repairIdle();
    await owner.postStop();
    await holder.postStop();
    await dirs.removeAll();
  }
  return { verdicts, gc: gc as { removed: number }, rounds };
}

Deno.test("with room for replicas, a proven own chunk becomes a replica: kept through the holder's unpin and gc, no verdict", async () => {
  const { verdicts, gc } = await scenario(undefined);
  assert.equal(verdicts.length, 0);
  assert.equal(gc.removed, 0, "held for the owner");
});

Deno.test("a holder with no room for replicas answers that it holds none for the asker: no verdict after it drops its own file", async () => {
  const { verdicts, gc, rounds } = await scenario(1);
  assert.ok(gc.removed > 0, "its own file's chunks are gone");
  assert.equal(verdicts.length, 0, "a holder that never accepted a copy is judged for none");
  // Not counted as a copy: the owner still checks those chunks' placement, and audits it on none.
  assert.ok(
    rounds.slice(1).every((r) => r.holders === 0 && r.failedHolders === 0 && r.unplaced > 0),
  );
});
