/**
 * A model's id (`inference/model_identity.ts`) names every file that decides its output, external
 * tensor data included, and a calibration profile is filed under the id of the model it measured.
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
import { calibrateModel, type CalibrationOptions } from "../../proof/calibrate_model.ts";
import onnxProto from "onnx-proto";
import { externalDataTensor } from "../../inference/_onnx_graph.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { TensorModel } from "../../inference/tensor_model.ts";
import { TextModel } from "../../inference/text_model.ts";

// A text model's id names every file that decides its output (`inference/model_identity.ts`):
// `model.onnx`, `config.json`, `tokenizer.json` and `tokenizer_config.json` when present. The
// golden vectors are built here from the documented encoding by hand (CBOR bytes written out,
// sha2-256 from `node:crypto`, base32 by hand), not by the code under test.

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

// A calibration profile is filed under the id of the model it measured
// (`proof/calibrate_model.ts`), and validators look it up by a receipt's model id. Calibration
// loads the model directory again for every variant (and copies it for each weight precision):
// every load must be the model the profile names, or the profile's noise is another model's.

const tmpCalibration = await Deno.makeTempDir({ prefix: "veriflow-review-s43-calibration-" });

Deno.test.afterAll(() => Deno.remove(tmpCalibration, { recursive: true }));

/** The smallest calibration: one job of two tokens, one CPU variant. */
const SMALL: CalibrationOptions = {
  jobs: 1,
  maxTokens: 2,
  threads: [1],
  graphOptimizationLevels: ["all"],
  executionProviders: ["cpu"],
  reference: { threads: 1 },
};

/** Rewrite `config.json` in `dir` with the same fields, so it loads but is another model. */
function reindentConfig(dir: string): void {
  const path = join(dir, "config.json");
  const config = JSON.parse(Deno.readTextFileSync(path));
  Deno.writeTextFileSync(path, JSON.stringify(config, null, 4) + "\n");
}

Deno.test("calibration refuses a variant loaded from files that changed after the reference (another model id)", async () => {
  const built = await buildGptModel({
    size: "tiny",
    seed: 43,
    outDir: join(tmpCalibration, "variant"),
  });
  let swapped = false;
  await assert.rejects(
    calibrateModel(built.dir, {
      ...SMALL,
      precisions: [],
      onVariant: () => {
        if (!swapped) reindentConfig(built.dir);
        swapped = true;
      },
    }),
    ModelLoadError,
  );
  assert.ok(swapped);
});

Deno.test("calibration refuses a weight-precision copy made from files that changed after the reference", async () => {
  const built = await buildGptModel({
    size: "tiny",
    seed: 44,
    outDir: join(tmpCalibration, "rounded"),
  });
  await assert.rejects(
    calibrateModel(built.dir, {
      ...SMALL,
      graphOptimizationLevels: [],
      precisions: ["bf16"],
      onVariant: (name) => {
        // The last CPU variant is measured; the bf16 copy is made next.
        if (name.startsWith("generate in batches")) reindentConfig(built.dir);
      },
    }),
    ModelLoadError,
  );
});

Deno.test("calibration of an unchanged model, with or without tokenizer_config.json, names it and measures its rounded copy", async () => {
  for (const withTokenizerConfig of [true, false]) {
    const built = await buildGptModel({
      size: "tiny",
      seed: 45,
      outDir: join(tmpCalibration, `unchanged-${withTokenizerConfig}`),
    });
    if (!withTokenizerConfig) await Deno.remove(join(built.dir, "tokenizer_config.json"));
    const id = textModelId(await readTextModelFiles(built.dir));
    assert.equal(id === built.cid, withTokenizerConfig);
    const profile = await calibrateModel(built.dir, { ...SMALL, precisions: ["bf16"] });
    assert.equal(profile.model, id);
    assert.ok(profile.precisions.bf16 !== undefined);
  }
});

// A model's id names the bytes of its files (`inference/model_identity.ts`), but an ONNX graph may
// keep a tensor's data in another file ("external data"). A model is handed to onnxruntime as
// bytes, not as a path, so such data is read from the process's working directory when the session
// is created (the graph optimizer refuses it at the default level, not with
// `graphOptimizationLevel: "disabled"`): two nodes, or two loads, run different weights under one
// id. The loaders refuse a graph with external data.

const { onnx } = onnxProto;

const tmpExternalData = await Deno.makeTempDir({ prefix: "veriflow-review-s43-external-data-" });

Deno.test.afterAll(() => Deno.remove(tmpExternalData, { recursive: true }));

const f32 = (...values: number[]) => new Uint8Array(new Float32Array(values).buffer);

const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

/** `y = x + w`, w (float32[2]) stored in the file `location`, not in the model. */
function externalAddModel(location: string): Uint8Array {
  const vector = { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } };
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "external",
      node: [{ opType: "Add", input: ["x", "w"], output: ["y"] }],
      initializer: [{
        name: "w",
        dims: [2],
        dataType: 1,
        dataLocation: EXTERNAL,
        externalData: [{ key: "location", value: location }],
      }],
      input: [{ name: "x", type: vector }],
      output: [{ name: "y", type: vector }],
    },
  })).finish();
}

/**
 * The tests below write each external file where onnxruntime would look for it only from the
 * working directory `tmp`, and do not change into it: the working directory is the whole test
 * process's, and under `--parallel` every test file beside this one saw it (a child process one
 * of them spawned then kept a directory removed after). The refusal names the tensor, which a
 * load that got as far as onnxruntime (finding the file or not) never does: it is what shows the
 * loaders refuse before reading anything.
 */
Deno.test("a tensor model whose weights are in an external file is refused, not run under the id of its model.onnx", async () => {
  const dir = join(tmpExternalData, "tensor");
  await Deno.mkdir(dir);
  await Deno.writeFile(join(dir, "model.onnx"), externalAddModel("weights.bin"));
  await Deno.writeFile(join(tmpExternalData, "weights.bin"), f32(10, 20));
  await assert.rejects(
    TensorModel.load(dir, { graphOptimizationLevel: "disabled", intraOpThreads: 1 }),
    (e) => e instanceof ModelLoadError && /tensor w keeps its data in another file/.test(e.message),
  );
  const registry = new ModelRegistry({ graphOptimizationLevel: "disabled", intraOpThreads: 1 });
  try {
    const { cid } = await registry.register(dir);
    await assert.rejects(registry.get(cid), /keeps its data in another file/);
  } finally {
    await registry.close();
  }
});

Deno.test("a text model with a tensor in an external file is refused", async () => {
  const built = await buildGptModel({
    size: "tiny",
    seed: 46,
    outDir: join(tmpExternalData, "text"),
  });
  const path = join(built.dir, "model.onnx");
  const model = onnx.ModelProto.decode(await Deno.readFile(path));
  const bias = model.graph!.initializer!.find((t) => t.name === "lm_head.bias")!;
  await Deno.writeFile(join(tmpExternalData, "lm_head.bias.bin"), bias.rawData!);
  bias.rawData = null;
  bias.dataLocation = EXTERNAL;
  bias.externalData = [{ key: "location", value: "lm_head.bias.bin" }];
  await Deno.writeFile(path, onnx.ModelProto.encode(model).finish());
  await assert.rejects(
    TextModel.load(built.dir, { graphOptimizationLevel: "disabled", intraOpThreads: 1 }),
    (e) => e instanceof ModelLoadError && /lm_head\.bias keeps its data/.test(e.message),
  );
});

Deno.test("external data is found wherever a tensor may be: a Constant's value in a subgraph, a sparse initializer", async () => {
  const built = await buildGptModel({
    size: "tiny",
    seed: 47,
    outDir: join(tmpExternalData, "clean"),
  });
  assert.equal(externalDataTensor(await Deno.readFile(join(built.dir, "model.onnx"))), undefined);
  const external = {
    name: "c",
    dims: [1],
    dataType: 1,
    dataLocation: EXTERNAL,
    externalData: [{ key: "location", value: "c.bin" }],
  };
  const constant = {
    opType: "Constant",
    output: ["c"],
    attribute: [{ name: "value", t: external }],
  };
  const inSubgraph = onnx.ModelProto.encode({
    graph: {
      node: [{ opType: "If", attribute: [{ name: "then_branch", g: { node: [constant] } }] }],
    },
  }).finish();
  assert.equal(externalDataTensor(inSubgraph), "c");
  const sparse = onnx.ModelProto.encode({
    graph: { sparseInitializer: [{ values: { ...external, name: "s" }, dims: [4] }] },
  }).finish();
  assert.equal(externalDataTensor(sparse), "s");
});
