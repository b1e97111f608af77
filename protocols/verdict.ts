/**
 * Verdicts: a validator's signed statement about one piece of work.
 *
 * The same format serves inference challenges (subject `inference`, the subject id is the
 * receipt id) and storage audits (subject `storage`, the subject id names the audited chunk or
 * audit round), so the ledger records both through one path. A verdict of outcome `fraud`
 * names the fraud proof that backs it by hash; `invalid` is a failure that needs no
 * recomputation to see (bad signature, replayed receipt, proof data that does not open the
 * commitment); `inconclusive` means the validator could not decide (for example it does not
 * have the model) and carries no consequence.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { sha256Hex } from "./hash.ts";
import { type Identity, verifySignature } from "./identity.ts";
import { VeriflowError } from "./errors.ts";
import { describeSchemaIssues } from "./schema_issues.ts";
import { hasOnlyWellFormedStrings, wellFormed } from "./well_formed.ts";
import { holdsAtMostValues } from "./value_count.ts";

/** Version of the verdict format. */
export const VERDICT_VERSION = 1;
const VERDICT_DOMAIN = "veriflow/verdict/v1";
/**
 * Most bytes a verdict's `details` may take, as canonical CBOR. A verdict is recorded in every
 * ledger it reaches and passed on by each, for good: unbounded details would let any staked key
 * grow every ledger in the network by a frame per verdict. The largest honest details are a
 * challenge that failed (`validator_error`: its 200-character message, up to 3 bytes a character
 * in UTF-8, and a takeover's mark, about 620 bytes); a validation's figures with a commitment or
 * receipt message take about 250, a storage audit's about 150. 1 KiB leaves a margin above all
 * of them.
 */
export const MAX_VERDICT_DETAILS_BYTES = 1024;

/** What a verdict concludes. */
export type VerdictOutcome = "valid" | "fraud" | "invalid" | "inconclusive";

/** A signed verdict. */
export interface Verdict {
  /** Format version. */
  v: number;
  /** What was checked: `inference` (a receipt) or `storage` (an audit), open for more. */
  subject: string;
  /** Id of the checked thing (the receipt id for inference). */
  subjectId: string;
  /** Public key of the node whose work was checked. */
  target: Uint8Array;
  /** The conclusion. */
  outcome: VerdictOutcome;
  /** Stable reason code (`ok`, `fingerprint_mismatch`, `bad_signature`, ...). */
  reason: string;
  /** Hex hash of the backing fraud proof, for outcome `fraud`. */
  fraudProof?: string;
  /**
   * Small, subject-specific details (numbers and strings only): at most
   * {@link MAX_VERDICT_DETAILS_BYTES} as canonical CBOR.
   */
  details?: Record<string, string | number | boolean>;
  /** Unix ms of issue. */
  issuedAt: number;
  /** The validator's public key. */
  validator: Uint8Array;
  /** Signature over {@link verdictSigningBytes}. */
  sig: Uint8Array;
}

/** A verdict before signing. */
export type UnsignedVerdict = Omit<Verdict, "sig" | "validator">;

/** Zod schema of a verdict on the wire. */
export const VerdictSchema: z.ZodType<Verdict> = z.object({
  v: z.literal(VERDICT_VERSION),
  // Every string is well-formed Unicode, so that the signing bytes exist (`well_formed.ts`).
  subject: wellFormed(z.string().min(1).max(32)),
  subjectId: wellFormed(z.string().min(1).max(256)),
  target: z.instanceof(Uint8Array).refine((b) => b.length === 32),
  outcome: z.enum(["valid", "fraud", "invalid", "inconclusive"]),
  reason: wellFormed(z.string().max(64)),
  fraudProof: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  // Counted before the record is parsed: zod reads (and `detailsFit` encodes) every entry, and
  // a 1 MiB frame of ~95,000 entries cost ~0.7 s of schema work before it was refused.
  details: z.unknown()
    .refine(
      (details) => holdsAtMostValues(details, MAX_VERDICT_DETAILS_ENTRIES),
      `details over ${MAX_VERDICT_DETAILS_BYTES} bytes`,
    )
    .pipe(
      z.record(
        wellFormed(z.string()),
        z.union([wellFormed(z.string()), z.number(), z.boolean()]),
      ).refine(detailsFit, `details over ${MAX_VERDICT_DETAILS_BYTES} bytes`),
    )
    .optional(),
  issuedAt: z.number().nonnegative(),
  validator: z.instanceof(Uint8Array).refine((b) => b.length === 32),
  sig: z.instanceof(Uint8Array).refine((b) => b.length === 64),
}) as unknown as z.ZodType<Verdict>;

/**
 * Most entries `details` can hold within {@link MAX_VERDICT_DETAILS_BYTES}: an entry takes two
 * bytes at least (an empty key's header, a one-byte value).
 */
const MAX_VERDICT_DETAILS_ENTRIES = MAX_VERDICT_DETAILS_BYTES / 2;

/**
 * Whether `details` fit {@link MAX_VERDICT_DETAILS_BYTES} as canonical CBOR. A string longer
 * than the bound cannot fit (a UTF-8 byte per character at least): refused before encoding.
 */
function detailsFit(details: Record<string, string | number | boolean>): boolean {
  // Refused above already; checked again because encoding an ill-formed string throws, and a
  // refinement must answer, not throw.
  if (!hasOnlyWellFormedStrings(details)) return false;
  for (const [key, value] of Object.entries(details)) {
    if (key.length > MAX_VERDICT_DETAILS_BYTES) return false;
    if (typeof value === "string" && value.length > MAX_VERDICT_DETAILS_BYTES) return false;
  }
  return encodeCanonical(details).length <= MAX_VERDICT_DETAILS_BYTES;
}

/** A value that is not a well-formed verdict. */
export class MalformedVerdictError extends VeriflowError {
  /**
   * Create the error.
   * @param message Human-readable explanation.
   */
  constructor(message: string) {
    super("malformed_verdict", message);
  }
}

/** The bytes a verdict's signature covers. */
export function verdictSigningBytes(verdict: Omit<Verdict, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = verdict as Verdict;
  return encodeCanonical({ domain: VERDICT_DOMAIN, verdict: unsigned });
}

/** Hex id of a verdict (hash of its signing bytes). */
export function verdictId(verdict: Omit<Verdict, "sig">): string {
  return sha256Hex(verdictSigningBytes(verdict));
}

/**
 * Sign a verdict as `identity`.
 *
 * @example
 * ```ts
 * import { Identity } from "./identity.ts";
 * import { signVerdict, verifyVerdict } from "./verdict.ts";
 * const validator = Identity.generate();
 * const v = signVerdict({
 *   v: 1, subject: "storage", subjectId: "audit-1", target: new Uint8Array(32),
 *   outcome: "valid", reason: "ok", issuedAt: Date.now(),
 * }, validator);
 * verifyVerdict(v); // true
 * ```
 */
export function signVerdict(unsigned: UnsignedVerdict, identity: Identity): Verdict {
  const body = { ...unsigned, validator: identity.publicKey };
  return { ...body, sig: identity.sign(verdictSigningBytes(body)) };
}

/** Parse an untrusted value as a verdict (throws {@link MalformedVerdictError}). */
export function parseVerdict(value: unknown): Verdict {
  const r = VerdictSchema.safeParse(value);
  if (!r.success) throw new MalformedVerdictError(describeSchemaIssues(r.error));
  return r.data;
}

/** True when `value` is a well-formed verdict with a valid signature. Never throws. */
export function verifyVerdict(value: unknown): boolean {
  const r = VerdictSchema.safeParse(value);
  if (!r.success) return false;
  return verifySignature(r.data.validator, verdictSigningBytes(r.data), r.data.sig);
}
