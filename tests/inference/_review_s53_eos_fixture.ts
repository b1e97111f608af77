/**
 * A tiny model whose `config.json` lists two end tokens (as Llama 3 Instruct lists
 * `[128001, 128008, 128009]` and ends a turn at the last): the built-in EOS, then a token the
 * greedy model emits a few positions into {@link PROMPT}'s output, so a test sees generation end
 * there. Also the same weights with only the built-in EOS, for the undisturbed run.
 *
 * @module
 */
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import { collect, params } from "./_fixtures.ts";

/** The prompt of the fixture's jobs. */
export const PROMPT = "Hello";

/** Greedy, far more tokens than the output has before the second end id. */
export const GREEDY = params({ maxTokens: 16 });

/** The two models and where the listed one ends. */
export interface ListedEndsFixture {
  /** Built-in EOS only (`eos_token_id: 256`). */
  plain: TextModel;
  /** `eos_token_id: [256, second]`. */
  listed: TextModel;
  /** The second listed end id: the plain model's greedy token at output position `stopAt`. */
  second: number;
  /** First output position of `second` in the plain model's greedy output of {@link PROMPT}. */
  stopAt: number;
  /** The plain model's greedy output of {@link PROMPT} (runs past `second`, to `maxTokens`). */
  plainRun: TokenChunk[];
  /** Dispose both models and remove their directories. */
  cleanup(): Promise<void>;
}

/** Build the fixture in two temp dirs. */
export async function listedEndsFixture(): Promise<ListedEndsFixture> {
  const plainDir = await Deno.makeTempDir({ prefix: "veriflow-eos-plain-" });
  const listedDir = await Deno.makeTempDir({ prefix: "veriflow-eos-listed-" });
  await buildGptModel({ size: "tiny", seed: 0, outDir: plainDir });
  const plain = await TextModel.load(plainDir, { intraOpThreads: 1 });
  const plainRun = await collect(plain.generate(plain.tokenizer.encode(PROMPT), GREEDY));
  const tokens = plainRun.map((c) => c.tokenId);
  // A token first emitted at position ≥ 2, so the output has a few tokens before it.
  const stopAt = tokens.findIndex((id, t) => t >= 2 && !tokens.slice(0, t).includes(id));
  if (stopAt < 0 || stopAt >= GREEDY.maxTokens - 2) throw new Error("no early token to end at");
  const second = tokens[stopAt];
  for (const f of ["model.onnx", "tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${plainDir}/${f}`, `${listedDir}/${f}`);
  }
  const config = JSON.parse(await Deno.readTextFile(`${plainDir}/config.json`));
  config.eos_token_id = [config.eos_token_id, second];
  await Deno.writeTextFile(`${listedDir}/config.json`, JSON.stringify(config));
  const listed = await TextModel.load(listedDir, { intraOpThreads: 1 });
  return {
    plain,
    listed,
    second,
    stopAt,
    plainRun,
    cleanup: async () => {
      await plain.dispose();
      await listed.dispose();
      await Deno.remove(plainDir, { recursive: true });
      await Deno.remove(listedDir, { recursive: true });
    },
  };
}
