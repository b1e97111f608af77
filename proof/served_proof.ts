/**
 * Proof data as a worker serves it on challenge: signed by the worker, so what it served is
 * evidence a third party can check.
 *
 * A worker that answers a challenge with data that does not open its own signed commitment
 * would otherwise be indistinguishable from a validator that made the data up; with the
 * worker's signature over `(receipt id, hash of the data)` the mismatch convicts the worker,
 * without a model, in any ledger (fraud kind `commitment`). Data that arrives unsigned, or
 * signed by another key, is treated as not served at all.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "../protocols/cbor.ts";
import { sha256 } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import { type ProofData, ProofDataSchema } from "./commitment.ts";

const SERVED_PROOF_DOMAIN = "veriflow/served-proof/v1";

/** Proof data with the worker's signature binding it to one receipt. */
export interface ServedProof {
  /** The proof data. */
  proof: ProofData;
  /** The worker's ed25519 signature over {@link servedProofSigningBytes}. */
  sig: Uint8Array;
}

/** Zod schema of a served proof on the wire. */
export const ServedProofSchema: z.ZodType<ServedProof> = z.object({
  proof: ProofDataSchema,
  sig: z.instanceof(Uint8Array).refine((b) => b.length === 64),
}) as unknown as z.ZodType<ServedProof>;

/** The bytes a served proof's signature covers: the receipt id and a hash of the data. */
export function servedProofSigningBytes(receiptId: string, proof: ProofData): Uint8Array {
  return encodeCanonical({
    domain: SERVED_PROOF_DOMAIN,
    receiptId,
    proof: sha256(encodeCanonical(proof)),
  });
}

/**
 * Sign `proof` as the data `worker` serves for receipt `receiptId`.
 *
 * @example
 * ```ts ignore
 * const served = signServedProof(receiptId(receipt), proofData, workerIdentity);
 * verifyServedProof(served, receiptId(receipt), workerIdentity.publicKey); // true
 * ```
 */
export function signServedProof(
  receiptId: string,
  proof: ProofData,
  worker: Identity,
): ServedProof {
  return { proof, sig: worker.sign(servedProofSigningBytes(receiptId, proof)) };
}

/** True when `served` is well-formed and signed by `worker` for receipt `receiptId`. */
export function verifyServedProof(
  served: unknown,
  receiptId: string,
  worker: Uint8Array,
): served is ServedProof {
  const parsed = ServedProofSchema.safeParse(served);
  if (!parsed.success) return false;
  return verifySignature(
    worker,
    servedProofSigningBytes(receiptId, parsed.data.proof),
    parsed.data.sig,
  );
}
