/**
 * Resuming with a character split across the cut and a stop sequence the lone half of it would
 * match: the continuation's own text (its decoder not primed with the prefix) is not the job's,
 * so it must not decide where the job ends.
 */
import { assertEquals } from "../server/_assert.ts";
import { ByteTokenizer } from "../../inference/byte_tokenizer.ts";
import { type ResumableModel, resumeGeneration } from "../../inference/resumed_generation.ts";
import type { FinishReason, TokenChunk } from "../../inference/text_model.ts";
import type { GenerationParams } from "../../protocols/job.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import { collect, params } from "./_fixtures.ts";

const EOS = 256;
const VOCAB = 257;
/** The model's output, whatever the prompt: "é" (two bytes, split at the cut), then "abcd". */
const SCRIPT = [0xc3, 0xa9, 0x61, 0x62, 0x63, 0x64];

/** Logits that make every rule pick `token`. */
function rowFor(token: number): Float32Array {
  const row = new Float32Array(VOCAB);
  row[token] = 10;
  return row;
}

/**
 * A byte-level model that always says {@link SCRIPT}, with `generate`'s contract as
 * `TextModel.generate` has it: a fresh stream decoder, and the job ends at the token whose text
 * completes a stop sequence in the output it decoded.
 */
const model: ResumableModel = {
  info: { vocabSize: VOCAB, contextLength: 64, eosTokenId: EOS },
  tokenizer: new ByteTokenizer(),
  forward(tokens: readonly number[], _options?: { signal?: AbortSignal }) {
    // Row i predicts output position i − (prompt length − 1); the prompt here is one token.
    const logits = new Float32Array(tokens.length * VOCAB);
    tokens.forEach((_, i) => logits.set(rowFor(SCRIPT[i] ?? EOS), i * VOCAB));
    return Promise.resolve(logits);
  },
  generate(_promptIds: number[], p: GenerationParams, options?: { startIndex?: number }) {
    const decoder = new ByteTokenizer().streamDecoder();
    let index = options?.startIndex ?? 0;
    let output = "";
    return new ReadableStream<TokenChunk>({
      pull(controller) {
        const tokenId = SCRIPT[index] ?? EOS;
        let text = decoder.push(tokenId);
        output += text;
        let finishReason: FinishReason | undefined;
        if (p.stop.some((s) => output.includes(s))) finishReason = "stop";
        else if (index + 1 >= p.maxTokens) finishReason = "length";
        if (finishReason) text += decoder.flush();
        const fingerprint = fingerprintOf(rowFor(tokenId), tokenId);
        controller.enqueue({ index, tokenId, text, fingerprint, vocabSize: VOCAB, finishReason });
        index++;
        if (finishReason) controller.close();
      },
    }, { highWaterMark: 0 });
  },
};

const visible = (c: TokenChunk) => ({
  index: c.index,
  tokenId: c.tokenId,
  text: c.text,
  finishReason: c.finishReason,
});

Deno.test("a job resumed inside a character runs on as the undisturbed one, though the character's lone second byte would match a stop sequence (U+FFFD)", async () => {
  const p = params({ maxTokens: SCRIPT.length, temperature: 0, stop: ["\uFFFD"] });
  const prompt = [0x41];
  const whole = await collect(model.generate(prompt, p));
  assertEquals(whole.map((c) => c.text).join(""), "éabcd");
  assertEquals(whole.at(-1)?.finishReason, "length");
  const resumed = await collect(resumeGeneration(model, prompt, SCRIPT.slice(0, 1), p));
  assertEquals(resumed.map(visible), whole.map(visible));
});
