import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ensureBuiltinModel,
  TRAINED_BUILTIN_MODELS,
  trainedModelBytes,
} from "../../inference/builtin_model.ts";
import { TextModel } from "../../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import { matchesCid } from "../../protocols/cid.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-trained-builtin-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

const brown = TRAINED_BUILTIN_MODELS.brown!;

Deno.test("the checked-in brown model matches the CID recorded for it", async () => {
  const bytes = await Deno.readFile(brown.file);
  assert.ok(matchesCid(brown.cid, bytes));
  // Small enough to keep in the repository.
  assert.ok(bytes.length < 3_000_000, `${bytes.length} bytes`);
});

Deno.test("ensureBuiltinModel installs brown by copying the checked-in weights, and repairs a damaged copy", async () => {
  const models = join(tmp, "models");
  const dir = await ensureBuiltinModel(models, "brown");
  assert.equal(dir, join(models, brown.cid));
  assert.deepEqual(await Deno.readFile(join(dir, "model.onnx")), await trainedModelBytes("brown"));
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  assert.equal(config.n_positions, 128);
  // The id it is served under, as docs/MODELS.md gives it: its weights, config and tokenizer.
  assert.equal(
    textModelId(await readTextModelFiles(dir)),
    "bafyreid7pi6me5aqrcjac6gn2upseoxk7kjh7bzliy4qzw6yd5pauq27ma",
  );

  await Deno.writeFile(join(dir, "model.onnx"), new Uint8Array([1, 2, 3]));
  assert.equal(await ensureBuiltinModel(models, "brown"), dir);
  assert.ok(matchesCid(brown.cid, await Deno.readFile(join(dir, "model.onnx"))));
});

Deno.test("a weight seed is refused for the trained model (it has one set of weights)", async () => {
  await assert.rejects(ensureBuiltinModel(join(tmp, "seeded"), "brown", 1), /one set of weights/);
});

Deno.test("the trained model writes mostly letters and spaces, the random-weight one does not", async () => {
  const share = async (dir: string) => {
    const model = await TextModel.load(dir);
    try {
      let text = "";
      for await (
        const chunk of model.generate(model.tokenizer.encode("The "), {
          ...DEFAULT_GENERATION_PARAMS,
          temperature: 0.8,
          seed: 1,
          maxTokens: 100,
        })
      ) text += chunk.text;
      return { text, share: (text.match(/[a-z ]/g)?.length ?? 0) / Math.max(1, text.length) };
    } finally {
      await model.dispose();
    }
  };
  const trained = await share(await ensureBuiltinModel(join(tmp, "models"), "brown"));
  const random = await share(await ensureBuiltinModel(join(tmp, "models"), "tiny"));
  console.log(`brown: ${JSON.stringify(trained.text)}\ntiny:  ${JSON.stringify(random.text)}`);
  // Running English is ~95 % lower-case letters and spaces; random weights give far fewer.
  assert.ok(trained.share > 0.8, `${trained.share}`);
  assert.ok(trained.share > random.share + 0.2, `${trained.share} vs ${random.share}`);
});
