/**
 * A stream conviction's cut prices the prompt as the receipt the stream never became would have
 * (review s78 vprompt F5): `rewardOf` and `lockOf` of a text receipt over the streamed tokens and
 * the job's prompt tokens, counted by the replay that convicted (`StreamCheckResult.promptTokens`,
 * the model's tokenizer over the input's text and the prompt). Who pays: the convicted worker,
 * from its whole stake; the checker earns its share of the cut, the rest is burned.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { roundCredits } from "../../proof/ledger.ts";
import { checkStreamClaim } from "../../proof/stream_check.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId } from "../../protocols/job.ts";
import { type StreamClaim, StreamSigner } from "../../protocols/stream_commitment.ts";
import { jobIdOf, withLedgerDir } from "./_ledger_fixtures.ts";
import { loadFixture } from "./_models.ts";
import { honestTokens, sampledJob } from "./_stream_fixtures.ts";
import { MODEL, openPriced, PRICE } from "./_stream_ledger.ts";

const M = DEFAULT_ECONOMICS.slashMultiplier;
const SHARE = DEFAULT_ECONOMICS.validatorRewardShare;
/** The review's example: one streamed token of a job whose prompt is 200 tokens. */
const PROMPT_TOKENS = 200;
const STAKE = 10_000;

Deno.test("a stream conviction cuts the lock of the receipt the stream would have been, prompt tokens included: the worker's stake pays m × (output + prompt at its share), the checker earns its share of that", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const liar = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(liar.publicKey, STAKE);
      const owner = ledger.account(me.publicKey);
      const cut = await ledger.settleStreamFraud({
        jobId: jobIdOf(1),
        worker: liar.publicKey,
        model: MODEL,
        tokens: 1,
        promptTokens: PROMPT_TOKENS,
        claimHash: "c1".repeat(32),
      });
      // What a receipt of 1 output token and 200 prompt tokens earns at PRICE, × m.
      const reward = roundCredits(
        PRICE + PROMPT_TOKENS * PRICE * DEFAULT_ECONOMICS.promptTokenShare,
      );
      const lock = roundCredits(reward * M);
      assert.ok(lock > M * PRICE, "the prompt added nothing to the cut");
      assert.equal(cut, lock);
      assert.deepEqual(ledger.account(liar.publicKey), {
        balance: 0,
        stake: STAKE - lock,
        locked: 0,
      });
      assert.deepEqual(ledger.account(me.publicKey), {
        ...owner,
        balance: roundCredits(owner.balance + lock * SHARE),
      });
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a stream settlement that gives no prompt count cuts the output alone, and a negative count is refused as a caller's bug", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const liar = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(liar.publicKey, STAKE);
      const base = { worker: liar.publicKey, model: MODEL, tokens: 3, claimHash: "c1".repeat(32) };
      await assert.rejects(
        ledger.settleStreamFraud({ ...base, jobId: jobIdOf(2), promptTokens: -1 }),
        RangeError,
      );
      assert.equal(await ledger.settleStreamFraud({ ...base, jobId: jobIdOf(1) }), M * 3 * PRICE);
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a confirmed stream check carries the job's prompt tokens as the model's tokenizer counts them, what the conviction's cut prices", async () => {
  const f = await loadFixture();
  const worker = Identity.generate();
  const job = sampledJob(f.honest, "prompt-cut");
  const tokenIds = (await honestTokens(f.honest, job)).with(2, f.honest.info.vocabSize + 7);
  const signed = new StreamSigner(worker, jobId(job)).sign(tokenIds, false);
  const claim: StreamClaim = { job, worker: worker.publicKey, tokenIds, sig: signed, at: 2 };
  const result = await checkStreamClaim(claim, f.honestThreads);
  assert.equal(result.confirmed, true);
  assert.equal(result.promptTokens, f.honest.tokenizer.encode(job.prompt).length);
});
