/**
 * Review s62: what a validator keeps of the receipts that reach it before their worker's pledge
 * (`ValidatorMemory.awaitStake`, `actors/_validator_memory.ts`): at most 16 per worker and 256
 * workers. It dropped the rest unsaid, and evicted the oldest worker's past the workers, each
 * answered `insufficient_stake` as if kept: their senders never sent them again, and the honest
 * worker went unpaid here for them. Now what is not kept is answered
 * `INSUFFICIENT_STAKE_NOT_KEPT` (its sender sends it again after the pledge: the network half is
 * `tests/network/review_s62_early_receipts_test.ts`), and nothing kept is evicted. Asserted on the
 * ledger: who is paid for what.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  MAX_AWAITING_STAKE_PER_WORKER,
  MAX_AWAITING_STAKE_WORKERS,
} from "../../actors/_validator_memory.ts";
import {
  INSUFFICIENT_STAKE_NOT_KEPT,
  type ReceiptHandled,
  type ValidatorMessage,
} from "../../actors/validator_messages.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

/** A peer that passes receipts on (hex key). */
const PEER = "ab".repeat(32);

/** `worker`'s receipt of a job `requester` assigned it, and the job. */
interface Work {
  job: TextJob;
  receipt: Receipt;
}

async function work(requester: Identity, worker: Identity, tag: string): Promise<Work> {
  const job = textJob(requester, tag);
  return { job, receipt: (await proveOn(job, worker)).receipt };
}

/** `requester`'s assigned receipt `w`, as a peer announces it. */
function announce(
  validator: ActorRef<ValidatorMessage>,
  requester: Identity,
  { job, receipt }: Work,
): Promise<ReceiptHandled> {
  return validator.ask<ReceiptHandled>({
    type: "receipt",
    receipt,
    job,
    assignment: signAssignment({ job, worker: receipt.worker, issuedAt: 0 }, requester),
    origin: PEER,
  });
}

/** Run `test` on a validator that challenges nothing, its ledger on a clock at `START`. */
async function withValidator(
  name: string,
  test: (
    validator: ActorRef<ValidatorMessage>,
    clock: { t: number },
  ) => Promise<void>,
): Promise<void> {
  await inLedgerDir(async (ledgerDir) => {
    const system = new ActorSystem({ name });
    const clock = { t: START };
    try {
      const validator = await spawnValidator(system, {
        identity: Identity.generate(),
        ledgerDir,
        models: HONEST_MODELS,
        challengeProbability: 0,
        clock,
      });
      await test(validator, clock);
    } finally {
      await system.shutdown();
    }
  });
}

Deno.test("review s62: 20 receipts of one worker before its pledge: 16 kept (a copy of one takes no room), 4 refused as not kept; once the pledge comes and the 4 are sent again, the worker is paid for all 20", () =>
  withValidator("s62-awaiting-per-worker", async (validator, clock) => {
    const [requester, worker] = [Identity.generate(), Identity.generate()];
    const jobs = MAX_AWAITING_STAKE_PER_WORKER + 4;
    const works: Work[] = [];
    for (let n = 0; n < jobs; n++) works.push(await work(requester, worker, `s62-per-${n}`));
    const refusals = [];
    for (const w of works) refusals.push((await announce(validator, requester, w)).refusal);
    assert.deepEqual(refusals, [
      ...Array(MAX_AWAITING_STAKE_PER_WORKER).fill("insufficient_stake"),
      ...Array(4).fill(INSUFFICIENT_STAKE_NOT_KEPT),
    ], "what is not kept is said");
    // A copy of a kept one, passed on by another peer, takes no room: kept already.
    assert.equal((await announce(validator, requester, works[0])).refusal, "insufficient_stake");

    assert.equal(
      await validator.ask({ type: "pledge", pledge: signStakePledge(worker, 1_000_000, 1) }),
      true,
    );
    const reads = ledgerReads(() => validator, clock);
    const ids = works.map(({ receipt }) => receiptId(receipt));
    await eventually(
      async () => (await reads.record(ids[MAX_AWAITING_STAKE_PER_WORKER - 1])) !== undefined,
      "the kept receipts to be taken again once the pledge came",
    );
    // What its sender does on `INSUFFICIENT_STAKE_NOT_KEPT`, after the pledge.
    for (const w of works.slice(MAX_AWAITING_STAKE_PER_WORKER)) {
      assert.equal((await announce(validator, requester, w)).recorded, true);
    }
    await reads.closeWindow();
    const tokens = works.reduce((sum, { receipt }) => sum + receipt.tokenCount, 0);
    assert.equal(
      (await reads.account(worker.publicKey)).balance,
      tokens * DEFAULT_ECONOMICS.defaultTokenPrice,
      "the worker paid for every job it served",
    );
  }));

Deno.test("review s62: receipts of as many fresh keys as a validator keeps waiting do not evict an honest worker's kept receipt: the next key's is refused as not kept, and the honest worker is paid once its pledge comes", () =>
  withValidator("s62-awaiting-workers", async (validator, clock) => {
    const [requester, honest] = [Identity.generate(), Identity.generate()];
    const early = await work(requester, honest, "s62-honest");
    assert.equal((await announce(validator, requester, early)).refusal, "insufficient_stake");
    // A flood of fresh keys that never pledge, one receipt each, fills the workers kept.
    for (let n = 1; n < MAX_AWAITING_STAKE_WORKERS; n++) {
      const flood = await work(requester, Identity.generate(), `s62-flood-${n}`);
      assert.equal((await announce(validator, requester, flood)).refusal, "insufficient_stake");
    }
    const next = await work(requester, Identity.generate(), "s62-flood-past");
    assert.equal(
      (await announce(validator, requester, next)).refusal,
      INSUFFICIENT_STAKE_NOT_KEPT,
      "past the workers kept, a new key's receipt is not kept, and the refusal says so",
    );

    await validator.ask({ type: "pledge", pledge: signStakePledge(honest, 1_000_000, 1) });
    const reads = ledgerReads(() => validator, clock);
    await eventually(
      async () => (await reads.record(receiptId(early.receipt))) !== undefined,
      "the honest worker's kept receipt to be taken again once its pledge came",
    ).catch(() => {}); // evicted: the ledger tells below
    await reads.closeWindow();
    assert.equal(
      (await reads.account(honest.publicKey)).balance,
      early.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
      "the honest worker's kept receipt was evicted by a flood of fresh keys",
    );
  }));
