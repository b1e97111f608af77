/**
 * Which models a router offers its clients, from what its workers listed: one entry per CID for
 * `/v1/models`, the names `InferenceGateway.resolveModel` resolves, and its default model (the
 * first text model listed). Every listing is a peer's claim, and any key may connect: only the
 * CID is the model's own (it addresses the model's bytes, `inference/model_identity.ts`), so
 *
 * 1. **Kind**: the CID says it — a text model's id is a dag-cbor CID, a tensor model's a raw
 *    one. A listing whose kind its CID contradicts is not believed (a CID of neither form, as
 *    tests use, says nothing).
 * 2. **Name**: a CID's name and kind are those the most peer keys list it under — counted by
 *    their standing in this node's ledger: keys with credit for work done here first, then
 *    keys with stake, then all — a key counted once however many connections or entries it
 *    lists the CID in; a tie keeps the listing seen first. The first listing seen named it
 *    before: one stranger that connected first renamed (or called a tensor model) an honest
 *    model every other worker listed, and clients asking by its name were told it did not
 *    exist. Credit comes first because it is the one standing a key cannot give itself: stake
 *    is a pledge any fresh key signs on connect (`protocols/stake_pledge.ts`), so two fresh
 *    keys that pledged took the name of a model whose worker had done the network's work for
 *    it, and one made it ambiguous. Stake counts free or locked: it is not the free stake a
 *    worker is picked by (`worker_choice.ts`: can it back one more receipt?), and a busy
 *    worker's stake is all locked by the receipts it just signed (review s54: counted as a
 *    stranger's, its models' names went to two fresh keys).
 * 3. **Order**: the CIDs the most keys serve first (counted as in 2), ties in the order seen. The
 *    default model is thus the text model the most workers serve: it was the first connected
 *    peer's, so one stranger took every job that named no model.
 *
 * @module
 */
import type { WireModelInfo } from "../protocols/inference_messages.ts";
import type { WorkerCandidate } from "./worker_choice.ts";

/**
 * How a text model's id begins: a CIDv1 of the dag-cbor codec and a sha2-256 digest, in base32
 * (`model_identity.ts` `textModelIdFromCids`).
 */
const TEXT_MODEL_ID_PREFIX = "bafyrei";
/** How a tensor model's id begins: a raw-codec sha2-256 CIDv1 in base32 (`tensorModelId`). */
const TENSOR_MODEL_ID_PREFIX = "bafkrei";

/** What one open, unconvicted worker connection listed. */
export interface ModelListing {
  /** The worker's hex key. */
  key: string;
  /** Its account in this node's ledger, if known. */
  standing?: WorkerCandidate["standing"];
  /** What it answered to `inference.list_models`. */
  models: readonly WireModelInfo[];
}

/**
 * How many keys back a claim, by standing (rule 2): with credit for work, with stake, all of
 * them; and when it was first seen.
 */
interface Support {
  earned: number;
  staked: number;
  keys: number;
  first: number;
}

/**
 * The models to offer, one per CID, by the module's rules.
 *
 * @example
 * ```ts
 * import { listedModels } from "./model_listing.ts";
 * const m = (name: string) => ({ cid: "bafkm", name, kind: "text" as const });
 * const list = listedModels([
 *   { key: "aa", models: [m("evil")] },
 *   { key: "bb", models: [m("m")] },
 *   { key: "cc", models: [m("m")] },
 * ]);
 * console.log(list[0].name); // m
 * ```
 */
export function listedModels(listings: Iterable<ModelListing>): WireModelInfo[] {
  /** CID → claim (name and kind) → its first listing and support. */
  const claims = new Map<string, Map<string, { model: WireModelInfo; support: Support }>>();
  const perCid = new Map<string, Support>();
  /** `key cid` pairs counted: a key's duplicates and its other connections add nothing. */
  const counted = new Set<string>();
  let seen = 0;
  for (const { key, standing, models } of listings) {
    const earned = standing !== undefined && standing.balance > 0;
    const staked = earned || (standing !== undefined && standing.stake > 0);
    for (const model of models) {
      if (!kindFitsCid(model)) continue;
      const pair = `${key} ${model.cid}`; // a key is hex: no space in it
      if (counted.has(pair)) continue;
      counted.add(pair);
      let byClaim = claims.get(model.cid);
      if (byClaim === undefined) {
        byClaim = new Map();
        claims.set(model.cid, byClaim);
        perCid.set(model.cid, { earned: 0, staked: 0, keys: 0, first: seen });
      }
      const claimKey = `${model.kind} ${model.name}`; // a kind has no space in it
      let claim = byClaim.get(claimKey);
      if (claim === undefined) {
        claim = { model, support: { earned: 0, staked: 0, keys: 0, first: seen } };
        byClaim.set(claimKey, claim);
      }
      seen++;
      count(claim.support, earned, staked);
      count(perCid.get(model.cid)!, earned, staked);
    }
  }
  const chosen = [...perCid].sort(([, a], [, b]) => compare(a, b)).map(([cid]) =>
    [...claims.get(cid)!.values()].sort((a, b) => compare(a.support, b.support))[0]
  );
  // 4. A name two models are listed under belongs to the one strictly more keys list under it
  //    (counted as in 2); the others are listed by their CID (still there to ask for by it). A
  //    tie names neither, and the edge refuses the name as ambiguous.
  const byName = new Map<string, { model: WireModelInfo; support: Support }[]>();
  for (const claim of chosen) {
    const same = byName.get(claim.model.name);
    if (same === undefined) byName.set(claim.model.name, [claim]);
    else same.push(claim);
  }
  return chosen.map(({ model, support }) => {
    const outnumbered = byName.get(model.name)!.some((other) => stronger(other.support, support));
    return outnumbered ? { ...model, name: model.cid } : model;
  });
}

/** Whether `a` has more keys than `b` by rule 2's standing (not which came first). */
function stronger(a: Support, b: Support): boolean {
  return bySupport(a, b) < 0;
}

function count(support: Support, earned: boolean, staked: boolean): void {
  support.keys++;
  if (staked) support.staked++;
  if (earned) support.earned++;
}

/** More keys with credit first, then more with stake, then more keys (0: as many). */
function bySupport(a: Support, b: Support): number {
  return b.earned - a.earned || b.staked - a.staked || b.keys - a.keys;
}

/** By support, then the one seen first. */
function compare(a: Support, b: Support): number {
  return bySupport(a, b) || a.first - b.first;
}

/**
 * Whether `model`'s kind is the one its CID's codec says (any, for a CID of neither form). By
 * its prefix, not by parsing it: this runs over every listing at each request a router resolves
 * a model for, and a parse per listing cost about 15 µs.
 */
function kindFitsCid(model: WireModelInfo): boolean {
  if (model.cid.startsWith(TEXT_MODEL_ID_PREFIX)) return model.kind === "text";
  if (model.cid.startsWith(TENSOR_MODEL_ID_PREFIX)) return model.kind === "tensor";
  return true;
}
