/**
 * Review s50 of the sampling check (`proof/sampling_check.ts`) against a cheating worker at a
 * top-p cut. Under top-p the kept ids are a prefix of the rule order, and an id that beats
 * another by more than 2ε is before it in every honest order; the cut ends the prefix only once
 * its mass reaches topP. The check compared a token only with the ids *definitely* kept, so at a
 * cut inside a run of tied tail ids it accepted tokens no honest run can pick: a token whose
 * better-scoring rival is surely before it (kept whenever it is), or one that wins only if
 * honest runs drop ids carrying more mass than honest noise moves. A worker picks among them
 * freely (the head token or any tail id it likes) and is never flagged.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  admissibleTokens,
  checkSampledToken,
  DEFAULT_SAMPLING_TOLERANCE,
} from "../../proof/sampling_check.ts";
import { sampleToken } from "../../inference/sampler.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { generateChunks, scriptedModel } from "./_scripted_model.ts";

/**
 * A logit row with a run of tied tail ids at the cut: id 0 at 2, ids 1–40 at −1, 41–80 at
 * −1.125, and the top-p that puts the cut at the end of the first run (of the mass top-k keeps):
 * every honest run keeps nearly all of ids 1–40.
 */
function tiedTailRow(topK = 0): { row: Float32Array; topP: number } {
  const row = new Float32Array(81);
  row[0] = 2;
  row.fill(-1, 1, 41);
  row.fill(-1.125, 41, 81);
  const w = Array.from(row, (v) => Math.exp(v));
  const sum = (n: number) => w.slice(0, n).reduce((a, b) => a + b);
  return { row, topP: sum(41) / sum(topK || row.length) };
}

const EPS = DEFAULT_SAMPLING_TOLERANCE.logitEps;

Deno.test("review s50: at a top-p cut inside a tied tail, tokens no honest run picks are refused", () => {
  const { row, topP } = tiedTailRow();
  const params = { temperature: 1, topK: 0, topP, seed: 7 };
  const t = 5;
  // Ids 6, 5 and 29 score best among ids 1–40 here, and an honest run keeps at least 38 of those
  // 40 ids whatever its noise: one of the three is always kept and wins.
  assert.equal(sampleToken(row, params, t).token, 6);
  // The head id 0 (definitely kept, so the check's only rival before), ids 8 and 23 of the tied
  // run, and ids 51, 67, 70, 71 of the next run (every id 1–40 is surely before them).
  for (const token of [0, 8, 23, 51, 67, 70, 71]) {
    const check = checkSampledToken(row, token, t, params);
    assert.equal(check.ok, false, `token ${token} passed: ${check.lo} ≤ ${check.hi}`);
  }
  assert.deepEqual(admissibleTokens(row, t, params), [5, 6, 29]);
});

Deno.test("review s50: with top-k and top-p, the head and the ids after the tied run are refused there too", () => {
  // Top-45 keeps id 0, ids 1–40 and four of ids 41–80, top-60 nineteen of them; the cut is again
  // at the end of ids 1–40 (of the mass top-k keeps).
  for (const topK of [45, 60]) {
    const { row, topP } = tiedTailRow(topK);
    const params = { temperature: 1, topK, topP, seed: 7 };
    assert.equal(sampleToken(row, params, 5).token, 6);
    assert.ok(checkSampledToken(row, 6, 5, params).ok);
    for (const token of [0, 8, 23, 51, 67, 70, 71]) {
      const check = checkSampledToken(row, token, 5, params);
      assert.equal(
        check.ok,
        false,
        `top-${topK}: token ${token} passed: ${check.lo} ≤ ${check.hi}`,
      );
    }
  }
});

Deno.test("review s50: under top-p, a token beaten by an id surely before it is refused", () => {
  const { row, topP } = tiedTailRow();
  const params = { temperature: 1, topK: 0, topP, seed: 7 };
  // Position 6: id 26 (tied run, 0.125 above id 69) beats id 69 in the race by 0.55, more than
  // 2ε = 0.1; any honest run that keeps 69 keeps 26 first.
  assert.equal(sampleToken(row, params, 6).token, 26);
  const check = checkSampledToken(row, 69, 6, params);
  assert.equal(check.ok, false, `${check.lo} ≤ ${check.hi}`);
});

Deno.test("review s50: honest workers at that cut are still accepted, logits moved by up to ε", () => {
  const { row, topP } = tiedTailRow();
  let seed = 1;
  const uniform = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  // Each logit moved within ±ε: random, all to one edge, or each run pushed the other way (what
  // moves the cut most).
  const moves = [
    () => (2 * uniform() - 1) * EPS,
    () => (uniform() < 0.5 ? -1 : 1) * EPS * 0.999,
    (v: number) => (v > -1.06 ? -1 : 1) * EPS * 0.999,
    (v: number) => (v > -1.06 ? 1 : -1) * EPS * 0.999,
  ];
  let checked = 0;
  const settings = [
    { topK: 0, topP },
    { topK: 0, topP: 0.5 },
    { topK: 0, topP: 0.9 },
    { topK: 45, topP: tiedTailRow(45).topP },
    { topK: 60, topP: tiedTailRow(60).topP },
    { topK: 30, topP: 0.8 },
  ];
  for (const s of settings) {
    const params = { temperature: 1, ...s, seed: 7 };
    for (let t = 0; t < 60; t++) {
      for (const move of moves) {
        const worker = row.map((v) => v + move(v));
        const { token } = sampleToken(worker, params, t);
        const check = checkSampledToken(row, token, t, params);
        assert.ok(
          check.ok,
          `${JSON.stringify(s)} t=${t}: token ${token}, ${check.lo} > ${check.hi}`,
        );
        checked++;
      }
    }
  }
  assert.equal(checked, settings.length * 60 * moves.length);
});

Deno.test("review s50: a worker that emits the head token at such a cut is convicted, and any node confirms it", async () => {
  // A scripted model whose row at output position 5 is the tied-tail row (every other id
  // masked); the worker emits id 0 there instead of the race's pick, with the true fingerprint.
  const { row: tail, topP } = tiedTailRow();
  const prompt = "Hello";
  const model = scriptedModel("bafy-s50-tied-tail", {
    patch: (row, position) => {
      if (position !== model.tokenizer.encode(prompt).length - 1 + 5) return;
      row.fill(-Infinity);
      row.set(tail);
    },
  });
  const params = { maxTokens: 8, temperature: 1, topK: 0, topP, seed: 7, stop: [] };
  const job: TextJob = { kind: "text", model: model.info.cid, prompt, params, nonce: "s50" };
  const chunks = generateChunks(model, model.tokenizer.encode(prompt), params, {
    replace: (t, token) => (t === 5 ? 0 : token),
  });
  assert.equal(chunks.length, 8);
  const proved = await proveJob(job, ReadableStream.from(chunks), Identity.generate());
  const res = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
    model,
    Identity.generate(),
  );
  assert.equal(res.verdict.outcome, "fraud", res.verdict.reason);
  assert.equal(res.fraudProof?.kind, "sampling");
  assert.deepEqual(res.fraudProof?.cited.map((c) => c.position), [5]);
  const check = await checkFraudProof(res.fraudProof, model);
  assert.ok(check.confirmed, check.reason);
});
