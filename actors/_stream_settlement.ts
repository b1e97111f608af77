/**
 * Settling a checked stream claim (`_stream_claims.ts`; `docs/PROOF.md`, "A lost worker's wrong
 * tokens"), who pays in each ending:
 *
 * - confirmed: the worker's stake is cut in this ledger and the accuser (this node for its
 *   router's claim, the peer that signed the stream proof) earns its share
 *   (`Ledger.settleStreamFraud`); the network routes around the worker; the conviction is kept
 *   for the ledgers that connect later (`_catch_up.ts`, written ahead of the settlement); this
 *   node's own claim is signed as a stream proof and passed on to every peer;
 * - refuted: a peer's proof costs its accuser the false-accusation penalty; this node's own claim
 *   costs nobody anything and goes nowhere;
 * - undecided (no model, no input, the check threw past its tries): nobody pays;
 * - a peer's proof goes on to the other peers whatever the outcome here (each checks it itself
 *   and takes it once), also one this node could not decide: the ledgers behind it may hold the
 *   model.
 *
 * A ledger write that fails throws (the actor crashes with the claim still taken, and settles it
 * after its restart); a refusal (`LedgerRejectedError`: settled already, a repeated accusation)
 * settles nothing more. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import { toHex } from "../protocols/hash.ts";
import { jobId } from "../protocols/job.ts";
import type { StreamClaim } from "../protocols/stream_commitment.ts";
import { signStreamProof, type StreamProof } from "../protocols/stream_proof.ts";
import { LedgerRejectedError } from "../proof/ledger_errors.ts";
import type { StreamCheckResult } from "../proof/stream_check.ts";
import { idOf } from "./_catch_up_items.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import type { ValidatorMessage } from "./validator_messages.ts";

/** Hex characters of a key or job in log lines. */
const LOG_CHARS = 12;

/**
 * Stream check reasons a peer's intake answers `malformed` or `bad_signature` (charged to the
 * sender, `network/peer_services.ts`): a proof refuted so is not passed on. (A check's other
 * `malformed`, input bytes the job does not read, is the accuser's signed word, refuted on its
 * merits: passed on, as any refuted proof is, so every ledger charges it alike.)
 */
const SENDERS_MISTAKES: ReadonlySet<string> = new Set(["bad_position", "bad_signature"]);

/** A checked claim: a peer's proof of it with the peer it came from, or none (this node's own). */
export interface CheckedStream {
  claim: StreamClaim;
  proof?: StreamProof;
  origin?: string;
  check: StreamCheckResult;
  /** What names it among the claims taken (the claim's hash, or its peer's proof's). */
  hash: string;
}

/** Settle `checked` in the ledger, and tell the network what follows (see the module doc). */
export async function settleStreamCheck(
  core: ValidatorCore,
  ctx: ActorContext<ValidatorMessage>,
  checked: CheckedStream,
): Promise<void> {
  const { claim, proof, check, hash } = checked;
  const worker = short(claim.worker);
  const job = jobId(claim.job);
  const outcome = check.confirmed ? "confirmed" : check.inconclusive ? "undecided" : "refuted";
  core.stats[proof === undefined ? "streamClaims" : "streamProofs"][outcome]++;
  // Not a proof its sender could have checked was broken (`StreamClaims.onStreamProof` refuses
  // those at the intake; a peer charges whoever passes one on): only what this node verified in
  // full is passed on (review s80 vgfx F4).
  if (proof !== undefined && !SENDERS_MISTAKES.has(check.reason)) {
    core.tellNetwork(ctx, { type: "publish_stream_proof", proof, except: checked.origin });
  }
  const whose = proof === undefined ? "stream claim" : `stream proof by ${short(proof.accuser)}`;
  const about = `against ${worker} (job ${job.slice(0, LOG_CHARS)}, token ${claim.at})`;
  if (check.inconclusive || (!check.confirmed && proof === undefined)) {
    // Undecided, or this node's own claim refuted: nobody accused anyone, nothing to charge.
    core.log(`validator: ${whose} ${about} ${outcome}: ${check.reason}`);
    return;
  }
  const ledger = core.ledger();
  const kept = check.confirmed ? conviction(core, claim, proof) : undefined;
  const until = core.now() + ledger.economics.challengeWindowMs;
  const sendable = kept !== undefined &&
    kept.proof.claim.job.requester === toHex(kept.proof.accuser);
  if (sendable) await core.catchUp().write(kept, until);
  try {
    const amount = await ledger.settleStreamFraud({
      jobId: job,
      worker: claim.worker,
      model: claim.job.model,
      tokens: claim.tokenIds.length,
      // Its prefill as the receipt would sign it, counted by this node's replay (review s78 F5).
      ...(check.promptTokens === undefined ? {} : { promptTokens: check.promptTokens }),
      claimHash: proof === undefined ? check.claimHash : hash,
      ...(proof === undefined ? {} : { accuser: proof.accuser }),
      confirmed: check.confirmed,
      reason: check.reason,
    });
    if (kept === undefined) {
      core.log(`validator: ${whose} ${about} refuted (${check.reason}): ${amount} charged`);
      return;
    }
    core.log(
      `validator: worker ${worker} convicted of streaming token ${claim.at} of job ` +
        `${job.slice(0, LOG_CHARS)} against the job's sampling rule` +
        `${proof === undefined ? "" : ` (${whose})`}: ${amount} slashed`,
    );
    core.stats.slashes++;
    await announceConviction(core, ctx, kept.proof, proof === undefined, until);
  } catch (error) {
    // Settled already (a second claim for the job, another accuser's proof first), or this
    // accuser's accusation of it settled before: nothing more to do.
    if (!(error instanceof LedgerRejectedError)) throw error;
    if (sendable) core.catchUp().discard(idOf(kept));
    core.log(`validator: ${whose} ${about} not settled: ${error.code}`);
  }
}

/**
 * This node's own claim whose stream the ledger convicted before a stop, what followed the
 * settlement cut off (the process died, a later write failed): signed and passed on now, and kept
 * for the peers that connect later (review s69: no other ledger heard of it).
 */
export async function publishOwnConviction(
  core: ValidatorCore,
  ctx: ActorContext<ValidatorMessage>,
  claim: StreamClaim,
): Promise<void> {
  const { proof } = conviction(core, claim, undefined);
  const until = core.now() + core.ledger().economics.challengeWindowMs;
  await announceConviction(core, ctx, proof, true, until);
}

/**
 * The conviction kept for connecting peers: a peer's proof, or this node's claim signed, with the
 * input bytes it was checked on (a claim whose job and input do not fit one frame is never
 * confirmed: the checker finds the input too large, `jobPromptText`).
 */
function conviction(core: ValidatorCore, claim: StreamClaim, proof: StreamProof | undefined) {
  return {
    kind: "stream_proof" as const,
    proof: proof ?? signStreamProof(claim, core.options.identity, core.now()),
  };
}

/**
 * A settled conviction: kept for the peers that connect until `until`, the worker routed around,
 * and, this node's own (`publish`), passed on to the peers connected now.
 */
async function announceConviction(
  core: ValidatorCore,
  ctx: ActorContext<ValidatorMessage>,
  proof: StreamProof,
  publish: boolean,
  until: number,
): Promise<void> {
  core.tellNetwork(ctx, { type: "peer_convicted", key: toHex(proof.claim.worker) });
  // Every ledger takes a stream proof only from the job's requester: this node's own claim about
  // a job that names another (or none) convicts here alone, and goes nowhere.
  if (proof.claim.job.requester !== toHex(proof.accuser)) return;
  await core.catchUp().add({ kind: "stream_proof", proof }, until);
  if (publish) core.tellNetwork(ctx, { type: "publish_stream_proof", proof });
}

/** The first hex characters of `key`, for log lines (also `_stream_claims.ts`'s). */
export function short(key: Uint8Array): string {
  return toHex(key).slice(0, LOG_CHARS);
}
