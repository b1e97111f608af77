/**
 * Which receipts a validator challenges: a coin with probability p that the worker cannot
 * predict and the validator cannot bias.
 *
 * The coin is derived from the validator's ed25519 signature over the job id (with a domain
 * prefix). Ed25519 signatures are deterministic, so the validator gets exactly one coin per
 * job and cannot re-roll it; without the validator's secret key nobody — the worker least of
 * all — can compute it in advance. Anyone holding the signature can check the draw afterwards
 * ({@link verifyChallengeTicket}), so a validator cannot claim to have "happened" to pick a
 * receipt it wanted to harass.
 *
 * @module
 */
import { sha256 } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";

const CHALLENGE_DOMAIN = new TextEncoder().encode("veriflow/challenge/v1:");
/** 2^-53, to turn 53 hash bits into a draw in [0, 1). */
const TWO_POW_MINUS_53 = 2 ** -53;
const TWO_POW_21 = 2 ** 21;

/** A validator's coin for one job. */
export interface ChallengeTicket {
  /** Hex job id. */
  jobId: string;
  /** The validator's signature over the domain-prefixed job id. */
  sig: Uint8Array;
  /** The draw in [0, 1) derived from the signature. */
  draw: number;
}

function message(jobId: string): Uint8Array {
  const id = new TextEncoder().encode(jobId);
  const out = new Uint8Array(CHALLENGE_DOMAIN.length + id.length);
  out.set(CHALLENGE_DOMAIN, 0);
  out.set(id, CHALLENGE_DOMAIN.length);
  return out;
}

function drawOf(sig: Uint8Array): number {
  const d = sha256(sig);
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  return (view.getUint32(0) * TWO_POW_21 + (view.getUint32(4) >>> 11)) * TWO_POW_MINUS_53;
}

/**
 * The validator's ticket for `jobId`.
 *
 * @example
 * ```ts
 * import { Identity } from "../protocols/identity.ts";
 * import { challengeTicket } from "./challenge.ts";
 * const t = challengeTicket(Identity.generate(), "ab".repeat(32));
 * t.draw >= 0 && t.draw < 1; // true
 * ```
 */
export function challengeTicket(validator: Identity, jobId: string): ChallengeTicket {
  const sig = validator.sign(message(jobId));
  return { jobId, sig, draw: drawOf(sig) };
}

/** True when the validator's coin says to challenge `jobId` at probability `p`. */
export function shouldChallenge(validator: Identity, jobId: string, p: number): boolean {
  return challengeTicket(validator, jobId).draw < p;
}

/** Check someone else's ticket: signature valid and draw below `p`. */
export function verifyChallengeTicket(
  validatorKey: Uint8Array,
  ticket: { jobId: string; sig: Uint8Array },
  p: number,
): boolean {
  return verifySignature(validatorKey, message(ticket.jobId), ticket.sig) && drawOf(ticket.sig) < p;
}
