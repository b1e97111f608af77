/**
 * The RoundCoordinator's durable state: what a coordinator that crashes or is restarted needs to
 * go on from its last finished round instead of starting over from its seeded model. It holds
 * the number of the next round to announce, the current model by reference (its CID, storage
 * file id and outer update: the model itself is on disk and in storage, `round_models.ts`, and is
 * checked against its CID when it is loaded back), the outer momentum, the finished rounds, the
 * trainers this coordinator convicted, the first model's held-out loss and the lowest one a
 * round of the run published (the loss gate's reference, `_round_run.ts`) — and what identifies
 * the run (architecture, seed, H, inner and outer hyper-parameters), so that a state written for
 * another configuration is refused, never resumed into a model it did not train. A round saved as
 * finished whose credit and outcome may not all have gone out carries them along
 * (`round_delivery.ts`), so a restart sends them again.
 *
 * On disk, beside each other in one directory:
 *
 * ```
 * coordinator.json                    { v: 1, run, round, model, momentum?, delivery?, history, finished?, convicted, initialLoss?, bestLoss?, heldOutDigest? }
 * coordinator-momentum-<sha256>.f32   the momentum: float32 little-endian, tensors in gptWeightShapes order
 * ```
 *
 * Every file is written atomically and durably (`proof/_durable_file.ts`: temporary file, fsync,
 * rename, fsync of the directory), so a crash leaves the previous state or the new one, never a
 * mix. The momentum file is named by its hash, written before the JSON that names it, and the one
 * that JSON replaced is removed only after it is in place: the JSON always names a whole momentum,
 * and the hash is checked when it is read back — unless another state in the directory (one the
 * operator moved aside) names it too: a new run of the same settings gives the same momentum
 * bytes, so the same file name. Nothing else is ever removed but the temporary
 * files of interrupted writes: a momentum file no state here names may be another run's, whose
 * state the operator moved aside (renamed) to start a new run, and that run must stay resumable
 * by renaming its state back. (A crash between a momentum's write and its JSON's leaves that one
 * momentum file behind.) A state that cannot be read or parsed, or whose momentum is missing or
 * altered, is an error (`coordinator_state_unreadable`), never a silent restart from round 0: the
 * operator decides.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { removeTemporaries, syncDirectory, writeFileDurably } from "../proof/_durable_file.ts";
import { makeOwnerDir } from "../protocols/owner_only.ts";
import { sha256Hex } from "../protocols/hash.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { type GptWeights, gptWeightShapes } from "./gpt_weights.ts";
import { decodeRoundDelivery, encodeRoundDelivery, type RoundDelivery } from "./round_delivery.ts";
import type { LocalHyperParams } from "./hyper_params.ts";
import type { OuterHyperParams } from "./outer_step.ts";
import type { ModelUpdate } from "./round_models.ts";
import type { RoundRecord } from "./coordinator_status.ts";
import { TrainingError } from "./training_error.ts";
import { summarizeExcluded } from "./excluded_summary.ts";

/** Format of the state file; a later format is refused by this one, not misread. */
const STATE_VERSION = 1;
const HEX64 = /^[0-9a-f]{64}$/;

/** What identifies a training run: a state written for another run is not resumed. */
export interface CoordinatorRun {
  /** The model's architecture. */
  arch: GptArchitecture;
  /** Seed of the first round's start model. */
  seed: number;
  /** Local steps H per round. */
  steps: number;
  /** Inner hyper-parameters, every field. */
  hyper: LocalHyperParams;
  /** Outer hyper-parameters of the outer step. */
  outer: OuterHyperParams;
}

/** The current model, by reference. */
export interface SavedModel {
  /** Its id (`gpt_weights.ts` `gptModelId`: its `model.onnx`, config and tokenizer). */
  cid: string;
  /** Its storage file id, when it was published in storage. */
  file?: string;
  /** Its outer update from the model before it, when published with one. */
  update?: ModelUpdate;
}

/** What a coordinator resumes from. */
export interface CoordinatorSnapshot {
  /**
   * The next round to announce: every number below it was announced (finished, or lost in
   * flight at a crash), none above.
   */
  round: number;
  /** The current model: the last finished round's (the seeded one before any). */
  model: SavedModel;
  /** The outer momentum the next round's step carries (absent: none yet, or reset). */
  momentum?: GptWeights;
  /**
   * The last finished round's credit and outcome, while they may not all have gone out (absent:
   * they are out, or that round made no model).
   */
  delivery?: RoundDelivery;
  /** The latest finished rounds, oldest first (the coordinator keeps a bounded number). */
  history: RoundRecord[];
  /**
   * Rounds finished over the run, those no longer in `history` too (absent when saved: the
   * history's length; a state written before review s54 has none).
   */
  finished?: number;
  /** Hex keys of the trainers this coordinator convicted. */
  convicted: string[];
  /** Held-out loss of the first start model. */
  initialLoss?: number;
  /**
   * The lowest held-out loss of a model this run published, the first start model's included:
   * what a round's model is held to (`_round_run.ts`). Kept so that a restart does not measure
   * the gate against a worse model than the run reached (a state written before review s73's
   * fix has none: read back, the lowest of `initialLoss` and the kept records' losses).
   */
  bestLoss?: number;
  /**
   * sha256 (hex) of the held-out samples `bestLoss` was measured on (`held_out_samples.ts`: the
   * windows read, their ids and bytes): a restart on other text (`--held-out` added, changed or
   * dropped) or other windows of it measures the reference again rather than hold the new samples
   * to the old ones' loss. Absent in a state written before it (measured on the text's first
   * windows: measured again too).
   */
  heldOutDigest?: string;
}

/** A JSON number that may have been written as `null` (a NaN loss): absent. */
const optionalNumber = z.number().nullable().optional().transform((n) => n ?? undefined);

const RoundRecordSchema = z.object({
  round: z.number().int().nonnegative(),
  startModel: z.string().min(1),
  model: z.string().min(1),
  accepted: z.array(z.string()),
  // Unbounded: a state written before review s73 lists every trainer left out (it is counted and
  // cut to the sample once read, `keptRecord`).
  excluded: z.array(z.object({ key: z.string(), reason: z.string() })),
  excludedCounts: z.array(z.object({ reason: z.string(), count: z.number().int().nonnegative() }))
    .optional(),
  heldOutLoss: optionalNumber,
  momentumReset: z.literal(true).optional(),
});

const StateFileSchema = z.object({
  v: z.literal(STATE_VERSION),
  // Loose on purpose: compared field by field with this run, so a mismatch names its field.
  run: z.record(z.string(), z.unknown()),
  round: z.number().int().nonnegative(),
  model: z.object({
    cid: z.string().min(1),
    file: z.string().min(1).optional(),
    update: z.object({ from: z.string().min(1), file: z.string().min(1) }).optional(),
  }),
  momentum: z.string().regex(HEX64).optional(),
  delivery: z.string().regex(/^[0-9a-f]+$/).optional(),
  history: z.array(RoundRecordSchema),
  finished: z.number().int().nonnegative().optional(),
  convicted: z.array(z.string()),
  initialLoss: optionalNumber,
  bestLoss: optionalNumber,
  heldOutDigest: z.string().regex(HEX64).optional(),
});

/** The coordinator's state file and its momentum files; see the module doc. */
export class CoordinatorState {
  readonly #path: string;
  readonly #run: CoordinatorRun;
  /** The momentum last written or read, and its hash: unchanged, it is not written again. */
  #momentum?: { weights: GptWeights; hash: string };
  /** Hash of the momentum the state file names, as this instance last read or wrote it. */
  #named?: string;
  #dirMade = false;

  /**
   * The state of `run`, kept at `path` (nothing is read or written until asked).
   * @param path The state file (`<dataDir>/training/coordinator.json`); momentum files go beside it.
   * @param run The run this coordinator is configured for.
   */
  constructor(path: string, run: CoordinatorRun) {
    this.#path = path;
    this.#run = run;
  }

  /** The state file. */
  get path(): string {
    return this.#path;
  }

  /**
   * The saved state, checked against this run; undefined when there is none (a first start).
   * Removes the temporary files interrupted writes left behind (nothing else: see the module doc).
   * @throws {TrainingError} `coordinator_state_mismatch` when it was written for another run
   *   (the message names the file and the field), `coordinator_state_unreadable` when it, or the
   *   momentum it names, cannot be read, parsed or checked.
   */
  async load(): Promise<CoordinatorSnapshot | undefined> {
    const text = await Deno.readTextFile(this.#path).catch((error) => {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw this.#unreadable(this.#path, (error as Error).message);
    });
    if (text === undefined) return undefined;
    let parsed: z.infer<typeof StateFileSchema>;
    try {
      parsed = StateFileSchema.parse(JSON.parse(text));
    } catch (error) {
      const why = error instanceof z.ZodError
        ? error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")
        : (error as Error).message;
      throw this.#unreadable(this.#path, why);
    }
    const mismatch = firstDifference(parsed.run, this.#run as unknown as Record<string, unknown>);
    if (mismatch !== undefined) {
      throw new TrainingError(
        "coordinator_state_mismatch",
        `coordinator state ${this.#path} was written for another run: ${mismatch.field} is ` +
          `${mismatch.saved} there, ${mismatch.now} here. Restore the settings it was written ` +
          `with to resume it, or move the file aside to start a new run from round 0: ` +
          this.#moveAside(parsed.momentum),
      );
    }
    const momentum = parsed.momentum === undefined
      ? undefined
      : await this.#readMomentum(parsed.momentum);
    let delivery: RoundDelivery | undefined;
    if (parsed.delivery !== undefined) {
      try {
        delivery = decodeRoundDelivery(parsed.delivery);
      } catch (error) {
        throw this.#unreadable(this.#path, `delivery: ${(error as Error).message}`);
      }
    }
    this.#named = parsed.momentum;
    await this.#removeTemporaries();
    return {
      round: parsed.round,
      model: parsed.model,
      momentum,
      delivery,
      history: parsed.history.map(keptRecord),
      finished: Math.max(parsed.finished ?? 0, parsed.history.length),
      convicted: parsed.convicted,
      initialLoss: parsed.initialLoss,
      bestLoss: parsed.bestLoss ?? lowestLoss(parsed.initialLoss, parsed.history),
      heldOutDigest: parsed.heldOutDigest,
    };
  }

  /** Write `snapshot` for this run, atomically and durably (see the module doc). */
  async save(snapshot: CoordinatorSnapshot): Promise<void> {
    await this.#makeDir();
    let momentum: string | undefined;
    if (snapshot.momentum !== undefined) {
      if (this.#momentum?.weights !== snapshot.momentum) {
        const bytes = encodeMomentum(this.#run.arch, snapshot.momentum);
        const hash = sha256Hex(bytes);
        await writeFileDurably(this.#momentumPath(hash), bytes);
        this.#momentum = { weights: snapshot.momentum, hash };
      }
      momentum = this.#momentum.hash;
    }
    const file = {
      v: STATE_VERSION,
      run: this.#run,
      round: snapshot.round,
      model: snapshot.model,
      momentum,
      delivery: snapshot.delivery === undefined
        ? undefined
        : encodeRoundDelivery(snapshot.delivery),
      history: snapshot.history,
      finished: snapshot.finished ?? snapshot.history.length,
      convicted: snapshot.convicted,
      initialLoss: snapshot.initialLoss,
      bestLoss: snapshot.bestLoss,
      heldOutDigest: snapshot.heldOutDigest,
    };
    await writeFileDurably(this.#path, new TextEncoder().encode(JSON.stringify(file)));
    // Only now is the momentum it replaced unnamed: a crash before this line still has it. That
    // one alone goes; any other is not this state's to remove (the module doc).
    const replaced = this.#named;
    this.#named = momentum;
    if (replaced !== undefined && replaced !== momentum) {
      if (this.#momentum?.hash === replaced) this.#momentum = undefined;
      // A state moved aside beside this one may name the same file (the same run started over
      // gives the same momentum bytes): it stays, or renaming that state back would not resume.
      if (await this.#namedElsewhere(replaced)) return;
      await Deno.remove(this.#momentumPath(replaced)).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
  }

  /**
   * Whether a file beside this state, named like it but neither it nor a momentum file (a state
   * the operator moved aside: `coordinator.json.old`), names momentum `hash`. Unsure (a file that
   * cannot be read): yes, the file stays.
   */
  async #namedElsewhere(hash: string): Promise<boolean> {
    const dir = dirname(this.#path);
    const own = basename(this.#path);
    const momentumPrefix = `${this.#stem}-momentum-`;
    try {
      for await (const entry of Deno.readDir(dir)) {
        const { name } = entry;
        if (!entry.isFile || name === own || !name.startsWith(this.#stem)) continue;
        if (name.startsWith(momentumPrefix)) continue;
        const text = await Deno.readTextFile(join(dir, name));
        if (text.includes(hash)) return true;
      }
    } catch {
      return true;
    }
    return false;
  }

  async #readMomentum(hash: string): Promise<GptWeights> {
    const path = this.#momentumPath(hash);
    const bytes = await Deno.readFile(path).catch((error) => {
      throw this.#unreadable(path, (error as Error).message);
    });
    if (sha256Hex(bytes) !== hash) {
      throw this.#unreadable(path, "its contents do not match the hash the state names");
    }
    const weights = decodeMomentum(this.#run.arch, bytes);
    if (weights === undefined) {
      throw this.#unreadable(path, "not a momentum of this architecture");
    }
    this.#momentum = { weights, hash };
    return weights;
  }

  /** The momentum file of `hash`, beside the state file. */
  #momentumPath(hash: string): string {
    return join(dirname(this.#path), `${this.#stem}-momentum-${hash}.f32`);
  }

  get #stem(): string {
    return basename(this.#path).replace(/\.json$/, "");
  }

  /**
   * Remove the temporary files of this state's interrupted writes (the JSON's and its momentum
   * files'): no state names a temporary file, so none is ever read again.
   */
  async #removeTemporaries(): Promise<void> {
    const name = basename(this.#path);
    const momentumPrefix = `${this.#stem}-momentum-`;
    await removeTemporaries(
      dirname(this.#path),
      (target) => target === name || target.startsWith(momentumPrefix),
    );
  }

  async #makeDir(): Promise<void> {
    if (this.#dirMade) return;
    const dir = dirname(this.#path);
    await makeOwnerDir(dir);
    await syncDirectory(dirname(dir)); // the directory's own entry, if this made it
    this.#dirMade = true;
  }

  #unreadable(path: string, why: string): TrainingError {
    return new TrainingError(
      "coordinator_state_unreadable",
      `coordinator state ${path} cannot be read (${why}). Restore it, or move the file aside ` +
        `to start a new run from round 0: rename it where it is (mv ${this.#path} ` +
        `${this.#path}.old); a new run never removes another state's files`,
    );
  }

  /**
   * How to move this state aside, exactly: renamed where it is. A new run removes no file this
   * state names (its momentum stays beside it), so renaming it back resumes it.
   */
  #moveAside(momentum: string | undefined): string {
    const kept = momentum === undefined
      ? ""
      : `; the momentum file it names, ${basename(this.#momentumPath(momentum))}, stays beside it`;
    return `rename it where it is (mv ${this.#path} ${this.#path}.old)${kept}. A new run ` +
      `never removes another state's files: renaming it back resumes this run`;
  }
}

/**
 * A round record as it is kept: one saved before records kept counts (review s73 F4: every
 * trainer left out, ~38 MB a save at the kept bound with a crowd of joiners) is counted by reason
 * and cut to the sample (`excluded_summary.ts`), so the next save is small again.
 */
function keptRecord(record: z.infer<typeof RoundRecordSchema>): RoundRecord {
  const { excludedCounts, heldOutLoss, ...rest } = record;
  const kept = excludedCounts === undefined
    ? { ...rest, ...summarizeExcluded(rest.excluded) }
    : { ...rest, excludedCounts };
  // Absent rather than undefined: the record reads the same once saved and read back.
  return heldOutLoss === undefined ? kept : { ...kept, heldOutLoss };
}

/**
 * The lowest of a first model's loss and the losses of the rounds that published a model (a
 * record that made none has no loss): the reference of a state saved before it was kept.
 */
function lowestLoss(
  initial: number | undefined,
  history: readonly { startModel: string; model: string; heldOutLoss?: number }[],
): number | undefined {
  const losses = [
    initial,
    ...history.filter((r) => r.model !== r.startModel).map((r) => r.heldOutLoss),
  ].filter((loss): loss is number => loss !== undefined);
  return losses.length === 0 ? undefined : Math.min(...losses);
}

/** Momentum bytes: every tensor's float32 values, little-endian, in `gptWeightShapes` order. */
function encodeMomentum(arch: GptArchitecture, momentum: GptWeights): Uint8Array {
  const shapes = gptWeightShapes(arch);
  const total = shapes.reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);
  const out = new Uint8Array(4 * total);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const [name, shape] of shapes) {
    const t = momentum.get(name);
    const n = shape.reduce((a, b) => a * b, 1);
    if (t === undefined || t.data.length !== n) {
      throw new TrainingError("weights_mismatch", `momentum lacks ${name}${shape}`);
    }
    for (let i = 0; i < n; i++, o += 4) view.setFloat32(o, t.data[i], true);
  }
  return out;
}

/** {@link encodeMomentum}'s bytes back; undefined when they are not a momentum of `arch`. */
function decodeMomentum(arch: GptArchitecture, bytes: Uint8Array): GptWeights | undefined {
  const shapes = gptWeightShapes(arch);
  const total = shapes.reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);
  if (bytes.length !== 4 * total) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const weights: GptWeights = new Map();
  let o = 0;
  for (const [name, shape] of shapes) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++, o += 4) data[i] = view.getFloat32(o, true);
    if (!data.every(Number.isFinite)) return undefined;
    weights.set(name, { shape: [...shape], data });
  }
  return weights;
}

/** The first field (dotted path) whose value differs between two runs, with both values. */
function firstDifference(
  saved: Record<string, unknown>,
  now: Record<string, unknown>,
): { field: string; saved: string; now: string } | undefined {
  const a = flatten(saved);
  const b = flatten(now);
  for (const field of new Set([...Object.keys(b), ...Object.keys(a)])) {
    if (a[field] !== b[field]) {
      return { field, saved: String(a[field] ?? "absent"), now: String(b[field] ?? "absent") };
    }
  }
  return undefined;
}

function flatten(
  value: unknown,
  prefix = "",
  out: Record<string, unknown> = {},
): Record<string, unknown> {
  if (value !== null && typeof value === "object") {
    for (const [key, v] of Object.entries(value)) {
      flatten(v, prefix ? `${prefix}.${key}` : key, out);
    }
  } else out[prefix] = value;
  return out;
}
