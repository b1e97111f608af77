/**
 * Rendezvous (highest-random-weight) hashing: which peers hold a chunk.
 *
 * Every peer gets a score SHA-256(cid digest ‖ peer id) for each CID; ranked by it, the first r
 * hold it. Any node that knows the peer set computes the same holders without coordination, and
 * when a peer joins or leaves only the chunks it scores highest on move (about 1/n of them),
 * unlike `hash mod n`, which reshuffles nearly everything.
 *
 * **Spread over address groups.** Keys are free, so one host can connect as many storage peers
 * as the per-address bound lets it (32 by default): ranked by key alone, 32 keys from one host
 * beside 5 honest peers held all 3 replicas of 64 % of chunks (review s76 F4), and that one
 * host's loss or lie lost them. So a peer may carry the `group` it connects from (the NetworkActor
 * gives each storage peer the `addressBlock` of its `addressGroup`, `network/connection_limits.ts`:
 * an IPv4 address, an IPv6 /48, since one site given a /48 connects from 65,536 /64s; and one
 * shared group to every peer whose address is not known, a relayed swarm peer: with a /64, or a
 * relayed key, each a group of its own, 32 keys of one /48, or 32 relayed keys, still held all 3
 * replicas of 59 % of chunks, review s76 vstore F1), and the ranking puts, in score order, the
 * best peer of each group first, then every other peer in score order: the first r hold copies in
 * r distinct groups while there are r groups, and with fewer groups (a small private cluster
 * behind one address) every group holds one and the rest fall back to score order, so r holders
 * are still found. A peer with no group counts as a group of its own, which is the ranking by key
 * alone: only a shared group constrains. (A cluster on one host is placed by key: the NetworkActor
 * gives a peer reached over loopback, or an in-memory link, no group, as it has none for itself,
 * so every node of it computes the same holders.)
 *
 * A group is the placing node's view, not a fact every node sees alike: one node reaches a peer
 * over a LAN, another through its NAT, a third through a relay (no address). Only the partition
 * matters, not the names (two nodes that see the same peers as co-located compute the same
 * holders, whatever address each sees), and it differs only where views of co-located peers
 * differ; there two nodes may rank a chunk's holders apart. That degrades as any difference in
 * peer sets does (`holder_repair.ts`): the writer puts copies where its own view says and records
 * it (`given_chunks.ts`), audits ask a peer only for what they gave it, a copy past the first r
 * that was given still counts (`ReplicatedStore.standIns`), and reads walk the whole order.
 *
 * @module
 */
import { cidDigest } from "../protocols/cid.ts";
import { sha256 } from "../protocols/hash.ts";

const encoder = new TextEncoder();

/** What {@link rankPeers} ranks: a peer's id and, where known, the address group it is in. */
export interface RankedPeer {
  /** Stable id (hex of the peer's public key): what its score is computed from. */
  readonly id: string;
  /**
   * The group of peers that may be one host (an `addressGroup`); at most one peer of a group is
   * among the first holders while other groups are left. Absent: a group of its own.
   */
  readonly group?: string;
}

/**
 * All `peers` ordered for `cid`, best first: by rendezvous score, except that the best peer of
 * each address group comes before any second peer of a group (see the module doc). The first r
 * are the holders; the rest are the fallback order when a holder fails.
 *
 * @example
 * ```ts
 * import { rankPeers } from "./rendezvous.ts";
 * const peers = [{ id: "a" }, { id: "b", group: "192.0.2.7" }, { id: "c", group: "192.0.2.7" }];
 * const holders = rankPeers("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", peers)
 *   .slice(0, 2);
 * console.log(holders.some((p) => p.id === "a")); // true: b and c are one host
 * ```
 */
export function rankPeers<P extends RankedPeer>(cid: string, peers: readonly P[]): P[] {
  const digest = cidDigest(cid);
  const scored = peers.map((peer) => {
    const id = encoder.encode(peer.id);
    const input = new Uint8Array(digest.length + id.length);
    input.set(digest);
    input.set(id, digest.length);
    return { peer, score: sha256(input) };
  });
  scored.sort((a, b) => compareBytes(b.score, a.score) || (a.peer.id < b.peer.id ? -1 : 1));
  return spreadOverGroups(scored.map((s) => s.peer));
}

/** `ranked` with the first of each group first, the rest after, each part in rank order. */
function spreadOverGroups<P extends RankedPeer>(ranked: readonly P[]): P[] {
  const seen = new Set<string>();
  const firsts: P[] = [];
  const others: P[] = [];
  for (const peer of ranked) {
    if (peer.group === undefined || !seen.has(peer.group)) {
      if (peer.group !== undefined) seen.add(peer.group);
      firsts.push(peer);
    } else others.push(peer);
  }
  return others.length === 0 ? firsts : [...firsts, ...others];
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}
