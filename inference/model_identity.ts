/**
 * A model's identity: the CID that jobs, receipts, hellos, topics, routing, the ledger and a
 * validator's re-execution name a model by. It must name everything that decides what the model
 * answers, or two nodes serve "the same" model, disagree, and the validator's copy convicts an
 * honest worker.
 *
 * **Tensor models** (a bare `.onnx` file, or a directory whose `config.json` says
 * `veriflow.kind: "tensor"` or that has no `tokenizer.json`): the raw CID of `model.onnx`
 * ({@link tensorModelId}, `bafkrei…`). Nothing else decides their output: named tensors go in
 * and come out of the graph as they are, and their `config.json` gives only a name and a kind.
 *
 * **Text models**: the graph is not all. `config.json` gives the end-of-text token and the
 * context length (where a generation stops), sizes the KV cache and cuts the logits into rows;
 * `tokenizer.json`, and `tokenizer_config.json` when there is one, turn the prompt into ids and
 * ids into text. So a text model's id ({@link textModelId}) names each of those files by the raw
 * CID (CIDv1, raw, sha2-256) of its exact bytes — the files `TextModel.load` reads, and no other:
 *
 * ```
 * id    = CIDv1(dag-cbor 0x71, sha2-256(block))            // "bafyrei…", 59 characters
 * block = canonical CBOR of
 *         { "v": 1,                                        // TEXT_MODEL_ID_VERSION
 *           "type": "veriflow/text-model",                 // TEXT_MODEL_ID_TYPE
 *           "files": { "model.onnx": <raw CID string>,
 *                      "config.json": <raw CID string>,
 *                      "tokenizer.json": <raw CID string>,
 *                      "tokenizer_config.json": <raw CID string> } }  // only when present
 * ```
 *
 * Canonical CBOR as `protocols/cbor.ts` `encodeCanonical` writes it (shortest heads, map keys
 * shorter first then in code-unit order), so the bytes are `a3 61 "v" 01 64 "type" 73
 * "veriflow/text-model" 65 "files" a3|a4` and then the files as `model.onnx`, `config.json`,
 * `tokenizer.json`, `tokenizer_config.json`, each key and CID a CBOR text string (`78 3b` and 59
 * characters for a CID). They are written here directly, not through cbor-x: the block has one
 * fixed shape, and this module is loaded by commands' `--help`, which needs no permission (cbor-x
 * reads the environment as it loads). Every key is ASCII, so this is also DAG-CBOR's order, and
 * the block is a valid DAG-CBOR document whose CIDs are strings, not links (as a private file's
 * manifest lists its chunks); hence the dag-cbor codec: a text model's id ("bafyrei…") cannot be
 * mistaken for the CID of a file ("bafkrei…").
 *
 * - A file is named by its bytes, not by what they parse to: a config re-indented is another
 *   id. Two ids for one behaviour cost a little routing; one id for two behaviours convicts.
 * - An absent `tokenizer_config.json` leaves its key out; an empty one is named by the CID of no
 *   bytes: absent and empty are different models (an empty file is not valid JSON, and fails to
 *   load, but is not taken for a missing one).
 * - `type` and `v` let the format change: a block of another type or version is another id,
 *   never a reinterpretation of this one.
 *
 * A trained GPT's id is computed without writing its files: the builder's `config.json` and
 * tokenizer files are a pure function of the architecture (`training/gpt_weights.ts`
 * `gptModelId`).
 *
 * @module
 */
import { join } from "node:path";
import { cidCodec, cidOf, DAG_CBOR_CODEC, RAW_CODEC } from "../protocols/cid.ts";
import { readWholeFile } from "../storage/read_whole_file.ts";
import { ModelLoadError } from "./errors.ts";

/** The `type` of a text model's identity block. */
export const TEXT_MODEL_ID_TYPE = "veriflow/text-model";
/** The version of the identity block this code writes. */
export const TEXT_MODEL_ID_VERSION = 1;

/** The files a text model's identity names: every file `TextModel.load` reads. */
export const TEXT_MODEL_FILES = [
  "model.onnx",
  "config.json",
  "tokenizer.json",
  "tokenizer_config.json",
] as const;

/** The name of one of {@link TEXT_MODEL_FILES}. */
export type TextModelFileName = typeof TEXT_MODEL_FILES[number];

/** The bytes of a text model's files: three it needs, `tokenizer_config.json` when it has one. */
export interface TextModelFiles {
  /** The ONNX graph and weights. */
  "model.onnx": Uint8Array;
  /** The Hugging Face style config (dimensions, end-of-text token, context length). */
  "config.json": Uint8Array;
  /** The Hugging Face tokenizer. */
  "tokenizer.json": Uint8Array;
  /** The tokenizer's options; absent when the model has none (not the same as empty). */
  "tokenizer_config.json"?: Uint8Array;
}

/** The raw CID of each of a text model's files (see {@link TextModelFiles}). */
export type TextModelFileCids = { [K in keyof TextModelFiles]: string };

/**
 * The id of a tensor model: the raw CID of its `model.onnx`, the only file that decides its
 * output.
 *
 * @param onnx The bytes of `model.onnx`.
 * @returns Its CID (`bafkrei…`).
 */
export function tensorModelId(onnx: Uint8Array): string {
  return cidOf(onnx);
}

/**
 * The id of a text model (see the module doc).
 *
 * @example
 * ```ts
 * import { textModelId } from "./model_identity.ts";
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * const files = { "model.onnx": bytes("graph"), "config.json": bytes("{}"), "tokenizer.json": bytes("{}") };
 * textModelId(files) !== textModelId({ ...files, "tokenizer_config.json": bytes("{}") }); // true
 * ```
 * @param files The bytes of its files.
 * @returns Its CID (`bafyrei…`).
 */
export function textModelId(files: TextModelFiles): string {
  const cids = {} as Record<string, string>;
  for (const name of TEXT_MODEL_FILES) {
    const bytes = files[name];
    if (bytes !== undefined) cids[name] = cidOf(bytes);
  }
  return textModelIdFromCids(cids as TextModelFileCids);
}

/**
 * The id of a text model from the raw CIDs of its files: what {@link textModelId} computes once
 * it has hashed them, for a caller that knows some CIDs already (a trainer knows its
 * architecture's config and tokenizer).
 *
 * @param cids The raw CID of each file.
 * @returns Its CID (`bafyrei…`).
 * @throws {RangeError} a required file's CID is missing, or one is not a raw-codec CID.
 */
export function textModelIdFromCids(cids: TextModelFileCids): string {
  return cidOf(textModelIdBlock(cids), DAG_CBOR_CODEC);
}

/**
 * The block a text model's id is the CID of: the canonical CBOR of the module doc.
 *
 * @param cids The raw CID of each file.
 * @returns The block's bytes.
 * @throws {RangeError} a required file's CID is missing, or one is not a raw-codec CID.
 */
export function textModelIdBlock(cids: TextModelFileCids): Uint8Array {
  const files: number[] = [];
  let count = 0;
  // TEXT_MODEL_FILES is in canonical key order (shorter first): the map is written in it.
  for (const name of TEXT_MODEL_FILES) {
    const cid = cids[name];
    if (cid === undefined) {
      if (name === "tokenizer_config.json") continue;
      throw new RangeError(`a text model's identity needs the CID of its ${name}`);
    }
    // A file is named by its bytes: a CID of another codec would name them twice.
    if (cidCodec(cid) !== RAW_CODEC) throw new RangeError(`${name}: ${cid} is not a raw CID`);
    files.push(...cborText(name), ...cborText(cid));
    count++;
  }
  return Uint8Array.from([
    ...cborHead(CBOR_MAP, 3),
    ...cborText("v"),
    ...cborHead(CBOR_UINT, TEXT_MODEL_ID_VERSION),
    ...cborText("type"),
    ...cborText(TEXT_MODEL_ID_TYPE),
    ...cborText("files"),
    ...cborHead(CBOR_MAP, count),
    ...files,
  ]);
}

/** CBOR major types of the block: unsigned integer, text string, map (RFC 8949 §3.1). */
const CBOR_UINT = 0;
const CBOR_TEXT = 3;
const CBOR_MAP = 5;

/** The shortest CBOR head of major type `major` with argument `n` (every one here is < 2¹⁶). */
function cborHead(major: number, n: number): number[] {
  if (n < 24) return [(major << 5) | n];
  if (n < 0x100) return [(major << 5) | 24, n];
  if (n < 0x1_0000) return [(major << 5) | 25, n >> 8, n & 0xff];
  throw new RangeError(`${n} is beyond what an identity block holds`);
}

/** A CBOR text string: its head, then its UTF-8 bytes. */
function cborText(text: string): number[] {
  const bytes = new TextEncoder().encode(text);
  return [...cborHead(CBOR_TEXT, bytes.length), ...bytes];
}

/**
 * Read a text model directory's files, as {@link textModelId} names them and `TextModel.load`
 * parses them (one read of each, so what is hashed is what runs).
 *
 * @param dir The model directory.
 * @returns The bytes of each file; `tokenizer_config.json` only when it exists.
 * @throws {ModelLoadError} a required file cannot be read, or `tokenizer_config.json` exists but
 *   cannot be read.
 */
export async function readTextModelFiles(dir: string): Promise<TextModelFiles> {
  let onnx: Uint8Array;
  let config: Uint8Array;
  try {
    onnx = await readWholeFile(join(dir, "model.onnx"));
    config = await readWholeFile(join(dir, "config.json"));
  } catch (cause) {
    throw new ModelLoadError(`cannot read model.onnx and config.json in ${dir}`, { cause });
  }
  let tokenizer: Uint8Array;
  try {
    tokenizer = await readWholeFile(join(dir, "tokenizer.json"));
  } catch (cause) {
    throw new ModelLoadError(`cannot read tokenizer.json in ${dir}`, { cause });
  }
  const tokenizerConfig = await readIfPresent(join(dir, "tokenizer_config.json"));
  return {
    "model.onnx": onnx,
    "config.json": config,
    "tokenizer.json": tokenizer,
    ...(tokenizerConfig === undefined ? {} : { "tokenizer_config.json": tokenizerConfig }),
  };
}

/**
 * The bytes of the file at `path`, or `undefined` when there is none. Unreadable is not absent:
 * any other failure is a {@link ModelLoadError}, so a file that is there is never left out of a
 * model's id.
 */
export async function readIfPresent(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readWholeFile(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) return undefined;
    throw new ModelLoadError(`cannot read ${path}`, { cause });
  }
}
