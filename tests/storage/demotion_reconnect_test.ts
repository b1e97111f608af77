/**
 * What this node's own audits found against a holder outlives the holder's reconnect (review s75,
 * finding 1): a `set_peers` without it and one with it again (every dropped connection and every
 * redial) kept neither its demotion nor its failed-audit marks, so a liar was back in rank at once
 * and an honest holder that lost one chunk was signed against for it again after each restart.
 * They are forgotten only once it has been away for the departed-holder retention.
 */
import assert from "node:assert/strict";
import { storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { DEPARTED_HOLDER_RETENTION_MS, GivenChunks } from "../../storage/given_chunks.ts";
import { DEMOTION_STRIKES, ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** Acknowledges every put and stores nothing. */
class Liar extends MemoryPeer {
  override putChunk(_cid: string, _bytes: Uint8Array, _o?: PeerCallOptions): Promise<void> {
    return Promise.resolve();
  }
}

/** A store over 4 honest peers and a liar, the liar demoted by 3 rounds of failed audits. */
async function demotedLiar(now: () => number) {
  const honest = Array.from({ length: 4 }, () => new MemoryPeer());
  const liar = new Liar();
  const all = [...honest, liar];
  const store = new ReplicatedStore(all, {
    replicas: 3,
    writeQuorum: 2,
    given: new GivenChunks({ now }),
  });
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (cid) => store.get(cid),
    wasGiven: (h, cid) => store.wasGiven(h, cid),
  });
  const given: string[] = [];
  for (let i = 0; given.length < 12; i++) {
    const key = storageKey(await store.put(new TextEncoder().encode(`chunk ${i}`)));
    await store.flush();
    if (store.wasGiven(liar.id, key)) given.push(key);
  }
  const failed = new Set<string>();
  for (let round = 0; round < DEMOTION_STRIKES; round++) {
    const result = await auditor.audit(liar, given);
    assert.equal(result.passed, false);
    for (const f of result.failures) failed.add(storageKey(f.cid));
    store.failedAudit(liar.id, result.failures.map((f) => storageKey(f.cid)));
    store.auditRoundEnded();
  }
  assert.equal(store.demoted(liar.id), true);
  return { store, honest, liar, all, failed: [...failed] };
}

Deno.test("a demoted holder that leaves and rejoins within the retention stays demoted and placed last", async () => {
  let clock = 1_000_000;
  const { store, honest, liar, all, failed } = await demotedLiar(() => clock);
  store.setPeers(honest);
  clock += DEPARTED_HOLDER_RETENTION_MS - 1;
  store.setPeers(all);
  assert.equal(store.demoted(liar.id), true);
  for (const key of failed) assert.equal(store.holders(key).includes(liar), false, key);
  let placedOnLiar = 0;
  for (let i = 0; i < 30; i++) {
    const key = storageKey(await store.put(new TextEncoder().encode(`after ${i}`)));
    await store.flush();
    if (store.wasGiven(liar.id, key)) placedOnLiar++;
  }
  assert.equal(placedOnLiar, 0, "a new put counted a copy on the demoted liar");
});

Deno.test("a demoted holder away for the whole retention comes back with its penalties forgotten", async () => {
  let clock = 1_000_000;
  const { store, honest, liar, all, failed } = await demotedLiar(() => clock);
  store.setPeers(honest);
  clock += DEPARTED_HOLDER_RETENTION_MS;
  store.setPeers(all); // the call that brings it back forgets it, as the given record does
  assert.equal(store.demoted(liar.id), false);
  assert.equal(failed.some((key) => store.holders(key).includes(liar)), true);
});

Deno.test("an honest holder that lost one chunk gets one missing_chunk verdict, not one per restart", async () => {
  const peers = Array.from({ length: 5 }, () => new MemoryPeer());
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3 });
  const verdicts: string[] = [];
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (cid, signal) => store.get(cid, { signal, readRepair: false }),
    wasGiven: (h, cid) => store.wasGiven(h, cid),
    onVerdict: (v) => {
      verdicts.push(v.reason);
    },
  });
  const victim = peers[0];
  let lost = "";
  for (let i = 0; lost === ""; i++) {
    const key = storageKey(await store.put(new TextEncoder().encode(`c ${i}`)));
    await store.flush();
    if (store.wasGiven(victim.id, key)) lost = key;
  }
  victim.chunks.delete(lost);
  for (let round = 0; round < 3; round++) {
    if (store.holders(lost).includes(victim)) {
      const result = await auditor.audit(victim, [lost]);
      if (result.failures.length > 0) {
        store.failedAudit(victim.id, result.failures.map((f) => storageKey(f.cid)));
        await store.repair([lost]); // onto the next peer
      }
    }
    store.auditRoundEnded();
    store.setPeers(peers.slice(1)); // the victim restarts: it leaves and comes back
    store.setPeers(peers);
  }
  assert.deepEqual(verdicts, ["missing_chunk"]);
  assert.equal(peers.filter((p) => p.chunks.has(lost)).length, 3);
});
