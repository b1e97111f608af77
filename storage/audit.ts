/**
 * Storage audits: a validator checks that a holder still has the chunks it is paid to keep.
 *
 * Scheme (proof of possession by nonce-bound hashes):
 * 1. The validator picks `sampleSize` chunks at random (crypto RNG, so the holder cannot
 *    predict which) from the CIDs the holder should hold, and a fresh 32-byte nonce.
 * 2. The holder answers SHA-256(nonce ‖ chunk) for each one. Because the nonce is new each
 *    round, the holder cannot have precomputed the answer, and cannot compute it from the CID
 *    alone — it needs the chunk's bytes at the moment of the audit.
 * 3. The validator computes the same hashes from its own copy of each chunk (fetched from any
 *    replica and verified against its CID, or held locally) and compares.
 *
 * The answer is 32 bytes per chunk, so an audit costs the holder a read and the network almost
 * nothing. The price is that the validator needs the chunk bytes; where it cannot fetch them,
 * the alternative is a precomputed challenge set (the owner computes H(nonce_i ‖ chunk) for a
 * few secret nonces at upload time and hands the validator only those hashes), which spends one
 * nonce per audit. We use fetched references since replicas are available.
 *
 * A failed audit becomes a **signed verdict** in the project's common verdict format
 * (`protocols/verdict.ts`, subject `"storage"`), handed to `onVerdict` so the ledger can record
 * it.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { Identity } from "../protocols/identity.ts";
import { signVerdict, type Verdict } from "../protocols/verdict.ts";
import { digestOf, equalBytes } from "./_hash.ts";
import { possessionProof, type StoragePeer } from "./storage_peer.ts";

/** Why a chunk failed an audit. Stable codes; they end up in verdicts. */
export type AuditFailureReason =
  | "missing_chunk"
  | "wrong_proof"
  | "no_response"
  | "malformed_proof";

/** One chunk that failed. */
export interface AuditFailure {
  /** The chunk. */
  cid: string;
  /** Why. */
  reason: AuditFailureReason;
}

/** Outcome of one audit round. */
export interface AuditResult {
  /** True when every sampled chunk was proven. */
  passed: boolean;
  /** The audited peer's id. */
  holderId: string;
  /** Id of this round: hex SHA-256(nonce ‖ holder public key). */
  roundId: string;
  /** The chunks sampled. */
  sampled: string[];
  /** The chunks that failed. */
  failures: AuditFailure[];
  /** The signed verdict (always on failure; on success only with `signPasses`). */
  verdict?: Verdict;
}

/** Options of {@link StorageAuditor}. */
export interface StorageAuditorOptions {
  /** The validator's identity; it signs the verdicts. */
  identity: Identity;
  /**
   * The validator's verified copy of a chunk (from its own store or from replicas). Must reject
   * rather than return unverified bytes.
   */
  reference(cid: string, signal: AbortSignal): Promise<Uint8Array>;
  /**
   * Chunks sampled per round. Default 4: a holder that dropped a fraction f of its chunks
   * escapes one round with probability (1-f)^4 — 66 % for f = 10 %, but repeated rounds
   * compound it down quickly.
   */
  sampleSize?: number;
  /** How long the holder has to answer, ms. Default 30 000. */
  timeoutMs?: number;
  /** Also sign a `valid` verdict for passed audits. Default `false`. */
  signPasses?: boolean;
  /** Receives every signed verdict (the ledger's sink). */
  onVerdict?(verdict: Verdict): void | Promise<void>;
}

const NONCE_BYTES = 32;

/** Runs audit rounds against storage holders. */
export class StorageAuditor {
  readonly #options: StorageAuditorOptions;

  /**
   * An auditor signing as `options.identity`.
   *
   * @param options The validator identity, where reference chunks come from, sampling.
   *
   * @example
   * ```ts
   * import { StorageAuditor } from "./audit.ts";
   * import { Identity } from "../protocols/identity.ts";
   * const auditor = new StorageAuditor({
   *   identity: Identity.generate(),
   *   reference: () => Promise.reject(new Error("no reference in this example")),
   *   onVerdict: (v) => console.log(v.outcome, v.reason),
   * });
   * ```
   */
  constructor(options: StorageAuditorOptions) {
    this.#options = options;
  }

  /** Audit `holder` on a random sample of `cids` (the chunks it should hold). */
  async audit(
    holder: StoragePeer,
    cids: readonly string[],
    options?: { signal?: AbortSignal },
  ): Promise<AuditResult> {
    const sampled = sample(cids, this.#options.sampleSize ?? 4);
    const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
    const roundInput = new Uint8Array(NONCE_BYTES + holder.publicKey.length);
    roundInput.set(nonce);
    roundInput.set(holder.publicKey, NONCE_BYTES);
    const roundId = toHex(await digestOf(roundInput));
    const timeout = AbortSignal.timeout(this.#options.timeoutMs ?? 30_000);
    const signal = options?.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

    const failures: AuditFailure[] = [];
    let proofs: (Uint8Array | null)[] | null = null;
    try {
      proofs = await holder.proveChunks(nonce, sampled, { signal });
    } catch {
      options?.signal?.throwIfAborted(); // our own cancellation is not the holder's fault
    }
    if (proofs === null) {
      for (const cid of sampled) failures.push({ cid, reason: "no_response" });
    } else if (!Array.isArray(proofs) || proofs.length !== sampled.length) {
      for (const cid of sampled) failures.push({ cid, reason: "malformed_proof" });
    } else {
      for (let i = 0; i < sampled.length; i++) {
        const cid = sampled[i];
        const proof = proofs[i];
        if (proof === null) {
          failures.push({ cid, reason: "missing_chunk" });
          continue;
        }
        const expected = await possessionProof(nonce, await this.#options.reference(cid, signal));
        if (!(proof instanceof Uint8Array) || !equalBytes(proof, expected)) {
          failures.push({ cid, reason: "wrong_proof" });
        }
      }
    }

    const passed = failures.length === 0;
    const result: AuditResult = { passed, holderId: holder.id, roundId, sampled, failures };
    if (!passed || this.#options.signPasses) {
      result.verdict = signVerdict({
        v: 1,
        subject: "storage",
        subjectId: roundId,
        target: holder.publicKey,
        outcome: passed ? "valid" : "invalid",
        reason: passed ? "ok" : failures[0].reason,
        details: {
          nonce: toHex(nonce),
          sampled: sampled.length,
          failed: failures.length,
          ...(passed ? {} : { firstFailedCid: failures[0].cid }),
        },
        issuedAt: Date.now(),
      }, this.#options.identity);
      await this.#options.onVerdict?.(result.verdict);
    }
    return result;
  }
}

/** Up to `n` distinct items of `items`, chosen with the crypto RNG. */
function sample(items: readonly string[], n: number): string[] {
  const pool = [...new Set(items)];
  const count = Math.min(n, pool.length);
  const random = new Uint32Array(count);
  crypto.getRandomValues(random);
  // Partial Fisher-Yates: the first `count` slots end up a uniform sample. The modulo bias of a
  // 32-bit draw over a pool of chunk-list size is negligible for audit sampling.
  for (let i = 0; i < count; i++) {
    const j = i + (random[i] % (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, count);
}
