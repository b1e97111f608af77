/**
 * Review s46: what a streaming client receives — the numbers and text of each token an OpenAI
 * or WebSocket client is handed, against what the model, the proof and the docs say it is.
 */
import { assert, assertEquals } from "./_assert.ts";
import { topLogprobsOf } from "../../inference/top_logprobs.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";

Deno.test("review s46: top logprobs of a row with a NaN (masked) logit are the fingerprint's log-softmax, not NaN (null on the wire)", () => {
  // The sampler and the fingerprint count NaN as −∞ (probability 0); the top list promised the
  // chosen token's entry equal to its `logprob` bit for bit, and gave NaN for every entry.
  const row = new Float32Array([1, NaN, 3, 2, -Infinity]);
  const top = topLogprobsOf(row, 3);
  assertEquals(top.map((t) => t.tokenId), [2, 3, 0]);
  for (const { tokenId, logprob } of top) {
    assert(Number.isFinite(logprob), `token ${tokenId}: ${logprob}`);
    assertEquals(logprob, fingerprintOf(row, tokenId).logProb);
  }
  // A +∞ logit takes all the mass, shared among the +∞ ones, as the fingerprint says.
  const infinite = new Float32Array([1, Infinity, 3, Infinity]);
  const shared = topLogprobsOf(infinite, 3);
  assertEquals(shared.map((t) => t.tokenId), [1, 3, 2]);
  for (const { tokenId, logprob } of shared) {
    assertEquals(logprob, fingerprintOf(infinite, tokenId).logProb);
  }
});
