/**
 * The intake's prompt-token re-count (`_receipt_intake.ts`) when it cannot count, and what it
 * counts for (review s78 vfinal F2, F3), judged by the ledger after the challenge window:
 * - a validator whose tokenizer read failed (its counter waits out a back-off) challenges a
 *   receipt's count whatever the coin, rather than pay it as signed: an inflated count is slashed,
 *   an honest one paid on its `valid` verdict;
 * - the count is re-counted only for a receipt the ledger would take: an unstaked stranger's is
 *   refused without its prompt being tokenized;
 * - a count at or past the model's window is a violation on its face: challenged and slashed
 *   without tokenizing the prompt.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled, ValidatorModelSource } from "../../actors/validator_messages.ts";
import { HeldModelPromptCounter } from "../../network/_held_model_prompt_counter.ts";
import type { RegisteredModel } from "../../inference/model_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { proveJob } from "../../proof/prover.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import {
  announceAssigned,
  f,
  ledgerReads,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

/** How long a challenge may take to settle: a teacher-forced pass on a shared CPU, with room. */
const SETTLE_TIMEOUT_MS = 20_000;
/** The review's inflated claim, on an 11-token prompt. */
const CLAIM = 100_000;
/** A stake that covers any lock here. */
const STAKE = 1_000_000;

/**
 * The node's wiring (`node/_node_children.ts`): the intake counts with a `HeldModelPromptCounter`
 * whose tokenizer read always fails, on a clock that never moves (so its back-off never ends);
 * challenges `get` the honest model.
 */
function unreadableTokenizer(): ValidatorModelSource {
  const registered = {
    cid: f.honest.info.cid,
    name: "honest",
    kind: "text",
    path: "/nowhere",
    sizeBytes: 1,
    contextLength: f.honest.info.contextLength,
    loaded: false,
  } satisfies RegisteredModel;
  const counter = new HeldModelPromptCounter(
    { info: (cid) => cid === registered.cid ? registered : undefined, list: () => [registered] },
    () => Promise.reject(new Error("EMFILE: too many open files")),
    { now: () => 0 },
  );
  return {
    get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
    promptCounting: (cid) => counter.promptCounting(cid),
  };
}

/** The honest model's tokenizer given to the intake, counting its `encode` calls. */
function countingTokenizer(): { models: ValidatorModelSource; encodes: () => number } {
  let encodes = 0;
  const tokenizer = {
    encode: (text: string) => {
      encodes++;
      return f.honest.tokenizer.encode(text);
    },
  };
  return {
    encodes: () => encodes,
    models: {
      get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
      promptCounting: (cid) =>
        Promise.resolve(
          cid === f.honest.info.cid
            ? { info: { contextLength: f.honest.info.contextLength }, tokenizer }
            : undefined,
        ),
    },
  };
}

/** A validator whose coin never draws takes one receipt signing `count(truth)`; its ledger after. */
async function recordCount(
  nonce: string,
  count: (truth: number) => number,
  models: ValidatorModelSource,
  stake: number,
) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: `intake-order-${nonce}` });
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, nonce);
  const ids = f.honest.tokenizer.encode(job.prompt);
  const proved = await proveJob(job, f.honest.generate(ids, job.params), worker, {
    promptTokens: count(ids.length),
  });
  const id = receiptId(proved.receipt);
  try {
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models,
      source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
    });
    if (stake > 0) await validator.ask({ type: "deposit", key: worker.publicKey, amount: stake });
    const handled: ReceiptHandled = await announceAssigned(
      validator,
      proved.receipt,
      job,
      requester,
    );
    await handled.result?.catch(() => {}); // a challenge run at intake has settled
    const reads = ledgerReads(() => validator, clock);
    await eventually(
      async () => (await reads.record(id))?.status !== "challenged" || undefined,
      "the challenge to settle",
      { timeoutMs: SETTLE_TIMEOUT_MS },
    );
    await reads.closeWindow();
    return {
      handled,
      receipt: proved.receipt,
      record: await reads.record(id),
      account: await reads.account(worker.publicKey),
    };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a validator whose tokenizer cannot be read challenges a 100,000-token claim on an 11-token job though its coin draws nothing: slashed, never paid", async () => {
  const out = await recordCount("unread-cheat", () => CLAIM, unreadableTokenizer(), STAKE);
  assert.equal(out.handled.challenged, true, `paid unchecked: ${out.account.balance}`);
  assert.equal(out.record?.status, "fraud");
  assert.equal(out.account.balance, 0);
  assert.ok(out.account.stake < STAKE, "not slashed");
});

Deno.test("a validator whose tokenizer cannot be read challenges an honest prompt-token count too: paid in full on its valid verdict", async () => {
  const out = await recordCount("unread-honest", (truth) => truth, unreadableTokenizer(), STAKE);
  assert.equal(out.handled.challenged, true);
  assert.equal(out.record?.status, "final");
  assert.equal(out.account.balance, paidFor(out.receipt));
  assert.equal(out.account.stake, STAKE);
});

Deno.test("an unstaked stranger's receipt is refused on its stake before its prompt is tokenized: nothing recorded, the tokenizer never called", async () => {
  const counting = countingTokenizer();
  const out = await recordCount("stranger", (truth) => truth, counting.models, 0);
  assert.equal(out.handled.recorded, false);
  assert.match(out.handled.refusal ?? "", /insufficient_stake/);
  assert.equal(out.record, undefined);
  assert.deepEqual(out.account, { balance: 0, stake: 0, locked: 0 });
  assert.equal(counting.encodes(), 0, "the stranger's prompt was tokenized");
});

Deno.test("a staked worker's honest count is still re-counted at intake (the tokenizer called once) and paid", async () => {
  const counting = countingTokenizer();
  const out = await recordCount("staked-honest", (truth) => truth, counting.models, STAKE);
  assert.equal(counting.encodes(), 1);
  assert.equal(out.handled.challenged, false);
  assert.equal(out.record?.status, "final");
  assert.equal(out.account.balance, paidFor(out.receipt));
});

Deno.test("a count at the model's window is a violation on its face: challenged and slashed without tokenizing the prompt", async () => {
  const counting = countingTokenizer();
  const ctx = f.honest.info.contextLength;
  const out = await recordCount("at-window", () => ctx, counting.models, STAKE);
  assert.equal(counting.encodes(), 0, "the prompt was tokenized");
  assert.equal(out.handled.challenged, true);
  assert.equal(out.record?.status, "fraud");
  assert.equal(out.account.balance, 0);
});
