/**
 * Job assignments: the requester's signed word that it gave job J to worker W.
 *
 * A receipt proves that its worker claims to have done a job; it does not prove that anyone
 * asked that worker for it. Without an assignment, a copier that sees a receipt announced could
 * re-sign the same work under its own key and race the real worker for the one payment a job
 * gets, and any node could pay itself for work nobody requested. A ledger therefore credits a
 * receipt only with an assignment that names the receipt's job and worker and is signed by a
 * requester other than the worker (`proof/ledger.ts`). The node that takes a client's job and
 * forwards it to a worker names itself in the job (`requester`), signs one
 * (`network/network_inference_port.ts`) and announces it with the receipt; work a node does for
 * its own clients carries none and earns nothing.
 *
 * The job must name the assignment's signer: the assignment carries the hash of the rest of the
 * job (`jobBody`), and `boundJobId(requester, jobBody)` must be the job id. Without that, a
 * copier could sign an assignment of the real job to itself with a second key of its own; with
 * it, only the requester the job names can assign it, and the ledger checks so from the
 * assignment alone (the job's prompt may be private).
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { bytesEqual } from "./bytes_equal.ts";
import { type Identity, verifySignature } from "./identity.ts";
import { boundJobId, type Job, jobBodyHash, jobId } from "./job.ts";
import { toHex } from "./hash.ts";

/**
 * Version of the assignment format: 2 carries `jobBody` and needs a job that names its
 * requester (1 did not, and let a copier assign the job to itself).
 */
export const ASSIGNMENT_VERSION = 2;
const ASSIGNMENT_DOMAIN = "veriflow/assignment/v2";
const HEX64 = /^[0-9a-f]{64}$/;

/** A requester's signed assignment of one job to one worker. */
export interface JobAssignment {
  /** Format version. */
  v: number;
  /** Hex id of the job (`jobId(job)`): `boundJobId(hex requester, jobBody)`. */
  jobId: string;
  /** Hex hash of the job without its `requester` (`jobBodyHash(job)`). */
  jobBody: string;
  /** The worker's public key. */
  worker: Uint8Array;
  /** Unix ms when assigned. */
  issuedAt: number;
  /** The requester's public key (the signer). */
  requester: Uint8Array;
  /** The requester's ed25519 signature over {@link assignmentSigningBytes}. */
  sig: Uint8Array;
}

const key = z.instanceof(Uint8Array).refine((b) => b.length === 32);

/** Zod schema of an assignment on the wire. */
export const JobAssignmentSchema: z.ZodType<JobAssignment> = z.object({
  v: z.literal(ASSIGNMENT_VERSION),
  jobId: z.string().regex(HEX64),
  jobBody: z.string().regex(HEX64),
  worker: key,
  issuedAt: z.number().nonnegative(),
  requester: key,
  sig: z.instanceof(Uint8Array).refine((b) => b.length === 64),
}) as unknown as z.ZodType<JobAssignment>;

/** The bytes an assignment's signature covers. */
export function assignmentSigningBytes(assignment: Omit<JobAssignment, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = assignment as JobAssignment;
  return encodeCanonical({ domain: ASSIGNMENT_DOMAIN, assignment: unsigned });
}

/**
 * Sign, as `requester`, the assignment of `job` to `worker`. The job must name `requester`
 * (`job.requester`, its hex public key): only then can a ledger tie the assignment to the job.
 *
 * @throws {TypeError} when the job does not name `requester`, or `issuedAt` or `worker` could
 *   never verify (not a time ≥ 0, not a 32-byte key).
 * @example
 * ```ts
 * import { Identity } from "./identity.ts";
 * import { toHex } from "./hash.ts";
 * import { DEFAULT_GENERATION_PARAMS, jobId, type TextJob } from "./job.ts";
 * import { signAssignment, verifyAssignment } from "./assignment.ts";
 * const requester = Identity.generate();
 * const worker = Identity.generate().publicKey;
 * const job: TextJob = {
 *   kind: "text", model: "m", prompt: "hi", params: { ...DEFAULT_GENERATION_PARAMS }, nonce: "1",
 *   requester: toHex(requester.publicKey),
 * };
 * const a = signAssignment({ job, worker, issuedAt: 0 }, requester);
 * verifyAssignment(a, { jobId: jobId(job), worker }); // true
 * ```
 */
export function signAssignment(
  body: { job: Job; worker: Uint8Array; issuedAt: number },
  requester: Identity,
): JobAssignment {
  const { job, worker, issuedAt } = body;
  if (job.requester !== toHex(requester.publicKey)) {
    throw new TypeError("an assignment needs a job that names its signer as its requester");
  }
  // What the schema would refuse on every ledger: signing it would pay nothing, silently.
  if (!Number.isFinite(issuedAt) || issuedAt < 0) {
    throw new TypeError(`an assignment's issuedAt must be a time (ms, ≥ 0), got ${issuedAt}`);
  }
  if (!(worker instanceof Uint8Array) || worker.length !== 32) {
    throw new TypeError("an assignment's worker must be a 32-byte public key");
  }
  const unsigned = {
    v: ASSIGNMENT_VERSION,
    jobId: jobId(job),
    jobBody: jobBodyHash(job),
    worker,
    issuedAt,
    requester: requester.publicKey,
  };
  return { ...unsigned, sig: requester.sign(assignmentSigningBytes(unsigned)) };
}

/**
 * True when `value` is a well-formed assignment signed by its requester, for job `jobId` and
 * `worker`, from a requester that is not the worker itself (a node cannot request its own
 * paid work) and that the job names: `boundJobId(requester, jobBody)` is `jobId`, so no other
 * key can assign the job.
 */
export function verifyAssignment(
  value: unknown,
  expected: { jobId: string; worker: Uint8Array },
): value is JobAssignment {
  const parsed = JobAssignmentSchema.safeParse(value);
  if (!parsed.success) return false;
  const a = parsed.data;
  if (a.jobId !== expected.jobId || !bytesEqual(a.worker, expected.worker)) return false;
  if (bytesEqual(a.requester, a.worker)) return false;
  if (boundJobId(toHex(a.requester), a.jobBody) !== a.jobId) return false;
  return verifySignature(a.requester, assignmentSigningBytes(a), a.sig);
}
