/**
 * Jobs and assignments on the wire (`protocols/job.ts`, `protocols/assignment.ts`).
 */
import assert from "node:assert/strict";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import {
  DEFAULT_GENERATION_PARAMS,
  GENERATION_LIMITS,
  type GenerationParams,
  generationParamsSchema,
  jobId,
  type TensorJob,
  tensorJobSchema,
  type TextJob,
  textJobSchema,
} from "../../protocols/job.ts";
import { ILL_FORMED_STRING_MESSAGE } from "../../protocols/well_formed.ts";
import { describeIssue, UNKNOWN_FIELD_REASON } from "../../protocols/message_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { signAssignment, verifyAssignment } from "../../protocols/assignment.ts";

const L = GENERATION_LIMITS;

const params = (p: Partial<GenerationParams> = {}): GenerationParams => ({
  ...DEFAULT_GENERATION_PARAMS,
  ...p,
});

const job = (j: Partial<TextJob> = {}): TextJob => ({
  kind: "text",
  model: "bafkreimodel",
  prompt: "Hello",
  params: params(),
  nonce: "n1",
  ...j,
});

Deno.test("generationParamsSchema accepts every bound of GENERATION_LIMITS exactly and the defaults", () => {
  for (
    const ok of [
      params(),
      params({ maxTokens: 1 }),
      params({ maxTokens: L.maxTokens }),
      params({ temperature: L.maxTemperature, topK: L.maxTopK, topP: 1 }),
      params({ seed: L.minSeed }),
      params({ seed: L.maxSeed }),
      params({ stop: Array(L.maxStopSequences).fill("x".repeat(L.maxStopChars)) }),
    ]
  ) {
    assert.ok(generationParamsSchema.safeParse(ok).success, JSON.stringify(ok));
  }
});

Deno.test("generationParamsSchema refuses each value just past a GENERATION_LIMITS bound", () => {
  for (
    const bad of [
      params({ maxTokens: 0 }),
      params({ maxTokens: L.maxTokens + 1 }),
      params({ maxTokens: 1.5 }),
      params({ temperature: -0.01 }),
      params({ temperature: L.maxTemperature + 0.01 }),
      params({ temperature: NaN }),
      params({ topK: -1 }),
      params({ topK: L.maxTopK + 1 }),
      params({ topP: 0 }),
      params({ topP: 1.01 }),
      params({ seed: 0.5 }),
      params({ seed: L.maxSeed + 2 }),
      params({ stop: [""] }),
      params({ stop: ["x".repeat(L.maxStopChars + 1)] }),
      params({ stop: Array(L.maxStopSequences + 1).fill("x") }),
    ]
  ) {
    assert.ok(!generationParamsSchema.safeParse(bad).success, JSON.stringify(bad));
  }
});

Deno.test("textJobSchema bounds model, prompt and nonce, and refuses unknown fields (in the job or its params), naming them: dropped, the job id would be another job's", () => {
  assert.ok(textJobSchema.safeParse(job()).success);
  assert.ok(textJobSchema.safeParse(job({ prompt: "x".repeat(L.maxPromptChars) })).success);
  for (
    const bad of [
      job({ model: "" }),
      job({ model: "b".repeat(L.maxModelChars + 1) }),
      job({ prompt: "x".repeat(L.maxPromptChars + 1) }),
      job({ nonce: "n".repeat(L.maxNonceChars + 1) }),
      job({ params: params({ topP: 0 }) }),
      { ...job(), kind: "tensor" },
    ]
  ) {
    assert.ok(!textJobSchema.safeParse(bad).success);
  }
  // Review s81 wire F2: a worker that dropped a newer requester's field ran another job.
  const extra = textJobSchema.safeParse({ ...job(), extra: "smuggled" });
  assert.ok(!extra.success);
  assert.equal(describeIssue(extra.error), `extra: ${UNKNOWN_FIELD_REASON}`);
  const inParams = textJobSchema.safeParse({ ...job(), params: { ...params(), minP: 0.05 } });
  assert.ok(!inParams.success);
  assert.equal(describeIssue(inParams.error), `params.minP: ${UNKNOWN_FIELD_REASON}`);
  // Review s81 vwire2 F3: a key that is no plain name (a newline, an escape) is quoted, not echoed.
  const odd = textJobSchema.safeParse({ ...job(), "a\n\u001b[31m": 1 });
  assert.ok(!odd.success);
  assert.equal(describeIssue(odd.error), `"a\\n\\u001b[31m": ${UNKNOWN_FIELD_REASON}`);
  assert.equal(jobId(textJobSchema.parse(job())), jobId(job()));
});

Deno.test("textJobSchema refuses a lone surrogate in prompt, stop, nonce or model, naming the field", () => {
  const cases: [Partial<TextJob>, string][] = [
    [{ prompt: "hello \uD800" }, "prompt"],
    [{ params: params({ stop: ["ok", "\uDC00"] }) }, "params.stop.1"],
    [{ nonce: "n-\uD83D" }, "nonce"],
    [{ model: "bafk\uDFFF" }, "model"],
  ];
  for (const [fields, path] of cases) {
    const result = textJobSchema.safeParse(job(fields));
    assert.ok(!result.success, path);
    assert.equal(result.error.issues[0].path.join("."), path);
    assert.equal(result.error.issues[0].message, ILL_FORMED_STRING_MESSAGE);
  }
  // Characters outside the BMP are surrogate pairs, which are well-formed.
  assert.ok(
    textJobSchema.safeParse(job({ prompt: "é 😀 日本", params: params({ stop: ["😀"] }) })).success,
  );
});

Deno.test("a job the schema accepts keeps its id when it crosses the wire", () => {
  const sent = job({
    prompt: "é 😀 \uE000 日本",
    params: params({ stop: ["😀", "ü"] }),
    nonce: "ñ",
    requester: "ab".repeat(32),
  });
  assert.ok(textJobSchema.safeParse(sent).success);
  const received = textJobSchema.parse(decodeCbor(encodeCbor(sent)));
  assert.deepEqual(received, sent);
  assert.equal(jobId(received), jobId(sent));
});

Deno.test("tensorJobSchema refuses an input name, tensor type, model or nonce with a lone surrogate", () => {
  const t = { type: "float32", dims: [1], data: new Uint8Array(4) };
  const tensorJob = (j: Partial<TensorJob> = {}): TensorJob => ({
    kind: "tensor",
    model: "bafkreimodel",
    inputs: { "é": t, ab: t },
    nonce: "n1",
    ...j,
  });
  assert.ok(tensorJobSchema.safeParse(tensorJob()).success);
  const bad = [
    tensorJob({ inputs: { "\uD800": t } }),
    tensorJob({ inputs: { x: { ...t, type: "float\uDC00" } } }),
    tensorJob({ model: "m\uD800" }),
    tensorJob({ nonce: "\uDBFF" }),
  ];
  bad.forEach((b, i) => assert.ok(!tensorJobSchema.safeParse(b).success, `case ${i}`));
});

const requester = Identity.generate();

const worker = Identity.generate().publicKey;

const jobAssignment: TextJob = {
  kind: "text",
  model: "bafkreimodel",
  prompt: "hi",
  params: { ...DEFAULT_GENERATION_PARAMS },
  nonce: "1",
  requester: toHex(requester.publicKey),
};

Deno.test("signAssignment refuses what no ledger would verify, instead of signing it silently", () => {
  // The good case verifies.
  const good = signAssignment({ job: jobAssignment, worker, issuedAt: 5 }, requester);
  assert.equal(verifyAssignment(good, { jobId: jobId(jobAssignment), worker }), true);
  // A job naming another requester, a time that is not one, a key that is not one.
  assert.throws(
    () =>
      signAssignment(
        { job: { ...jobAssignment, requester: undefined }, worker, issuedAt: 5 },
        requester,
      ),
    TypeError,
  );
  for (const issuedAt of [NaN, -1, Infinity]) {
    assert.throws(
      () => signAssignment({ job: jobAssignment, worker, issuedAt }, requester),
      TypeError,
      `${issuedAt}`,
    );
  }
  assert.throws(
    () =>
      signAssignment({ job: jobAssignment, worker: new Uint8Array(31), issuedAt: 5 }, requester),
    TypeError,
  );
});
