/**
 * The training receipts a TrainingValidator has challenged (`_training_challenge_run.ts`), kept
 * across a stop beside the ledger in `<ledger dir>/training-challenged.cbor` until the receipt's
 * challenge window has closed.
 *
 * A trainer answers one challenge per validator and receipt and refuses a second
 * (`_challenge_admission.ts`), and a refusal is no answer: past the deadline it is an
 * `opening_missing` proof. So a validator must never challenge a receipt twice. It would, without
 * this memory, when its own coin challenged a receipt, the challenge passed (the receipt pending
 * again), and a peer's `opening_missing` claim about it then opened a takeover
 * (`_claim_takeovers.ts`); or when a round's outcome challenged one of its trainers after a
 * takeover had. Both must be remembered across a restart too, or the restarted validator would
 * slash the honest trainer for refusing the second challenge.
 *
 * Marked in memory synchronously (a second challenge started in the same tick sees it), then
 * written durably before the challenge goes out; entries past their `until` (the ledger's clock)
 * are dropped, and at most {@link MAX_REMEMBERED} are kept (a challenge window's worth at any
 * realistic rate). What is read back is untrusted: entries that are not an id and a time are
 * skipped. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { KeptCborFile } from "../proof/_kept_cbor_file.ts";

/** The file under the ledger's directory. */
export const CHALLENGED_RECEIPTS_FILE = "training-challenged.cbor";
/** Receipts remembered at most, the oldest forgotten first. */
export const MAX_REMEMBERED = 4096;

/** See the module doc. */
export class ChallengedReceipts {
  /** Receipt id → until when it is remembered (ms, the ledger's clock), oldest first. */
  readonly #until = new Map<string, number>();
  readonly #file: KeptCborFile | undefined;
  readonly #now: () => number;
  /** The writes, one after another (challenges start outside any mailbox). */
  #writing: Promise<unknown> = Promise.resolve();

  /**
   * @param dir The ledger's directory; absent: memory only.
   * @param now The ledger's clock (ms).
   */
  constructor(dir: string | undefined, now: () => number) {
    this.#file = dir === undefined
      ? undefined
      : new KeptCborFile(join(dir, CHALLENGED_RECEIPTS_FILE));
    this.#now = now;
  }

  /** Read back what an earlier run kept (call once, at the start). */
  async readBack(): Promise<void> {
    const value = await this.#file?.read();
    if (!Array.isArray(value)) return;
    for (const entry of value) {
      const [id, until] = Array.isArray(entry) ? entry : [];
      if (typeof id !== "string" || typeof until !== "number" || !Number.isFinite(until)) continue;
      this.#set(id, Math.max(until, this.#until.get(id) ?? until));
    }
    this.#prune();
  }

  /** Whether receipt `id` was challenged here within its window. */
  has(id: string): boolean {
    const until = this.#until.get(id);
    return until !== undefined && until >= this.#now();
  }

  /**
   * Mark receipt `id` challenged here until `until` (ms, the ledger's clock) at once; resolves
   * once that is on disk (rejects when it could not be written: the mark stays in memory).
   */
  mark(id: string, until: number): Promise<void> {
    this.#set(id, Math.max(until, this.#until.get(id) ?? until));
    this.#prune();
    const file = this.#file;
    if (file === undefined) return Promise.resolve();
    const write = this.#writing.catch(() => {}).then(() =>
      file.keep(this.#until.size === 0 ? undefined : [...this.#until])
    );
    this.#writing = write;
    return write.then(() => {});
  }

  #set(id: string, until: number): void {
    this.#until.delete(id); // re-inserted last: the oldest is forgotten first
    this.#until.set(id, until);
  }

  #prune(): void {
    const now = this.#now();
    for (const [id, until] of this.#until) if (until < now) this.#until.delete(id);
    while (this.#until.size > MAX_REMEMBERED) {
      this.#until.delete(this.#until.keys().next().value!);
    }
  }
}
