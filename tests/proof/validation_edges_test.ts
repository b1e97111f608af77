/**
 * Validation at the edges: honest receipts at the edges of what a job and a model allow validate
 * (near-zero temperatures, masked logits, chunk size 1, prompts that fill the context window,
 * models with several end tokens), and receipts no honest worker can produce, shaped on purpose
 * included, cost the worker on evidence any node can check, without ever making the checker throw.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { generationParamsSchema, jobId, type TextJob } from "../../protocols/job.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import {
  type FraudKind,
  type FraudProof,
  FraudProofSchema,
  fraudProofSize,
  signFraudProof,
} from "../../protocols/fraud_proof.ts";
import { FraudProofAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../../streams/length_prefixed_stream.ts";
import {
  chunkLeaf,
  type ChunkOpening,
  commitmentRootFrom,
  MIN_COMMITMENT_CHUNK_SIZE,
  openChunks,
} from "../../proof/commitment.ts";
import { connectedPair } from "../protocols/_helpers.ts";
import { verifyVerdict } from "../../protocols/verdict.ts";
import { BUILTIN_EOS_TOKEN_ID, BUILTIN_PAD_TOKEN_ID } from "../../inference/byte_tokenizer.ts";
import { tinyModel } from "../inference/_fixtures.ts";
import { generateChunks, scriptedModel } from "./_scripted_model.ts";
import type { TextModel, TokenChunk } from "../../inference/text_model.ts";
import { GREEDY, listedEndsFixture, PROMPT } from "../inference/_review_s53_eos_fixture.ts";
import { sha256, toHex } from "../../protocols/hash.ts";
import { inputHashOf, type Receipt, signReceipt } from "../../protocols/receipt.ts";
import { FINGERPRINT_BYTES, FINGERPRINT_SCHEME } from "../../proof/fingerprint.ts";
import { MerkleTree } from "../../proof/merkle.ts";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { assigned, job as fixtureJob, withLedgerDir } from "./_ledger_fixtures.ts";

// Honest receipts at the edges of what a job and a model allow must validate, and receipts no
// honest worker can produce must cost the worker on evidence any node can check: near-zero
// temperatures, masked (−∞) logits, chunk size 1 commitments, prompts that fill the context window.
// Each test builds on the tiny model or a scripted stand-in (fast).

const tiny = await tinyModel();
Deno.test.afterAll(() => tiny.cleanup());
const m = tiny.model;

Deno.test("an honest receipt at a denormal temperature validates (greedy below MIN_SAMPLING_TEMPERATURE)", async () => {
  // l/T overflowed to +∞ for every positive logit: the sampler took the smallest such id, the
  // check computed ∞ − ∞ = NaN and convicted the worker of `sampling`; the checker agreed.
  for (const [i, temperature] of [5e-324, 1e-310, 5e-7].entries()) {
    for (const topP of [1, 0.9]) {
      const params = { maxTokens: 8, temperature, topK: 0, topP, seed: 1, stop: [] };
      assert.ok(generationParamsSchema.safeParse(params).success, "the schema accepts the job");
      const job: TextJob = {
        kind: "text",
        model: m.info.cid,
        prompt: "Hello there",
        params,
        nonce: `tiny-t-${i}-${topP}`,
      };
      const proved = await proveJob(
        job,
        m.generate(m.tokenizer.encode(job.prompt), params),
        Identity.generate(),
      );
      const res = await validateReceipt(
        { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
        m,
        Identity.generate(),
      );
      assert.equal(
        res.verdict.outcome,
        "valid",
        `T=${temperature} topP=${topP}: ${res.verdict.reason}`,
      );
    }
  }
});

Deno.test("a model with masked (−∞) ids: honest receipts validate; a cheat's proof and verdict hold only finite numbers", async () => {
  // The pad id and 'x' are masked in every row, as exported models mask unused ids.
  const X = "x".charCodeAt(0);
  const model = scriptedModel("bafy-masked", {
    patch: (row) => {
      row[BUILTIN_PAD_TOKEN_ID] = -Infinity;
      row[X] = -Infinity;
    },
  });
  const prompt = model.tokenizer.encode("Hello");
  const run = async (params: TextJob["params"], nonce: string, cheat = false) => {
    const job: TextJob = { kind: "text", model: model.info.cid, prompt: "Hello", params, nonce };
    const chunks = generateChunks(model, prompt, params, {
      replace: cheat ? (t, token) => (t === 0 ? X : token) : undefined,
    });
    const proved = await proveJob(job, ReadableStream.from(chunks), Identity.generate());
    return await validateReceipt(
      { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
      model,
      Identity.generate(),
    );
  };
  for (const temperature of [0, 0.8]) {
    const params = { maxTokens: 12, temperature, topK: 0, topP: 1, seed: 3, stop: [] };
    const res = await run(params, `masked-${temperature}`);
    // The projection was NaN at every position: fingerprint_mismatch, and a verdict whose
    // details (maxDistance NaN) did not verify.
    assert.equal(res.verdict.outcome, "valid", `T=${temperature}: ${res.verdict.reason}`);
    assert.ok(verifyVerdict(res.verdict));
  }
  // The cheat emits a masked id (probability 0) at its first position: its recomputed logProb is
  // −∞, which made the signed proof malformed, so the checker refuted the honest validator.
  const params = { maxTokens: 4, temperature: 0.8, topK: 0, topP: 1, seed: 3, stop: [] };
  const res = await run(params, "masked-cheat", true);
  assert.equal(res.verdict.outcome, "fraud");
  assert.ok(verifyVerdict(res.verdict), "the verdict verifies");
  assert.ok(res.fraudProof && FraudProofSchema.safeParse(res.fraudProof).success, "proof parses");
  for (const c of res.fraudProof.cited) {
    for (const v of Object.values(c)) {
      assert.ok(v === undefined || Number.isFinite(v), JSON.stringify(c));
    }
  }
  const check = await checkFraudProof(res.fraudProof, model);
  assert.ok(check.confirmed, check.reason);
});

/**
 * A model with an 8k context that never emits EOS and says "a" (the jobs' stop string, at 20
 * nats) at every 50th position.
 */
const A = "a".charCodeAt(0);
const talkative = scriptedModel("bafy-longctx", {
  patch: (row, position) => {
    row[BUILTIN_EOS_TOKEN_ID] = -Infinity;
    if (position % 50 === 49) row[A] = 20;
  },
});
const LONG = { maxTokens: 4096, temperature: 0, topK: 0, topP: 1, seed: 0, stop: ["a"] };

/** Prove `chunks` for a 4,096-token job at `chunkSize`, and validate it. */
async function proveAndValidate(
  chunks: ReturnType<typeof generateChunks>,
  chunkSize: number,
  nonce: string,
  tamperOutput = false,
) {
  const job: TextJob = {
    kind: "text",
    model: talkative.info.cid,
    prompt: "Hi",
    params: LONG,
    nonce,
  };
  if (tamperOutput) chunks = chunks.map((c, t) => (t === 7 ? { ...c, text: "#" } : c));
  const proved = await proveJob(job, ReadableStream.from(chunks), Identity.generate(), {
    chunkSize,
  });
  const res = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
    talkative,
    Identity.generate(),
  );
  return { job, proved, res };
}

/** True when `proof` goes out in one FraudProofAnnouncementMessage. */
async function announces(proof: FraudProof): Promise<boolean> {
  const pair = connectedPair();
  try {
    await pair.client.notify(FraudProofAnnouncementMessage, { proof });
    return true;
  } catch {
    return false;
  } finally {
    await pair.close().catch(() => {});
  }
}

Deno.test("an overrun fraud proof opens the chunks up to the stop only: it fits a frame at one position per chunk", async () => {
  // The cheat runs on past its stop string (within 50 positions) and bills all 4,096 tokens,
  // committed one position per chunk. The termination proof opened every chunk (2 MB, over the
  // 1 MiB frame), so no other node ever saw it.
  const prompt = talkative.tokenizer.encode("Hi");
  const chunks = generateChunks(talkative, prompt, LONG, { runOn: true });
  assert.equal(chunks.length, 4096);
  const { proved, res } = await proveAndValidate(chunks, 1, "overrun");
  assert.equal(res.verdict.outcome, "fraud");
  assert.equal(res.verdict.reason, "overrun");
  const proof = res.fraudProof!;
  assert.equal(proof.kind, "termination");
  const stop = proof.cited[0].position;
  assert.equal(stop, chunks.findIndex((c) => c.tokenId === A), "where the stop string completed");
  assert.ok(stop < 50);
  assert.equal(proof.chunks.length, stop + 1, "chunks 0..stop, not all 4,096");
  assert.ok(fraudProofSize(proof) < DEFAULT_MAX_FRAME_BYTES / 16, `${fraudProofSize(proof)} B`);
  assert.ok(await announces(proof), "the announcement goes out");
  const check = await checkFraudProof(proof, talkative);
  assert.ok(check.confirmed, check.reason);

  // The old form, every chunk opened, still checks; a prefix of an honest output proves nothing.
  const validator = Identity.generate();
  const { sig: _s, validator: _v, ...unsigned } = proof;
  const allOpened = signFraudProof(
    { ...unsigned, chunks: openChunks(proved.proof, 4095, new Set()) },
    validator,
  );
  assert.ok((await checkFraudProof(allOpened, talkative)).confirmed);
  const honest = generateChunks(talkative, prompt, LONG);
  assert.equal(honest.length, stop + 1);
  const fair = await proveAndValidate(honest, 1, "honest");
  assert.equal(fair.res.verdict.outcome, "valid", fair.res.verdict.reason);
  const forged = signFraudProof({
    ...unsigned,
    job: fair.job,
    receipt: fair.proved.receipt,
    chunks: openChunks(fair.proved.proof, 10, new Set()),
    cited: [{ position: 10 }],
  }, validator);
  assert.equal((await checkFraudProof(forged, talkative)).confirmed, false);
});

Deno.test("at the smallest chunk size a ledger records, a proof opening every chunk of 4,096 tokens fits a frame", async () => {
  // An `output` proof must open every chunk. Below MIN_COMMITMENT_CHUNK_SIZE it would not fit
  // (ledgers refuse such receipts); at it, it does and is confirmed.
  const prompt = talkative.tokenizer.encode("Hi");
  const chunks = generateChunks(talkative, prompt, LONG, { runOn: true });
  for (const chunkSize of [1, MIN_COMMITMENT_CHUNK_SIZE]) {
    const { res } = await proveAndValidate(chunks, chunkSize, `output-${chunkSize}`, true);
    assert.equal(res.verdict.reason, "output_mismatch");
    const proof = res.fraudProof!;
    assert.equal(proof.chunks.length, 4096 / chunkSize);
    const fits = fraudProofSize(proof) < DEFAULT_MAX_FRAME_BYTES / 2;
    assert.equal(fits, chunkSize >= MIN_COMMITMENT_CHUNK_SIZE, `${fraudProofSize(proof)} B`);
    if (fits) {
      assert.ok(await announces(proof));
      assert.ok((await checkFraudProof(proof, talkative)).confirmed);
    }
  }
});

/** A receipt over `tokens` made up for `job` (no model ran), validated on `m`. */
async function validateFabricated(job: TextJob, tokens: number[]) {
  const chunks = tokens.map((tokenId, index) => ({
    index,
    tokenId,
    text: String.fromCharCode(tokenId),
    fingerprint: { logProb: -1, projection: 0 },
    vocabSize: m.info.vocabSize,
  }));
  const proved = await proveJob(job, ReadableStream.from(chunks), Identity.generate());
  return await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
    m,
    Identity.generate(),
  );
}

Deno.test("a receipt for a prompt that fills the context window is termination fraud at position 0, before any forward pass", async () => {
  // generate refuses such a prompt, so no honest receipt exists. The termination rule took the
  // window as full at position 0 and accepted one token: at exactly the context length the
  // receipt validated, and beyond it validateReceipt threw ContextLengthError from the forward
  // pass (the actor's inconclusive: unpaid, never slashed).
  const ctx = m.info.contextLength;
  const params = { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };
  const base = m.tokenizer.encode("a".repeat(ctx)).length - ctx; // tokens beyond one per char
  for (const [i, extra] of [0, 5].entries()) {
    const prompt = "a".repeat(ctx + extra - base);
    assert.equal(m.tokenizer.encode(prompt).length, ctx + extra);
    assert.throws(() => m.generate(m.tokenizer.encode(prompt), params), "honest workers refuse");
    const job: TextJob = { kind: "text", model: m.info.cid, prompt, params, nonce: `long-${i}` };
    for (const tokens of [[], [98], [98, 99]]) {
      const res = await validateFabricated(job, tokens);
      const what = `prompt ${ctx + extra} tokens, ${tokens.length} output`;
      assert.equal(`${res.verdict.outcome}/${res.verdict.reason}`, "fraud/prompt_too_long", what);
      assert.equal(res.stats.forwardTokens, 0, "no forward pass");
      const proof = res.fraudProof!;
      assert.equal(proof.kind, "termination");
      assert.deepEqual(proof.cited, [{ position: 0 }]);
      assert.equal(proof.chunks.length, Math.min(1, tokens.length), "chunk 0 at most");
      const check = await checkFraudProof(proof, m);
      assert.ok(check.confirmed, `${what}: ${check.reason}`);
    }
  }
  // One token short of the window: generation emits one token, and that receipt validates.
  const prompt = "a".repeat(ctx - 1 - base);
  const job: TextJob = { kind: "text", model: m.info.cid, prompt, params, nonce: "fits" };
  const proved = await proveJob(
    job,
    m.generate(m.tokenizer.encode(prompt), params),
    Identity.generate(),
  );
  assert.equal(proved.receipt.tokenCount, 1);
  const res = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
    m,
    Identity.generate(),
  );
  assert.equal(res.verdict.outcome, "valid", res.verdict.reason);
});

Deno.test("a receipt for an empty prompt is termination fraud at position 0 that a checker confirms from the job alone", async () => {
  // generate refuses an empty prompt, so no honest receipt exists. Such a receipt ended
  // `invalid` without a fraud proof, which the validator settles as unresolved (unpaid, never
  // slashed): a worker assigning itself empty-prompt jobs was paid whenever the coin missed.
  const params = { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };
  assert.throws(() => m.generate([], params), "honest workers refuse");
  for (const [i, tokens] of [[], [98], [98, 99, 100, 101]].entries()) {
    const job: TextJob = {
      kind: "text",
      model: m.info.cid,
      prompt: "",
      params,
      nonce: `empty-${i}`,
    };
    const res = await validateFabricated(job, tokens);
    const what = `${tokens.length} output tokens`;
    assert.equal(`${res.verdict.outcome}/${res.verdict.reason}`, "fraud/empty_prompt", what);
    assert.equal(res.stats.forwardTokens, 0, "no forward pass");
    const proof = res.fraudProof!;
    assert.equal(proof.kind, "termination");
    assert.deepEqual(proof.cited, [{ position: 0 }]);
    assert.equal(proof.chunks.length, Math.min(1, tokens.length), "chunk 0 at most");
    assert.ok(await announces(proof));
    const check = await checkFraudProof(proof, m);
    assert.ok(check.confirmed, `${what}: ${check.reason}`);
  }
});

// The validators' end checks on a model that lists several end tokens (`eos_token_id: [256, b]` in
// `config.json`): an output ending at any listed id is where generation ends, so a receipt ending
// at `b` validates, and a worker that ran on past `b` (billing every token after it) is convicted
// with a fraud proof any node confirms. The end set is the model's, bound by its id: on the same
// weights listing only 256, ending at `b` stays a truncation.

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

// Fraud proofs against receipts a cheater shaped on purpose. Every field value the receipt schema
// admits must end in a judgement: a receipt no proof could ever convict is refused when recorded
// (so never paid), and a validly signed proof never makes the checker throw (a throw settles
// nothing: the accused keeps its pay and the accuser its stake).

const owner = Identity.generate();
const accuser = Identity.generate();

const MODEL = "bafkreimodel"; // the fixture jobs' model
const TOKENS = 4; // one chunk of the fewest positions a ledger records

/**
 * A worker's receipt for `job` whose commitment packs its tokens `tokenBytes` wide, with the
 * one opening of its one chunk (genuine: its path leads to the signed root). The output hash is
 * one no tokens decode to: an `output` fraud on its face.
 */
function shapedReceipt(
  job: TextJob,
  tokenBytes: number,
): { receipt: Receipt; opening: ChunkOpening } {
  const tokens = new Uint8Array(TOKENS * tokenBytes).fill(0x41);
  const fingerprints = new Uint8Array(TOKENS * FINGERPRINT_BYTES);
  const leaf = chunkLeaf(0, sha256(tokens), sha256(fingerprints));
  const tree = new MerkleTree([leaf]);
  const root = toHex(commitmentRootFrom(TOKENS, TOKENS, tokenBytes, tree.root()));
  const receipt = signReceipt({
    v: 1,
    kind: "text",
    jobId: jobId(job),
    model: MODEL,
    inputHash: inputHashOf(job),
    params: job.params,
    outputHash: "ab".repeat(32),
    commitment: { scheme: FINGERPRINT_SCHEME, root, chunkSize: TOKENS, tokenBytes },
    tokenCount: TOKENS,
    timings: { startedAt: 0, firstTokenMs: 1, totalMs: 2 },
  }, worker);
  return {
    receipt,
    opening: { index: 0, tokens, fingerprintsHash: sha256(fingerprints), path: tree.path(0) },
  };
}

function proofAgainst(
  job: TextJob,
  receipt: Receipt,
  opening: ChunkOpening,
  kind: FraudKind,
) {
  return signFraudProof({
    v: 1,
    kind,
    job,
    receipt,
    chunks: [opening],
    cited: [{ position: kind === "termination" ? TOKENS : 0 }],
    issuedAt: 1,
  }, accuser);
}

Deno.test("a text receipt signing a token width no proof data has (0, 1, 3) is refused when recorded, or its fraud proof convicts", async () => {
  for (const tokenBytes of [0, 1, 3]) {
    await withLedgerDir(async (dir, clock) => {
      const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
      await ledger.deposit(worker.publicKey, 1_000_000);
      await ledger.deposit(accuser.publicKey, 1_000_000);
      const job = fixtureJob(9_000 + tokenBytes);
      const { receipt, opening } = shapedReceipt(job, tokenBytes);
      const recorded = await ledger.recordReceipt(receipt, assigned(receipt)).then(
        (rec) => rec,
        (error) => {
          assert.ok(error instanceof LedgerRejectedError, String(error));
          assert.equal(error.code, "receipt_rejected");
          return undefined;
        },
      );
      if (recorded !== undefined) {
        // Recorded, so payable: the proof of the worker's own lie must settle it.
        const model = scriptedModel(MODEL);
        const proof = proofAgainst(job, receipt, opening, "output");
        const check = await checkFraudProof(proof, model);
        assert.equal(check.confirmed, true, `tokenBytes ${tokenBytes}: ${check.reason}`);
        await ledger.settleFraud({
          receiptId: recorded.receiptId,
          fraudProofHash: check.proofHash,
          validator: accuser.publicKey,
          confirmed: true,
          reason: check.reason,
        });
      }
      clock.t += ledger.economics.challengeWindowMs + 1;
      await ledger.finalizeDue();
      // Not paid either way: refused (no record), or slashed by the proof.
      assert.ok(ledger.account(worker.publicKey).balance <= 0, `tokenBytes ${tokenBytes}: paid`);
      assert.ok(ledger.account(worker.publicKey).stake <= 1_000_000);
      await ledger.close();
    });
  }
});

Deno.test("a signed proof against a receipt of an odd token width is judged, never thrown on", async () => {
  const model = scriptedModel(MODEL);
  for (const tokenBytes of [0, 1, 3]) {
    const job = fixtureJob(9_100 + tokenBytes);
    const { receipt, opening } = shapedReceipt(job, tokenBytes);
    for (const kind of ["output", "termination", "sampling", "fingerprint"] as const) {
      // Without the model too: the checker must answer, not throw.
      for (const m of [model, undefined]) {
        const check = await checkFraudProof(proofAgainst(job, receipt, opening, kind), m);
        assert.equal(typeof check.reason, "string", `${kind} / ${tokenBytes}`);
      }
    }
  }
});
