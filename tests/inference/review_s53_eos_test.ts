/**
 * A model whose `config.json` lists several end tokens (`eos_token_id: [a, b, …]`, as Llama 3
 * Instruct ends its turns at `<|eot_id|>`, the last of three) ends generation at every one of
 * them. Before, only the first was kept: such a model ran past the end of its turn to
 * `maxTokens`, and the client paid for every token after it.
 */
import assert from "node:assert/strict";
import {
  checkResumePrefix,
  InvalidResumeError,
  resumeGeneration,
} from "../../inference/resumed_generation.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { collect } from "./_fixtures.ts";
import { GREEDY, listedEndsFixture, PROMPT } from "./_review_s53_eos_fixture.ts";

const f = await listedEndsFixture();
Deno.test.afterAll(f.cleanup);

Deno.test("an eos_token_id list in config.json: the model info carries every id, eosTokenId still the first", () => {
  assert.deepEqual(f.listed.info.eosTokenIds, [256, f.second]);
  assert.equal(f.listed.info.eosTokenId, 256);
  assert.deepEqual(f.plain.info.eosTokenIds, [256]);
  assert.equal(f.plain.info.eosTokenId, 256);
});

Deno.test("generation stops (finishReason stop) at the second listed end id, which it emits with text ''", async () => {
  const chunks = await collect(f.listed.generate(f.listed.tokenizer.encode(PROMPT), GREEDY));
  assert.equal(chunks.length, f.stopAt + 1, "one chunk per token up to the end id, none after");
  const last = chunks[f.stopAt];
  assert.equal(last.tokenId, f.second);
  assert.equal(last.finishReason, "stop");
  assert.equal(last.text, "", "an end token renders as nothing, as EOS does");
  assert.deepEqual(
    chunks.slice(0, -1).map((c) => [c.tokenId, c.text, c.finishReason]),
    f.plainRun.slice(0, f.stopAt).map((c) => [c.tokenId, c.text, undefined]),
  );
});

Deno.test("a resume refuses a prefix holding the second listed end id", () => {
  const prompt = f.listed.tokenizer.encode(PROMPT);
  const prefix = f.plainRun.slice(0, f.stopAt + 1).map((c) => c.tokenId);
  assert.throws(
    () => checkResumePrefix(f.listed, prompt.length, prefix, GREEDY),
    (e) => e instanceof InvalidResumeError && e.code === "invalid_resume",
  );
});

Deno.test("a resumed generation ends at the second listed end id, as the undisturbed run does", async () => {
  const prompt = f.listed.tokenizer.encode(PROMPT);
  const prefix = f.plainRun.slice(0, 1).map((c) => c.tokenId);
  const chunks = await collect(resumeGeneration(f.listed, prompt, prefix, GREEDY));
  assert.equal(chunks.length, f.stopAt + 1);
  assert.equal(chunks[f.stopAt].tokenId, f.second);
  assert.equal(chunks[f.stopAt].finishReason, "stop");
  assert.equal(chunks[f.stopAt].text, "");
});

Deno.test("end ids given only under text_config (a multimodal export's config) are read there, as its dimensions are", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-eos-text-config-" });
  try {
    await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const ids = [config.eos_token_id, f.second];
    delete config.eos_token_id;
    config.text_config = { eos_token_id: ids };
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
    const model = await TextModel.load(dir, { intraOpThreads: 1 });
    try {
      assert.deepEqual(model.info.eosTokenIds, ids);
    } finally {
      await model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
