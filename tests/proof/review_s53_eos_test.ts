/**
 * The validators' end checks on a model that lists several end tokens (`eos_token_id: [256, b]`
 * in `config.json`): an output ending at any listed id is where generation ends, so a receipt
 * ending at `b` validates, and a worker that ran on past `b` (billing every token after it) is
 * convicted with a fraud proof any node confirms. The end set is the model's, bound by its id: on
 * the same weights listing only 256, ending at `b` stays a truncation.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { verifyVerdict } from "../../protocols/verdict.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import type { TextModel, TokenChunk } from "../../inference/text_model.ts";
import { GREEDY, listedEndsFixture, PROMPT } from "../inference/_review_s53_eos_fixture.ts";

const f = await listedEndsFixture();
Deno.test.afterAll(f.cleanup);

const worker = Identity.generate();
const validator = Identity.generate();

function jobFor(model: TextModel, nonce: string): TextJob {
  return { kind: "text", model: model.info.cid, prompt: PROMPT, params: GREEDY, nonce };
}

/**
 * The plain run's chunks up to and including the second end id, ended there; that token's text
 * "" where it is an end token (`asEnd`), as generation renders one.
 */
function endedAtSecond(asEnd: boolean): TokenChunk[] {
  return f.plainRun.slice(0, f.stopAt + 1).map((c, t) =>
    t === f.stopAt
      ? { ...c, text: asEnd ? "" : c.text, finishReason: "stop" }
      : { ...c, finishReason: undefined }
  );
}

/** Prove `chunks` as `model`'s job, validate the receipt on `model`, check any fraud proof. */
async function challenge(model: TextModel, chunks: TokenChunk[], nonce: string) {
  const job = jobFor(model, nonce);
  const run = await proveJob(job, ReadableStream.from(chunks), worker);
  const result = await validateReceipt(
    { job, receipt: run.receipt, proof: run.proof, output: run.output },
    model,
    validator,
  );
  assert.ok(verifyVerdict(result.verdict));
  const confirmed = result.fraudProof
    ? (await checkFraudProof(result.fraudProof, model)).confirmed
    : undefined;
  return { run, verdict: result.verdict, confirmed };
}

Deno.test("a receipt whose output ends at the second listed end id validates", async () => {
  const { verdict } = await challenge(f.listed, endedAtSecond(true), "ends-at-second");
  assert.equal(verdict.outcome, "valid", verdict.reason);
});

Deno.test("the listed model's own generation ends at the second id and its receipt validates", async () => {
  const chunks = await Array.fromAsync(
    f.listed.generate(f.listed.tokenizer.encode(PROMPT), GREEDY),
  );
  const { run, verdict } = await challenge(f.listed, chunks, "generated");
  assert.equal(run.receipt.tokenCount, f.stopAt + 1);
  assert.equal(verdict.outcome, "valid", verdict.reason);
});

Deno.test("a worker that ran past the second listed end id (rendering it as '') is convicted of overrun at it, and the fraud proof checks", async () => {
  const cheat = f.plainRun.map((c, t) => (t === f.stopAt ? { ...c, text: "" } : c));
  const { run, verdict, confirmed } = await challenge(f.listed, cheat, "ran-past-quiet");
  assert.equal(run.receipt.tokenCount, GREEDY.maxTokens, "the cheat billed to maxTokens");
  assert.equal(verdict.outcome, "fraud");
  assert.equal(verdict.reason, "overrun");
  assert.equal(confirmed, true);
});

Deno.test("a worker that ran past the second listed end id, printing it, is convicted and the fraud proof checks", async () => {
  const { verdict, confirmed } = await challenge(f.listed, f.plainRun, "ran-past-loud");
  assert.equal(verdict.outcome, "fraud");
  assert.equal(confirmed, true);
});

Deno.test("on the same weights listing only the built-in EOS, ending at the second id is still a truncation, and running on is valid", async () => {
  const cut = await challenge(f.plain, endedAtSecond(false), "plain-cut");
  assert.equal(cut.verdict.outcome, "fraud");
  assert.equal(cut.verdict.reason, "truncated");
  assert.equal(cut.confirmed, true);
  const whole = await challenge(f.plain, f.plainRun, "plain-whole");
  assert.equal(whole.verdict.outcome, "valid", whole.verdict.reason);
});
