/**
 * The node's built-in model, built on first use and cached by content: the directory is named
 * by the CID of its `model.onnx` (the file's, not the model's id: `model_identity.ts` names the
 * config and tokenizer too), so two nodes that build the same (size, seed) hold the same files
 * under the same directory name, and the registry gives both the same model id. The alias file
 * that leads from (size, seed) to that directory also records the CID of every other file the
 * builder wrote (`config.json`, the tokenizer): the build is deterministic, so any file that no
 * longer matches — a damaged weight file, a truncated tokenizer, an edited config that would
 * contradict the graph — is a corrupted copy, and the model is rebuilt. Every file of the
 * directory being as built, its model id is the same on every node.
 *
 * Most sizes are random weights from a seed (`tiny` runs the tests). A trained size (`brown`,
 * the node's default: trained by `cli.ts train` on the Brown corpus) is not built: its weights
 * are checked in under `inference/models/<size>/model.onnx`, and installing it copies that file
 * after checking it against the CID recorded here.
 *
 * Everything here is its owner's only (directories 0700, files 0600, whatever the umask), like
 * the rest of the data directory that holds it (`protocols/owner_only.ts`); a copy an earlier
 * version left with the umask's modes is tightened when it is used.
 *
 * @module
 */
import { join } from "node:path";
import { cidOf, matchesCid } from "../protocols/cid.ts";
import {
  BUILDER_VERSION,
  buildGptModel,
  DEFAULT_MODEL_SEED,
  type GptModelSize,
} from "./model_builder.ts";
import { readWholeFile } from "../storage/read_whole_file.ts";
import { keepToOwner, OWNER_DIR_MODE, OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/** A built-in size whose weights were trained and are kept in the repository. */
export interface TrainedBuiltinModel {
  /**
   * CID of its `model.onnx` (the file's, not the model's id): the checked-in file must match it.
   */
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

/**
 * What the alias file records of a built model: the CID of its `model.onnx` (the directory's
 * name) and that of each other file the builder wrote, by name. A cache hit needs every one of
 * them to match, byte for byte.
 */
interface BuiltinRecord {
  cid: string;
  files: Record<string, string>;
}

/** In-process de-duplication of concurrent builds of the same model. */
const building = new Map<string, Promise<string>>();

/**
 * The directory of the built-in model `(size, seed)` under `modelsDir`, building it when it is
 * missing or damaged. Returns `modelsDir/<CID of its model.onnx>`; register it for its model id.
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
  await Deno.mkdir(modelsDir, { recursive: true, mode: OWNER_DIR_MODE });
  keepToOwner(modelsDir);
  await sweepLeftovers(modelsDir);
  // Alias from (size, seed, builder version) to the CID of model.onnx, so a cache hit needs no
  // rebuild to learn the name, and a model built by an older builder (another graph, another
  // CID) is not taken for today's. A trained size's CID is known: only that one is a hit.
  const aliasPath = join(modelsDir, `builtin-${size}-seed${seed}-v${BUILDER_VERSION}.cid`);
  const cached = await readAlias(aliasPath);
  if (
    cached && (!trained || cached.cid === trained.cid) &&
    (await isIntact(join(modelsDir, cached.cid), cached))
  ) {
    keepToOwner(aliasPath);
    return await keptToOwner(join(modelsDir, cached.cid));
  }

  // Build beside the target and rename, so a crash never leaves a half-written model dir
  // under a valid-looking CID name.
  const staging = join(modelsDir, `.staging-${crypto.randomUUID()}`);
  try {
    // Made here, owner-only: the builder's own `mkdir` leaves a directory that exists as it is.
    await Deno.mkdir(staging, { mode: OWNER_DIR_MODE });
    const built = await buildGptModel({ size, seed, outDir: staging });
    if (trained) {
      // The builder wrote the config and tokenizer of the architecture; the weights are the
      // checked-in trained ones.
      await Deno.writeFile(join(staging, "model.onnx"), await trainedModelBytes(size));
      built.onnxCid = trained.cid;
    }
    // The builder writes with the umask (it also writes models where an operator asks): the
    // files are made the owner's before they are published under the CID's name.
    await keptToOwner(staging);
    const record = await recordOf(staging, built.onnxCid);
    const dir = join(modelsDir, built.onnxCid);
    if (await isIntact(dir, record)) {
      await Deno.remove(staging, { recursive: true });
    } else {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.rename(staging, dir);
    }
    const aliasTmp = `${aliasPath}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(aliasTmp, JSON.stringify(record) + "\n", { mode: OWNER_FILE_MODE });
    await Deno.rename(aliasTmp, aliasPath);
    return dir;
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
}

/**
 * How old a build's leftover (a `.staging-*` directory, an alias's `.tmp`) must be to be taken
 * for a crashed build's and removed: far longer than a build takes, so one under way in another
 * process sharing the directory is left alone.
 */
const LEFTOVER_AGE_MS = 60 * 60 * 1000;

/**
 * Remove what builds that crashed left in `modelsDir`: a process killed mid-build leaves its
 * staging directory (the small model's is ~100 MB) and nothing else would ever remove it.
 */
async function sweepLeftovers(modelsDir: string): Promise<void> {
  const now = Date.now();
  for await (const entry of Deno.readDir(modelsDir)) {
    const leftover = (entry.isDirectory && entry.name.startsWith(".staging-")) ||
      (entry.isFile && entry.name.startsWith("builtin-") && entry.name.endsWith(".tmp"));
    if (!leftover) continue;
    const path = join(modelsDir, entry.name);
    const mtime = (await Deno.lstat(path).catch(() => undefined))?.mtime;
    if (mtime && now - mtime.getTime() > LEFTOVER_AGE_MS) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * `dir` and the files in it made their owner's only ({@link keepToOwner}, best effort); returns
 * `dir`. A model directory holds files only.
 */
async function keptToOwner(dir: string): Promise<string> {
  keepToOwner(dir);
  for await (const entry of Deno.readDir(dir)) keepToOwner(join(dir, entry.name));
  return dir;
}

/** The record of a freshly built directory: the CID of each file in it. */
async function recordOf(dir: string, cid: string): Promise<BuiltinRecord> {
  const files: Record<string, string> = {};
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name !== "model.onnx") {
      files[entry.name] = cidOf(await readWholeFile(join(dir, entry.name)));
    }
  }
  return { cid, files };
}

/**
 * The record an alias file holds, or `null` when there is none or it is not one (damaged, or
 * written before records listed every file: the model is then rebuilt, or found intact, once).
 */
async function readAlias(path: string): Promise<BuiltinRecord | null> {
  try {
    const record = JSON.parse(await Deno.readTextFile(path));
    const files = record?.files;
    if (
      typeof record?.cid !== "string" || typeof files !== "object" || files === null ||
      !Object.values(files).every((f) => typeof f === "string")
    ) return null;
    return { cid: record.cid, files };
  } catch {
    return null;
  }
}

/** Whether `dir` holds every file of `record`, each matching its CID, and the files it needs. */
async function isIntact(dir: string, record: BuiltinRecord): Promise<boolean> {
  try {
    for (const f of MODEL_FILES) {
      if (f !== "model.onnx" && !(f in record.files)) return false;
    }
    for (const [name, cid] of Object.entries(record.files)) {
      if (!matchesCid(cid, await readWholeFile(join(dir, name)))) return false;
    }
    return matchesCid(record.cid, await readWholeFile(join(dir, "model.onnx")));
  } catch {
    return false;
  }
}
