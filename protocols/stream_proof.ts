/**
 * A stream proof: a {@link StreamClaim} its accuser checked, signed by the accuser so that every
 * ledger can take it (`docs/PROOF.md`, "A lost worker's wrong tokens"). The claim is the worker's
 * own signed stream and the position where the workers that took its job over refused it; the
 * accuser is the router's node, whose validator replayed the claim and confirmed it before
 * passing it on. Each ledger that takes the proof replays the claim itself
 * (`proof/stream_check.ts`): a confirmed one cuts the worker's stake there as in the accuser's
 * ledger and pays the accuser its share; a refuted one costs the accuser the false-accusation
 * penalty, as a refuted fraud proof does (`Ledger.settleStreamFraud`). The accuser's signature is
 * what makes a refuted proof attributable: without it a flood of claims made from honest workers'
 * signed streams would buy forward passes in every ledger for nothing.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { sha256Hex } from "./hash.ts";
import { type Identity, SIGNATURE_BYTES, verifySignature } from "./identity.ts";
import { type StreamClaim, StreamClaimSchema } from "./stream_commitment.ts";
import { jobBytes, MAX_NETWORK_JOB_BYTES } from "./job.ts";

/** Version of the stream-proof format. */
export const STREAM_PROOF_VERSION = 1;

/** Domain separation of stream-proof signatures. */
const STREAM_PROOF_DOMAIN = "veriflow/stream-proof/v1";

/** A stream claim signed by the accuser that passes it on. */
export interface StreamProof {
  /** Format version ({@link STREAM_PROOF_VERSION}). */
  v: number;
  /** The claim: the worker's signed stream and the refused position. */
  claim: StreamClaim;
  /** Unix ms when the accuser signed it. */
  issuedAt: number;
  /** The accuser's public key: who is rewarded for a conviction, and charged for a refutation. */
  accuser: Uint8Array;
  /** The accuser's ed25519 signature over {@link streamProofSigningBytes}. */
  sig: Uint8Array;
}

/** Zod schema of a stream proof on the wire (its claim's shape as {@link StreamClaimSchema}). */
export const StreamProofSchema: z.ZodType<StreamProof> = z.object({
  v: z.literal(STREAM_PROOF_VERSION),
  claim: StreamClaimSchema,
  issuedAt: z.number().int().nonnegative(),
  accuser: z.instanceof(Uint8Array).refine((k) => k.length === 32, "a 32-byte key"),
  sig: z.instanceof(Uint8Array).refine((s) => s.length === SIGNATURE_BYTES, "a 64-byte signature"),
}) as unknown as z.ZodType<StreamProof>;

/** The bytes a stream proof's signature covers. */
export function streamProofSigningBytes(proof: Omit<StreamProof, "sig">): Uint8Array {
  return encodeCanonical({
    domain: STREAM_PROOF_DOMAIN,
    v: proof.v,
    claim: proof.claim,
    issuedAt: proof.issuedAt,
    accuser: proof.accuser,
  });
}

/** Hex SHA-256 of a stream proof's signing bytes: what names it in the ledger and in logs. */
export function streamProofHash(proof: Omit<StreamProof, "sig">): string {
  return sha256Hex(streamProofSigningBytes(proof));
}

/** Sign `claim` as the accuser `identity`, at `issuedAt` (Unix ms). */
export function signStreamProof(
  claim: StreamClaim,
  identity: Identity,
  issuedAt: number,
): StreamProof {
  const body = {
    v: STREAM_PROOF_VERSION,
    claim,
    issuedAt: Math.max(0, Math.floor(issuedAt)),
    accuser: identity.publicKey,
  };
  return { ...body, sig: identity.sign(streamProofSigningBytes(body)) };
}

/**
 * Whether `proof` (already of {@link StreamProofSchema}'s shape) is signed by its accuser. The
 * claim inside is not checked here: `proof/stream_check.ts` does that, and a claim that does not
 * hold is the accuser's to pay for.
 */
export function verifyStreamProofSignature(proof: StreamProof): boolean {
  return verifySignature(proof.accuser, streamProofSigningBytes(proof), proof.sig);
}

/**
 * Whether `claim`'s job and the input bytes it carries fit one frame together
 * (`MAX_NETWORK_JOB_BYTES`), as any job forwarded between nodes must: a ledger refuses a proof
 * whose claim does not (no router forwarded such a job).
 */
export function fitsOneFrame(claim: StreamClaim): boolean {
  return jobBytes(claim.job) + (claim.input?.length ?? 0) <= MAX_NETWORK_JOB_BYTES;
}
