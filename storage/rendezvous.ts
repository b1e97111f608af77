/**
 * Rendezvous (highest-random-weight) hashing: which peers hold a chunk.
 *
 * Every peer gets a score SHA-256(cid digest ‖ peer id) for each CID; the r highest scores hold
 * it. Any node that knows the peer set computes the same holders without coordination, and
 * when a peer joins or leaves only the chunks it scores highest on move (about 1/n of them),
 * unlike `hash mod n`, which reshuffles nearly everything.
 *
 * @module
 */
import { cidDigest } from "../protocols/cid.ts";
import { sha256 } from "../protocols/hash.ts";

const encoder = new TextEncoder();

/**
 * All `peers` ordered by their rendezvous score for `cid`, best first. The first r are the
 * holders; the rest are the fallback order when a holder fails.
 *
 * @example
 * ```ts
 * import { rankPeers } from "./rendezvous.ts";
 * const peers = [{ id: "a" }, { id: "b" }, { id: "c" }];
 * const holders = rankPeers("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", peers)
 *   .slice(0, 2);
 * ```
 */
export function rankPeers<P extends { readonly id: string }>(
  cid: string,
  peers: readonly P[],
): P[] {
  const digest = cidDigest(cid);
  const scored = peers.map((peer) => {
    const id = encoder.encode(peer.id);
    const input = new Uint8Array(digest.length + id.length);
    input.set(digest);
    input.set(id, digest.length);
    return { peer, score: sha256(input) };
  });
  scored.sort((a, b) => compareBytes(b.score, a.score) || (a.peer.id < b.peer.id ? -1 : 1));
  return scored.map((s) => s.peer);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}
