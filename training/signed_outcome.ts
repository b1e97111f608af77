/**
 * A round's outcome signed by its coordinator. The outcome names the model a round made and the
 * deltas that made it; every node redoes the outer step before serving it (`round_audit.ts`),
 * and that audit downloads a start model and a delta file per report. Unsigned, an outcome is
 * anyone's word: a peer with throwaway trainer keys could have every node audit, store, serve
 * and pass on a model of its making, charged to whoever relayed it. Signed, it is the word of a
 * key a node can look up in its ledger: only a staked coordinator's outcomes are audited, the
 * audits are charged to that key, and a signed outcome that does not reproduce is that key's
 * own false claim (no relay can alter a signed outcome without breaking its signature).
 *
 * The signature covers the canonical CBOR of the outcome without `sig` (with `coordinator`, the
 * signer's key), under its own domain, the way receipts and verdicts are signed. It is checked
 * on the outcome as its schema parsed it, as receipts are: the schema keeps every field a
 * coordinator signs.
 *
 * @example
 * ```ts ignore
 * const signed = signOutcome(outcome, identity);
 * outcomeSignature(signed); // "signed"
 * outcomeSignature({ ...signed, model: otherCid }); // "bad_signature"
 * ```
 *
 * @module
 */
import { encodeCanonical } from "../protocols/cbor.ts";
import { isWeakPublicKey } from "../protocols/envelope_signing.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import type { OutcomeBody } from "../protocols/training_messages.ts";

/** Separates outcome signatures from everything else an identity signs. */
const OUTCOME_SIGNING_DOMAIN = "veriflow/training-outcome/v1";

/** What {@link outcomeSignature} found. */
export type OutcomeSignature = "signed" | "unsigned" | "bad_signature";

/** The bytes an outcome's signature covers: canonical CBOR of it without `sig`, in its domain. */
export function outcomeSigningBytes(outcome: OutcomeBody): Uint8Array {
  const { sig: _sig, ...unsigned } = outcome;
  return encodeCanonical({ domain: OUTCOME_SIGNING_DOMAIN, outcome: unsigned });
}

/**
 * `outcome` signed by `identity` as its coordinator (any earlier `coordinator` and `sig`
 * replaced). ed25519 signatures are deterministic: the same outcome signed again is the same
 * bytes, so a coordinator that sends a finished round's outcome again after a restart sends
 * the copy validators already took.
 */
export function signOutcome(outcome: OutcomeBody, identity: Identity): OutcomeBody {
  const { sig: _sig, coordinator: _coordinator, ...rest } = outcome;
  const unsigned: OutcomeBody = { ...rest, coordinator: identity.publicKey };
  return { ...unsigned, sig: identity.sign(outcomeSigningBytes(unsigned)) };
}

/**
 * Whether `outcome` carries its coordinator's valid signature: `unsigned` without a key or a
 * signature, `bad_signature` when they do not verify (or the key is a weak one, which verifies
 * crafted signatures on anything).
 */
export function outcomeSignature(outcome: OutcomeBody): OutcomeSignature {
  const { coordinator, sig } = outcome;
  if (coordinator === undefined || sig === undefined) return "unsigned";
  if (isWeakPublicKey(coordinator)) return "bad_signature";
  return verifySignature(coordinator, outcomeSigningBytes(outcome), sig)
    ? "signed"
    : "bad_signature";
}
