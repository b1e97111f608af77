/**
 * The training wire schemas refuse what a peer must not make a node parse or act on: a delta or an
 * answer part past its bound, an architecture that cannot be built, a round without a CID, and they
 * take well-formed bodies as sent.
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import {
  ArchitectureSchema,
  JoinMessage,
  MAX_OPENING_PART_BYTES,
  MAX_REPORT_DELTA_BYTES,
  MAX_WIRE_MODEL_PARAMETERS,
  OpeningsMessage,
  PartMessage,
  RoundMessage,
  TRAINING_PROTOCOL,
} from "../../protocols/training_messages.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { ConfigError, parseNodeConfig } from "../../node/config.ts";
import { gptWeightShapes, seededGptWeights } from "../../training/gpt_weights.ts";
import { encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";

const cid = cidOf(new TextEncoder().encode("a model"));

const round = {
  round: 3,
  startModel: cid,
  startFile: cid,
  arch: TEST_ARCH,
  steps: 12,
  dataSeed: 7,
  hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS },
  deadline: 1_700_000_000_000,
};

Deno.test("a round announcement is taken as sent, and refused without a CID or with an unbuildable architecture", () => {
  const ok = RoundMessage.schema.safeParse(round);
  assert.ok(ok.success);
  assert.deepEqual(ok.data, round);
  assert.equal(RoundMessage.schema.safeParse({ ...round, startModel: "not-a-cid" }).success, false);
  assert.equal(
    RoundMessage.schema.safeParse({ ...round, arch: { ...TEST_ARCH, numHeads: 3 } }).success,
    false,
    "width 32 does not split into 3 heads",
  );
  assert.equal(ArchitectureSchema.safeParse({ ...TEST_ARCH, numLayers: 65 }).success, false);
  assert.equal(RoundMessage.schema.safeParse({ ...round, steps: 0 }).success, false);
});

Deno.test("a report's delta and an answer's part are bounded before anything is kept", () => {
  const report = RoundMessage.reply!;
  const part = { bytes: new Uint8Array(MAX_OPENING_PART_BYTES) };
  assert.ok(PartMessage.schema.safeParse(part).success);
  assert.equal(
    PartMessage.schema.safeParse({ bytes: new Uint8Array(MAX_OPENING_PART_BYTES + 1) }).success,
    false,
  );
  // The receipt is checked by its own schema; an oversized delta fails whatever it comes with.
  const tooBig = report.schema.safeParse({
    receipt: {},
    delta: new Uint8Array(MAX_REPORT_DELTA_BYTES + 1),
  });
  assert.equal(tooBig.success, false);
  assert.ok(
    !tooBig.success &&
      tooBig.error.issues.some((i) => i.path.join(".") === "delta"),
    "the delta is named",
  );
  assert.equal(
    OpeningsMessage.schema.safeParse({ size: 10, parts: 1, sha256: "00".repeat(32) }).success,
    true,
  );
  assert.equal(
    OpeningsMessage.schema.safeParse({ size: 0, parts: 1, sha256: "00".repeat(32) }).success,
    false,
  );
});

Deno.test("a join carries only the shard's size and root, and the protocol lists every request", () => {
  const join = { shardSize: 2_122, shardRoot: "ab".repeat(32) };
  const parsed = JoinMessage.schema.safeParse({ ...join, samples: ["text"] });
  assert.ok(parsed.success);
  assert.deepEqual(parsed.data, join, "anything else a join carries is dropped");
  assert.equal(JoinMessage.schema.safeParse({ ...join, shardSize: 0 }).success, false);
  assert.deepEqual(
    TRAINING_PROTOCOL.messages.map((m) => m.type),
    [
      "training.join",
      "training.round",
      "training.challenge",
      "training.opening_part",
      "training.receipt",
      "training.fraud_proof",
      "training.outcome",
    ],
  );
});

// An architecture "no round can carry" was bounded by its parameter count, while a report carries
// the encoded int8 delta: one scale (4 bytes) per row and a header per tensor on top of a byte per
// parameter. Architectures between the two passed the wire schema and the configuration, and every
// report of theirs was refused (`delta over 983040 bytes`).

Deno.test("an architecture on the wire is refused when its encoded delta would not fit a report, not only past a byte a parameter", () => {
  // 975,604 parameters (under the 983,040 bound), 20,096 rows of scales and 29 tensor headers.
  const arch = { numLayers: 2, hiddenSize: 188, numHeads: 4, contextLength: 128 };
  const parameters = gptWeightShapes(arch).reduce(
    (n, [, shape]) => n + shape.reduce((a, b) => a * b, 1),
    0,
  );
  assert.ok(parameters <= MAX_WIRE_MODEL_PARAMETERS, "under a byte a parameter");
  // The delta a trainer of it reports: every report of this model is refused on the wire.
  const delta = encodeInt8Delta(quantizeDelta(seededGptWeights(arch, 0)));
  assert.ok(delta.byteLength > MAX_REPORT_DELTA_BYTES, `its delta is ${delta.byteLength} bytes`);
  assert.equal(ArchitectureSchema.safeParse(arch).success, false, "so the architecture is too");
  assert.throws(
    () => parseNodeConfig({ training: { arch } }),
    (error: unknown) => error instanceof ConfigError && /training\.arch/.test(error.message),
    "and a node configured to train it does not start",
  );
  // The largest the bound's own test admits still fits, delta and all.
  const widest = { numLayers: 1, hiddenSize: 256, numHeads: 4, contextLength: 64 };
  const widestDelta = encodeInt8Delta(quantizeDelta(seededGptWeights(widest, 0)));
  assert.ok(widestDelta.byteLength <= MAX_REPORT_DELTA_BYTES);
  assert.ok(ArchitectureSchema.safeParse(widest).success);
});
