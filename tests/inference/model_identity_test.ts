/**
 * A text model's id names every file that decides its output (`inference/model_identity.ts`):
 * `model.onnx`, `config.json`, `tokenizer.json` and `tokenizer_config.json` when present. The
 * golden vectors are built here from the documented encoding by hand (CBOR bytes written out,
 * sha2-256 from `node:crypto`, base32 by hand), not by the code under test.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  readTextModelFiles,
  tensorModelId,
  TEXT_MODEL_FILES,
  type TextModelFiles,
  textModelId,
  textModelIdBlock,
  textModelIdFromCids,
} from "../../inference/model_identity.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelLoadError } from "../../inference/errors.ts";
import { cidOf, DAG_PB_CODEC } from "../../protocols/cid.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-model-identity-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

const utf8 = (text: string) => new TextEncoder().encode(text);

/** RFC 4648 base32, lower case, no padding: the multibase "b" alphabet. */
function base32(bytes: Uint8Array): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** A CIDv1 string by hand: version 1, codec, sha2-256 multihash (0x12, 32 bytes), base32. */
function handCid(codec: number, bytes: Uint8Array): string {
  const digest = createHash("sha256").update(bytes).digest();
  return "b" + base32(Uint8Array.of(0x01, codec, 0x12, 0x20, ...digest));
}

/** A CBOR text string by hand (major type 3; every string here is under 256 bytes). */
function cborText(text: string): number[] {
  const bytes = [...utf8(text)];
  return bytes.length < 24 ? [0x60 + bytes.length, ...bytes] : [0x78, bytes.length, ...bytes];
}

const FILES: TextModelFiles = {
  "model.onnx": utf8("an onnx graph"),
  "config.json": utf8('{"eos_token_id":256}\n'),
  "tokenizer.json": utf8('{"model":{"type":"BPE"}}\n'),
};

Deno.test("a text model's id is the dag-cbor CID of the documented block, built here by hand", () => {
  for (const withConfig of [false, true]) {
    const files: TextModelFiles = withConfig
      ? { ...FILES, "tokenizer_config.json": utf8("{}") }
      : FILES;
    // Length-first key order: v, type, files; then model.onnx, config.json, tokenizer.json,
    // tokenizer_config.json (10, 11, 14, 21 characters).
    const named = TEXT_MODEL_FILES.filter((name) => files[name] !== undefined);
    const block = Uint8Array.from([
      0xa3,
      ...cborText("v"),
      0x01,
      ...cborText("type"),
      ...cborText("veriflow/text-model"),
      ...cborText("files"),
      0xa0 + named.length,
      ...named.flatMap((name) => [...cborText(name), ...cborText(handCid(0x55, files[name]!))]),
    ]);
    assert.deepEqual(
      textModelIdBlock(Object.fromEntries(
        named.map((name) => [name, cidOf(files[name]!)]),
      ) as never),
      block,
    );
    // The project's canonical CBOR of the same value: the same bytes.
    assert.deepEqual(
      encodeCanonical({
        v: 1,
        type: "veriflow/text-model",
        files: Object.fromEntries(named.map((name) => [name, cidOf(files[name]!)])),
      }),
      block,
    );
    const id = textModelId(files);
    assert.equal(id, handCid(0x71, block));
    assert.match(id, /^bafyrei[a-z2-7]{52}$/);
  }
});

Deno.test("a text model's id is deterministic, and changes with one byte of any file it names", () => {
  const copy = (files: TextModelFiles): TextModelFiles =>
    Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.slice()])) as never;
  const full = { ...FILES, "tokenizer_config.json": utf8('{"add_prefix_space":false}') };
  const id = textModelId(full);
  assert.equal(textModelId(copy(full)), id, "the same bytes in other buffers, the same id");
  const ids = new Set([id]);
  for (const name of TEXT_MODEL_FILES) {
    const changed = copy(full);
    changed[name]![0] ^= 1;
    ids.add(textModelId(changed));
  }
  assert.equal(ids.size, 1 + TEXT_MODEL_FILES.length, "each file's byte gives another id");
  assert.notEqual(id, cidOf(full["model.onnx"]), "not the CID of model.onnx");
});

Deno.test("an absent tokenizer_config.json, an empty one and a non-empty one are three models", () => {
  const absent = textModelId(FILES);
  const empty = textModelId({ ...FILES, "tokenizer_config.json": new Uint8Array(0) });
  const some = textModelId({ ...FILES, "tokenizer_config.json": utf8("{}") });
  assert.equal(new Set([absent, empty, some]).size, 3);
});

Deno.test("a tensor model's id is the CID of its model.onnx alone", () => {
  const onnx = utf8("a tensor graph");
  assert.equal(tensorModelId(onnx), handCid(0x55, onnx));
});

Deno.test("the identity block takes raw CIDs of the three required files, nothing else", () => {
  const cids = {
    "model.onnx": cidOf(FILES["model.onnx"]),
    "config.json": cidOf(FILES["config.json"]),
    "tokenizer.json": cidOf(FILES["tokenizer.json"]),
  };
  assert.equal(textModelIdFromCids(cids), textModelId(FILES));
  const { "tokenizer.json": _, ...missing } = cids;
  assert.throws(() => textModelIdFromCids(missing as never), RangeError);
  assert.throws(
    () =>
      textModelIdFromCids({ ...cids, "config.json": cidOf(FILES["config.json"], DAG_PB_CODEC) }),
    RangeError,
  );
});

Deno.test("readTextModelFiles reads a built model's four files; a missing tokenizer_config.json is left out", async () => {
  const built = await buildGptModel({ size: "tiny", seed: 0, outDir: join(tmp, "tiny") });
  const files = await readTextModelFiles(built.dir);
  for (const name of TEXT_MODEL_FILES) {
    assert.deepEqual(files[name], await Deno.readFile(join(built.dir, name)), name);
  }
  assert.equal(textModelId(files), built.cid, "the builder reports the id of what it wrote");
  assert.equal(built.onnxCid, cidOf(files["model.onnx"]));
  await Deno.remove(join(built.dir, "tokenizer_config.json"));
  const without = await readTextModelFiles(built.dir);
  assert.equal("tokenizer_config.json" in without, false);
  await Deno.remove(join(built.dir, "tokenizer.json"));
  await assert.rejects(readTextModelFiles(built.dir), ModelLoadError);
});
