/**
 * The node's built-in model, built on first use and cached by content: the directory is named
 * by the CID of its `model.onnx`, so two nodes that build the same (size, seed) hold the same
 * model under the same id, and a corrupted copy is detected (its bytes no longer match the
 * name) and rebuilt.
 *
 * Most sizes are random weights from a seed (`tiny` runs the tests). A trained size (`brown`,
 * the node's default: trained by `cli.ts train` on the Brown corpus) is not built: its weights
 * are checked in under `inference/models/<size>/model.onnx`, and installing it copies that file
 * after checking it against the CID recorded here.
 *
 * @module
 */
import { join } from "node:path";
import { matchesCid } from "../protocols/cid.ts";
import {
  BUILDER_VERSION,
  buildGptModel,
  DEFAULT_MODEL_SEED,
  type GptModelSize,
} from "./model_builder.ts";
import { readWholeFile } from "../storage/read_whole_file.ts";

/** A built-in size whose weights were trained and are kept in the repository. */
export interface TrainedBuiltinModel {
  /** CID of its `model.onnx`: the checked-in file must match it. */
  cid: string;
  /** The checked-in `model.onnx`. */
  file: URL;
  /** Held-out bits per byte on the Brown corpus (`docs/TRAINING.md`, measured when trained). */
  heldOutBitsPerByte: number;
  /**
   * The command it was trained with (same seeds, same weights when it was made; `docs/MODELS.md`
   * says where that stands today).
   */
  command: string;
}

/** The trained built-in sizes, by name (see `docs/MODELS.md`). */
export const TRAINED_BUILTIN_MODELS: Readonly<Partial<Record<GptModelSize, TrainedBuiltinModel>>> =
  Object.freeze({
    brown: Object.freeze({
      cid: "bafkreigsxewffxxqse4qvkkhxyhealcjjrlwr4bdl7a7u54f53jftbtcm4",
      file: new URL("./models/brown/model.onnx", import.meta.url),
      heldOutBitsPerByte: 2.648,
      command:
        "deno run -A cli.ts train --trainers 2 --rounds 49 --steps 50 --size brown --seed 0 --out DIR",
    }),
  });

/** The checked-in weights of a trained size, verified against their CID. */
export async function trainedModelBytes(size: GptModelSize): Promise<Uint8Array> {
  const trained = TRAINED_BUILTIN_MODELS[size];
  if (!trained) throw new RangeError(`model size ${size} is not a trained built-in`);
  const bytes = await readWholeFile(trained.file);
  if (!matchesCid(trained.cid, bytes)) {
    throw new Error(
      `${trained.file.pathname} does not match its CID ${trained.cid}: the checked-in model is ` +
        `damaged (it was trained with: ${trained.command})`,
    );
  }
  return bytes;
}

/** Files a built-in model directory must hold. */
const MODEL_FILES = ["model.onnx", "config.json", "tokenizer.json"] as const;

/** In-process de-duplication of concurrent builds of the same model. */
const building = new Map<string, Promise<string>>();

/**
 * The directory of the built-in model `(size, seed)` under `modelsDir`, building it when it is
 * missing or damaged. Returns `modelsDir/<cid>`.
 *
 * @example
 * ```ts ignore
 * const dir = await ensureBuiltinModel("./.veriflow/models", "tiny", 0);
 * const model = await TextModel.load(dir);
 * ```
 */
export function ensureBuiltinModel(
  modelsDir: string,
  size: GptModelSize = "tiny",
  seed: number = DEFAULT_MODEL_SEED,
): Promise<string> {
  const key = `${modelsDir}\0${size}\0${seed}`;
  let pending = building.get(key);
  if (!pending) {
    pending = ensure(modelsDir, size, seed).finally(() => building.delete(key));
    building.set(key, pending);
  }
  return pending;
}

async function ensure(modelsDir: string, size: GptModelSize, seed: number): Promise<string> {
  const trained = TRAINED_BUILTIN_MODELS[size];
  if (trained && seed !== DEFAULT_MODEL_SEED) {
    throw new RangeError(
      `the trained model ${size} has one set of weights; a weight seed (${seed}) applies to ` +
        `the random-weight sizes (tiny, small)`,
    );
  }
  await Deno.mkdir(modelsDir, { recursive: true });
  // Alias from (size, seed, builder version) to CID, so a cache hit needs no rebuild to learn the
  // name, and a model built by an older builder (another graph, another CID) is not taken for
  // today's. A trained size's CID is known: only that one is a hit.
  const aliasPath = join(modelsDir, `builtin-${size}-seed${seed}-v${BUILDER_VERSION}.cid`);
  const cached = await readAlias(aliasPath);
  if (
    cached && (!trained || cached === trained.cid) &&
    (await isIntact(join(modelsDir, cached), cached))
  ) return join(modelsDir, cached);

  // Build beside the target and rename, so a crash never leaves a half-written model dir
  // under a valid-looking CID name.
  const staging = join(modelsDir, `.staging-${crypto.randomUUID()}`);
  try {
    const built = await buildGptModel({ size, seed, outDir: staging });
    if (trained) {
      // The builder wrote the config and tokenizer of the architecture; the weights are the
      // checked-in trained ones.
      await Deno.writeFile(join(staging, "model.onnx"), await trainedModelBytes(size));
      built.cid = trained.cid;
    }
    const dir = join(modelsDir, built.cid);
    if (await isIntact(dir, built.cid)) {
      await Deno.remove(staging, { recursive: true });
    } else {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.rename(staging, dir);
    }
    const aliasTmp = `${aliasPath}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(aliasTmp, built.cid + "\n");
    await Deno.rename(aliasTmp, aliasPath);
    return dir;
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
}

async function readAlias(path: string): Promise<string | null> {
  try {
    return (await Deno.readTextFile(path)).trim() || null;
  } catch {
    return null;
  }
}

async function isIntact(dir: string, cid: string): Promise<boolean> {
  try {
    for (const f of MODEL_FILES) await Deno.stat(join(dir, f));
    return matchesCid(cid, await readWholeFile(join(dir, "model.onnx")));
  } catch {
    return false;
  }
}
