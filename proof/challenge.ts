/**
 * Which receipts a validator challenges: a coin with probability p that the worker cannot
 * predict.
 *
 * The coin is derived from the validator's ed25519 signature over the receipt id (with a domain
 * prefix). The receipt id hashes everything the worker signed, its commitment root included,
 * so the coin exists only once the worker has irrevocably committed to its work: it cannot
 * learn its odds before it computes (a coin over the job id would be fixed before the work).
 * Without the validator's secret key nobody — the worker least of all — can compute it, and a
 * worker that re-signs its work to draw again gains nothing (a ledger pays one receipt per job).
 * The honest signer derives its nonce from its key and the message (RFC 8032), so its own coin
 * is one per receipt; but a verifier cannot tell a deterministic signature from one made with
 * another nonce, so a validator that wants to can re-sign until the draw suits it, and
 * {@link verifyChallengeTicket} accepts every such ticket. A ticket shows a draw was signed,
 * not that it was the only one: it does not prove a validator did not pick the receipts it
 * challenged. What that costs a worker: the work of serving its proof when challenged (an honest
 * worker is never slashed by a challenge). A unique-output function (a VRF, RFC 9381) would make
 * the ticket one per key and receipt; not built.
 *
 * @module
 */
import { sha256 } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";

const CHALLENGE_DOMAIN = new TextEncoder().encode("veriflow/challenge/v2:");
/** 2^-53, to turn 53 hash bits into a draw in [0, 1). */
const TWO_POW_MINUS_53 = 2 ** -53;
const TWO_POW_21 = 2 ** 21;

/** A validator's coin for one receipt. */
export interface ChallengeTicket {
  /** Hex receipt id. */
  receiptId: string;
  /** The validator's signature over the domain-prefixed receipt id. */
  sig: Uint8Array;
  /** The draw in [0, 1) derived from the signature. */
  draw: number;
}

function message(receiptId: string): Uint8Array {
  const id = new TextEncoder().encode(receiptId);
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
 * The validator's ticket for `receiptId`.
 *
 * @example
 * ```ts
 * import { Identity } from "../protocols/identity.ts";
 * import { challengeTicket } from "./challenge.ts";
 * const t = challengeTicket(Identity.generate(), "ab".repeat(32));
 * t.draw >= 0 && t.draw < 1; // true
 * ```
 */
export function challengeTicket(validator: Identity, receiptId: string): ChallengeTicket {
  const sig = validator.sign(message(receiptId));
  return { receiptId, sig, draw: drawOf(sig) };
}

/** True when the validator's coin says to challenge `receiptId` at probability `p`. */
export function shouldChallenge(validator: Identity, receiptId: string, p: number): boolean {
  return challengeTicket(validator, receiptId).draw < p;
}

/** Check someone else's ticket: signature valid and draw below `p`. */
export function verifyChallengeTicket(
  validatorKey: Uint8Array,
  ticket: { receiptId: string; sig: Uint8Array },
  p: number,
): boolean {
  return verifySignature(validatorKey, message(ticket.receiptId), ticket.sig) &&
    drawOf(ticket.sig) < p;
}
