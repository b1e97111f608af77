/**
 * A holder this node demoted (placed last for every chunk after failing its audits in
 * `DEMOTION_STRIKES` rounds) that comes back under a fresh key from the same address group is
 * placed last too (`storage/_replica_records.ts`): keyed by key alone, the fresh key held copies
 * of 504 of 1,000 chunks at once, and the whole penalty cost the host one key pair (review s76
 * vstore F5). Peers in no group (loopback, in-memory), and those in a group that names no address
 * (every relayed peer shares one, `(unaddressed)`), are never held to another's demotion, as
 * placement does not group them either.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cidOf, storageKey } from "../../protocols/cid.ts";
import { DEMOTION_ROUNDS, DEMOTION_STRIKES } from "../../storage/audit_penalties.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { MemoryPeer } from "./_memory_peer.ts";

const enc = new TextEncoder();
const KEYS = Array.from({ length: 600 }, (_, i) => storageKey(cidOf(enc.encode(`chunk ${i}`))));

/** A holder in memory seen in `group` (what the NetworkActor gives a storage peer). */
const grouped = (group?: string) => Object.assign(new MemoryPeer(), { group });

/** Of {@link KEYS}, how many `id` is one of the 3 holders of. */
const holderOf = (store: ReplicatedStore, id: string) =>
  KEYS.filter((k) => store.holders(k).some((p) => p.id === id)).length;

/** A store over 5 honest holders in 5 groups and `k1` in `group`, `k1` demoted. */
function demoted(group: string | undefined) {
  const honest = Array.from({ length: 5 }, (_, i) => grouped(`198.51.100.${i + 1}`));
  const k1 = grouped(group);
  const store = new ReplicatedStore([...honest, k1], { replicas: 3, writeQuorum: 1 });
  for (let i = 0; i < DEMOTION_STRIKES; i++) {
    store.failedAudit(k1.id, []);
    store.auditRoundEnded();
  }
  assert.equal(store.demoted(k1.id), true);
  assert.equal(holderOf(store, k1.id), 0);
  return { store, honest, k1 };
}

Deno.test("a fresh key from the address group of a demoted holder that left is placed last too, and a key from another group is not", () => {
  for (const group of ["203.0.113.66", "2001:db8:66::/48"]) {
    const { store, honest, k1 } = demoted(group);
    const k2 = grouped(group); // the same host, a fresh key
    const k3 = grouped("192.0.2.200"); // another host
    store.setPeers([...honest, k2, k3]);
    assert.equal(holderOf(store, k2.id), 0, `${group}: the fresh key is a holder`);
    assert.ok(holderOf(store, k3.id) > 0, "a key of another group is in rank");
    assert.equal(store.demoted(k2.id), false, "its own record is clean: only its rank is held");

    // Beside the demoted key, in the same group: placed last as well.
    const k4 = grouped(group);
    store.setPeers([...honest, k1, k4]);
    assert.equal(holderOf(store, k4.id), 0, `${group}: a key beside the demoted one is a holder`);
    assert.equal(holderOf(store, k1.id), 0);
  }
});

Deno.test("a fresh key from a demoted holder's group is back in rank once that demotion ends", () => {
  const { store, honest, k1 } = demoted("203.0.113.66");
  const k2 = grouped("203.0.113.66");
  store.setPeers([...honest, k2]);
  assert.equal(holderOf(store, k2.id), 0);
  for (let i = 0; i <= DEMOTION_ROUNDS; i++) store.auditRoundEnded();
  assert.equal(store.demoted(k1.id), false);
  assert.ok(holderOf(store, k2.id) > 0, "still held to a demotion that ran out");
});

Deno.test("peers in no group, or in the one group every relayed peer shares, are not held to another's demotion", () => {
  for (const group of [undefined, "(unaddressed)"]) {
    const { store, honest } = demoted(group);
    const other = grouped(group);
    store.setPeers([...honest, other]);
    assert.ok(holderOf(store, other.id) > 0, `${String(group)}: held to another key's demotion`);
  }
});
