/**
 * A cancel in the middle of a multi-byte UTF-8 character (review s77 F1). The model's vocabulary
 * is bytes, so a token can be the first byte of a character whose rest never comes when the
 * requester cancels there. Which side flushes the decoder's held bytes: none. The requester got
 * the text streamed up to the cancel, without the incomplete character (only a generation's last
 * chunk flushes it); the prover signs that text (`proof/prover.ts`), and validators rebuild a
 * cancelled output without the final flush (`proof/_common.ts` `reconstructOutput`). So an honest
 * receipt cut mid-character validates, and the client's text matches its output hash.
 *
 * @module
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage, submitJob } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { endTokenIds } from "../../inference/end_tokens.ts";
import type { TextModel } from "../../inference/text_model.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { HeldCancelError } from "../../protocols/held_cancel.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, textOutputHash, verifyReceipt } from "../../protocols/receipt.ts";
import { loadTinyModel, params, StaticModels } from "../server/_fixtures.ts";

/** Positions searched for a cut: a byte-level model at a high temperature emits lead bytes often. */
const MAX_TOKENS = 32;
/** Seeds tried before the test gives up on finding a cut (each a few ms of the tiny model). */
const SEEDS = 64;
/** High, so that bytes past ASCII (lead bytes of multi-byte characters) are sampled. */
const TEMPERATURE = 1.5;

/** The node that forwarded the job and cancels it (a worker signs a cancel only for a peer's job). */
const REQUESTER = Identity.generate();

function jobWith(model: TextModel, seed: number): TextJob {
  return {
    kind: "text",
    model: model.info.cid,
    prompt: "Unicode: ",
    params: params({ maxTokens: MAX_TOKENS, temperature: TEMPERATURE, seed, stop: [] }),
    nonce: `mid-character-${seed}`,
    requester: toHex(REQUESTER.publicKey),
  };
}

/** The bytes a stream decoder still holds after `ids` (an incomplete character), as text. */
function heldBack(model: TextModel, ids: readonly number[]): string {
  const decoder = model.tokenizer.streamDecoder();
  const ends = endTokenIds(model.info);
  for (const id of ids) if (!ends.has(id)) decoder.push(id);
  return decoder.flush();
}

/** A job of the model's and a position k ≥ 1 after which its output stops mid-character. */
async function cutMidCharacter(model: TextModel): Promise<{ job: TextJob; k: number }> {
  for (let seed = 0; seed < SEEDS; seed++) {
    const job = jobWith(model, seed);
    const ids: number[] = [];
    for await (const chunk of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
      ids.push(chunk.tokenId);
      if (chunk.finishReason !== undefined) break; // the last chunk flushes: no cut there
      if (heldBack(model, ids) !== "") return { job, k: ids.length };
    }
  }
  throw new Error(`no output of ${SEEDS} seeds stops mid-character within ${MAX_TOKENS} tokens`);
}

Deno.test("F1: a requester's cancel in the middle of a multi-byte character ends in a receipt over the text it got (the held bytes flushed by no side), valid when re-run alone", async () => {
  const model = await loadTinyModel();
  const { job, k } = await cutMidCharacter(model);
  const worker = Identity.generate();
  const system = new ActorSystem({ name: "mid-character" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity: worker }),
    });
    const models = new StaticModels([model]);
    const inference = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models, prover: proverHook(prover) }),
    });
    const handle = await submitJob(inference, job);
    const reader = handle.tokens.getReader();
    let text = "";
    const ids: number[] = [];
    for (let i = 0; i < k; i++) {
      const next = await reader.read();
      assert(!next.done, "the job ended before the cancel");
      text += next.value.text;
      ids.push(next.value.tokenId);
    }
    // The cut is inside a character: bytes of it came, and the client's text has none of them.
    const held = heldBack(model, ids);
    assert(held !== "", "the output at the cancel is not mid-character");
    // As a forwarding node's cancel reaches the job (`serveInference`): its client got k tokens.
    await reader.cancel(new HeldCancelError(k, "cancelled by the client"));
    const summary = await handle.done;
    const receipt = summary.receipt as Receipt | undefined;
    assert(receipt !== undefined, "the cancel after tokens has no receipt");
    assertEquals(receipt.end, "cancelled");
    assertEquals(receipt.tokenCount, k);
    // What the client got is what the receipt commits to; with the held bytes flushed it is not.
    assertEquals(receipt.outputHash, textOutputHash(text));
    assert(receipt.outputHash !== textOutputHash(text + held), "the held bytes are in the hash");
    const check = verifyReceipt(receipt, { job, worker: worker.publicKey, output: text });
    assert(check.ok, check.ok ? "" : check.message);

    const served = await prover.ask<ServedProof | undefined>({
      type: "get_proof",
      receiptId: receiptId(receipt),
    });
    assert(served !== undefined, "no proof data kept");
    const { verdict } = await validateReceipt(
      { job, receipt, proof: served.proof },
      model,
      Identity.generate(),
    );
    assertEquals(verdict.outcome, "valid", verdict.reason);
    assertEquals(verdict.details?.positions, k);
  } finally {
    await system.shutdown();
  }
});
