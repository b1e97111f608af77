/**
 * Review s43: a calibration profile is filed under the id of the model it measured
 * (`proof/calibrate_model.ts`), and validators look it up by a receipt's model id. Calibration
 * loads the model directory again for every variant (and copies it for each weight precision):
 * every load must be the model the profile names, or the profile's noise is another model's.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelLoadError } from "../../inference/errors.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";
import { calibrateModel, type CalibrationOptions } from "../../proof/calibrate_model.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-review-s43-calibration-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

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
  const built = await buildGptModel({ size: "tiny", seed: 43, outDir: join(tmp, "variant") });
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
  const built = await buildGptModel({ size: "tiny", seed: 44, outDir: join(tmp, "rounded") });
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
      outDir: join(tmp, `unchanged-${withTokenizerConfig}`),
    });
    if (!withTokenizerConfig) await Deno.remove(join(built.dir, "tokenizer_config.json"));
    const id = textModelId(await readTextModelFiles(built.dir));
    assert.equal(id === built.cid, withTokenizerConfig);
    const profile = await calibrateModel(built.dir, { ...SMALL, precisions: ["bf16"] });
    assert.equal(profile.model, id);
    assert.ok(profile.precisions.bf16 !== undefined);
  }
});
