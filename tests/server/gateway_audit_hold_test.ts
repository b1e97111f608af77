/**
 * The owner's HTTP gateway holds a chunk it is challenging a holder on, as `get_chunk` does (review
 * s81 vaudit, F1): a holder that keeps nothing and fetches each challenged chunk from the owner's
 * `/ipfs/<cid>` (raw block, CAR; no key needed) is refused with 503 `chunk_under_audit` and
 * `Retry-After`, and fails the round; once the challenge is over the gateway serves the chunk again.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import type { AuditRoundReport } from "../../storage/audit_round.ts";
import { possessionProof, type StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import {
  auditNodeOptions,
  auditRounds,
  CHUNK,
  identityOf,
  putFile,
} from "../storage/_audit_owner.ts";

/** What the owner's gateway answered a relaying holder during a challenge. */
interface Refusal {
  status: number;
  retryAfter: string | null;
  code: string | undefined;
}

/** Acks every put, keeps nothing, answers each challenge from the owner's gateway (no key). */
class GatewayRelayHolder implements StoragePeer {
  readonly id: string;
  readonly refused: Refusal[] = [];
  relayed = 0;
  constructor(readonly publicKey: Uint8Array, readonly gateway: () => string) {
    this.id = toHex(publicKey);
  }
  putChunk(): Promise<void> {
    return Promise.resolve();
  }
  /** The owner's own reads of it: "not now", so the owner reads its own copy. */
  getChunk(): Promise<Uint8Array> {
    return Promise.reject(new Error("busy"));
  }
  hasChunk(): Promise<boolean> {
    return Promise.resolve(true);
  }
  async #fetch(cid: string, format: "raw" | "car"): Promise<Uint8Array | null> {
    const response = await fetch(`${this.gateway()}/ipfs/${cid}?format=${format}`);
    if (response.ok) return new Uint8Array(await response.arrayBuffer());
    const body = await response.json().catch(() => ({}));
    this.refused.push({
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
      code: body?.error?.code,
    });
    return null;
  }
  async proveChunks(nonce: Uint8Array, cids: readonly string[]) {
    const out: (Uint8Array | null)[] = [];
    for (const cid of cids) {
      await this.#fetch(cid, "car"); // a CAR of the chunk is refused as well
      const bytes = await this.#fetch(cid, "raw");
      if (bytes !== null) this.relayed++;
      out.push(bytes && await possessionProof(nonce, this.publicKey, bytes));
    }
    return out;
  }
}

Deno.test("a holder relaying challenged chunks from the owner's gateway is refused 503 chunk_under_audit with Retry-After, and fails every round", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gateway_audit_hold_" });
  const verdicts: Verdict[] = [];
  // Four copies over four nodes: the owner holds one of every chunk, the reference its audits
  // judge each answer against (the cheaters refuse its reads). With three, a chunk placed on the
  // three cheaters alone had no reference, was left unjudged (`no_reference`, as designed), and a
  // holder whose draw fell on those only passed its round: 1 run in 8, more in later rounds, where
  // the chunks a holder failed are re-placed away from it and those left are mostly such chunks.
  const owner = new StorageActor({
    ...auditNodeOptions(dir, identityOf(1), 4),
    onVerdict: (v) => void verdicts.push(v),
  });
  await owner.preStart();
  const app = createApp({ inference: {} as InferencePort });
  const port = storageGateway({ ask: (m) => owner.receive(m as never) as never });
  app.route("/", gatewayRoutes(() => port));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  const cheaters = [2, 3, 4].map((n) => new GatewayRelayHolder(identityOf(n).publicKey, () => url));
  let rounds: AuditRoundReport[] = [];
  let servedAfter = 0;
  let ownChunks = 0;
  try {
    unwrapReply(await owner.receive({ type: "set_peers", peers: cheaters }));
    const file = await putFile(owner, pseudoRandomBytes(16 * CHUNK, 7));
    const blocks =
      unwrapReply<{ chunks: string[] }>(await owner.receive({ type: "stat", cid: file })).chunks;
    rounds = await auditRounds(owner, 3);
    // No challenge open now: the chunks this node holds are served again.
    for (const cid of blocks) {
      const local = await fetch(`${url}/ipfs/${cid}?format=raw`, {
        headers: { "cache-control": "only-if-cached" },
      });
      await local.body?.cancel();
      if (local.ok) ownChunks++;
      const response = await fetch(`${url}/ipfs/${cid}?format=raw`);
      await response.body?.cancel();
      if (response.ok) servedAfter++;
    }
  } finally {
    await server.shutdown();
    await owner.repairIdle();
    await owner.postStop();
    await Deno.remove(dir, { recursive: true });
  }
  const refusals = cheaters.flatMap((c) => c.refused);
  // (A repair's placement check, which holds nothing, may still be answered so: the audit after
  // it is not.)
  assert.ok(refusals.length > 0, "the audits' challenged chunks were refused");
  for (const refusal of refusals) {
    assert.deepEqual(refusal, { status: 503, retryAfter: "5", code: "chunk_under_audit" });
  }
  // Every holder fails every round it is audited in, with a signed verdict against it; every
  // chunk asked is judged (the owner holds a reference copy of each), so no draw lets one pass.
  assert.ok(
    rounds.every((r) => r.holders === 3 && r.failedHolders === 3 && r.unjudged === 0),
    JSON.stringify(rounds),
  );
  const blamed = new Set(
    verdicts.filter((v) => v.outcome === "invalid").map((v) => toHex(v.target)),
  );
  assert.deepEqual(blamed, new Set(cheaters.map((c) => c.id)));
  assert.ok(ownChunks > 0);
  assert.ok(servedAfter >= ownChunks, "the hold ends with the challenge");
});
