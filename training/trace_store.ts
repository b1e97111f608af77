/**
 * A trainer's traces on disk, so that a challenge inside the challenge window can be answered
 * after the trainer restarted, or after more rounds than it keeps in memory.
 *
 * Why: a challenged step that cannot be opened is `opening_missing`, which slashes. A trainer kept
 * only its last `KEPT_TRACES` runs in memory, so a restart, or rounds coming faster than
 * the window (five rounds 30 s apart, stop 33's review), convicted an honest trainer.
 *
 * One file per run, `<dir>/<savedAt>-<receiptId>.trace`, written durably (temporary file, fsync, rename)
 * before the receipt leaves the trainer: the signed receipt, the architecture, hyper-parameters
 * and backend, every state's hash, and the full states the run kept (state 0, every
 * `keepEvery`-th, state H). Not the shard: that is the trainer's private tier's, and the run
 * is matched to it again when loaded (its commitment must be the receipt's `shardRoot`). A
 * loaded trace is checked before it is used — the receipt's signature and trainer, the states'
 * hashes against the receipt's `checkpointsRoot` — so a damaged or foreign file is treated as
 * absent, never opened from.
 *
 * Files older than {@link TraceStoreOptions.retainMs} (by the store's clock, from when they
 * were written) are removed when a run is saved and when the store opens.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCbor } from "../protocols/cbor.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type { Identity } from "../protocols/identity.ts";
import { writeFileDurably } from "../proof/_durable_file.ts";
import { makeOwnerDir } from "../protocols/owner_only.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import type { TextShard } from "./brown_corpus.ts";
import type { LocalHyperParams } from "./hyper_params.ts";
import type { TrainingTrace } from "./step_opening.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import { MAX_OPENING_WINDOW_MS } from "./opening_window.ts";
import { trainingReceiptId, verifyTrainingReceipt } from "./training_receipt.ts";
import {
  checkpointsRootOf,
  commitShard,
  decodeTrainingState,
  encodeTrainingState,
  type TrainingState,
  trainingStateHash,
} from "./training_state.ts";

/** When a trace file was saved, from its name; undefined for any other file. */
function savedAtOf(name: string): number | undefined {
  const match = /^(\d{1,15})-[0-9a-f]{64}\.trace$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** Version of the trace file format. */
const TRACE_FILE_VERSION = 1;
const SUFFIX = ".trace";
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * How long a run's trace is kept by default: the challenge window (10 min, from when a ledger
 * records the receipt), the longest opening window (10 min, `MAX_OPENING_WINDOW_MS`: a challenge
 * drawn at the window's end is answered from the trace until then), and 19 min for the receipt's
 * gossip and clocks that disagree. A ledger that first records the receipt later than that can still
 * challenge it; see `docs/TRAINING.md`.
 */
export const DEFAULT_TRACE_RETAIN_MS = DEFAULT_ECONOMICS.challengeWindowMs +
  MAX_OPENING_WINDOW_MS + 19 * 60 * 1000;

/** Options of {@link TraceStore}. */
export interface TraceStoreOptions {
  /** The directory of the trace files (created if missing). */
  dir: string;
  /** How long a trace is kept; default {@link DEFAULT_TRACE_RETAIN_MS}. */
  retainMs?: number;
  /** Milliseconds since the epoch; default `Date.now` (tests move a clock by hand). */
  now?: () => number;
}

/** What a trace file holds (see the module doc). */
interface TraceFile {
  v: number;
  savedAt: number;
  receipt: unknown;
  arch: GptArchitecture;
  hyper: LocalHyperParams;
  backend: TrainingBackend;
  stateHashes: string[];
  kept: [number, Uint8Array][];
}

/** A trainer's traces on disk (see the module doc). */
export class TraceStore {
  readonly #dir: string;
  readonly #retainMs: number;
  readonly #now: () => number;
  #made = false;

  /** @param options See {@link TraceStoreOptions}. */
  constructor(options: TraceStoreOptions) {
    this.#dir = options.dir;
    this.#retainMs = options.retainMs ?? DEFAULT_TRACE_RETAIN_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Write `trace` (durably), then remove the traces past their retention. */
  async save(trace: TrainingTrace): Promise<void> {
    await this.#makeDir();
    const file: TraceFile = {
      v: TRACE_FILE_VERSION,
      savedAt: this.#now(),
      receipt: trace.receipt,
      arch: trace.arch,
      hyper: trace.hyper,
      backend: trace.backend,
      stateHashes: trace.stateHashes,
      kept: [...trace.kept].map(([k, state]) => [k, encodeTrainingState(trace.arch, state)]),
    };
    const name = `${file.savedAt}-${trainingReceiptId(trace.receipt)}${SUFFIX}`;
    await writeFileDurably(join(this.#dir, name), encodeCbor(file));
    await this.sweep();
  }

  /**
   * The trace of receipt `receiptId`, rebuilt for `identity` over `shard`; undefined when there
   * is none, it is past its retention, or it does not check (another trainer's, another shard's,
   * a damaged file).
   */
  async load(
    receiptId: string,
    identity: Identity,
    shard: TextShard,
  ): Promise<TrainingTrace | undefined> {
    if (!HEX64.test(receiptId)) return undefined;
    await this.#makeDir();
    // The newest file of the run (a run saved twice is the same run).
    let newest: { at: number; name: string } | undefined;
    for await (const entry of Deno.readDir(this.#dir)) {
      const at = savedAtOf(entry.name);
      if (!entry.isFile || at === undefined || !entry.name.endsWith(`-${receiptId}${SUFFIX}`)) {
        continue;
      }
      if (newest === undefined || at > newest.at) newest = { at, name: entry.name };
    }
    if (newest === undefined || newest.at < this.#now() - this.#retainMs) return undefined;
    try {
      const bytes = await Deno.readFile(join(this.#dir, newest.name));
      return this.#rebuild(decodeCbor(bytes) as TraceFile, receiptId, identity, shard);
    } catch {
      return undefined; // gone meanwhile, or not a trace this trainer can open from
    }
  }

  /** Remove the traces past their retention (and stray temporary files); how many went. */
  async sweep(): Promise<number> {
    await this.#makeDir();
    const cutoff = this.#now() - this.#retainMs;
    let removed = 0;
    for await (const entry of Deno.readDir(this.#dir)) {
      if (!entry.isFile) continue;
      const at = savedAtOf(entry.name);
      // A temporary file is a crashed write's: saves run one at a time, each sweeping after it.
      const old = at !== undefined ? at < cutoff : entry.name.endsWith(".tmp");
      if (!old) continue;
      if (await Deno.remove(join(this.#dir, entry.name)).then(() => true, () => false)) removed++;
    }
    return removed;
  }

  #rebuild(
    file: TraceFile,
    receiptId: string,
    identity: Identity,
    shard: TextShard,
  ): TrainingTrace | undefined {
    if (file?.v !== TRACE_FILE_VERSION) return undefined;
    if (file.savedAt < this.#now() - this.#retainMs) return undefined;
    const check = verifyTrainingReceipt(file.receipt);
    if (!check.ok) return undefined;
    const receipt = check.receipt;
    if (trainingReceiptId(receipt) !== receiptId) return undefined;
    if (!bytesEqual(receipt.trainer, identity.publicKey)) return undefined;
    if (checkpointsRootOf(file.stateHashes) !== receipt.checkpointsRoot) return undefined;
    const shardCommitment = commitShard(shard, file.hyper.sampleBytes);
    if (shardCommitment.root !== receipt.shardRoot) return undefined;
    const kept = new Map<number, TrainingState>();
    for (const [k, encoded] of file.kept) {
      const state = decodeTrainingState(file.arch, encoded);
      if (trainingStateHash(file.arch, state) !== file.stateHashes[k]) return undefined;
      kept.set(k, state);
    }
    if (!kept.has(0)) return undefined;
    return {
      receipt,
      identity,
      arch: file.arch,
      hyper: file.hyper,
      shard,
      shardCommitment,
      stateHashes: file.stateHashes,
      kept,
      backend: file.backend,
    };
  }

  async #makeDir(): Promise<void> {
    if (this.#made) return;
    await makeOwnerDir(this.#dir);
    this.#made = true;
  }
}
