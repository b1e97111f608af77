/**
 * The receipts the challenge coin drew while a ledger write failed, and the ledger reopened in
 * place (`actors/_ledger_reopen.ts`), not by a restart (review s72, "Ledger edges"): a receipt
 * whose entry reached the log before the write failed (the history index's commit on a full disk,
 * or the log's fsync) is recorded, but its challenge was not opened on the poisoned ledger; it was
 * challenged only at the node's next start, so when its window closed first it was paid
 * unchallenged. Now the reopen that succeeds opens it: a cheat is slashed, honest work paid; one
 * whose window closed before the reopen is left unpaid (`unresolved`, `ledger_write_failed`), not
 * paid as if it passed. What is checked is the ledger: credited or not. Faults are injected
 * (`_sqlite_faults.ts`, the log's append); the ledger's clock is the test's and the reopen's timer
 * fires only when the test fires it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import type { Job } from "../../protocols/job.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { LedgerLog } from "../../proof/ledger_log.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { fullDiskOnCommit } from "../proof/_sqlite_faults.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 10_000;

/** A worker's receipt and what the validator needs to challenge it. */
interface Work {
  receipt: Receipt;
  job: Job;
  id: string;
  served: ServedProof;
}

/** `worker`'s receipt for a fresh job; `cheat`: run on other weights than the job's model. */
async function workOf(requester: Identity, worker: Identity, nonce: string, cheat: boolean) {
  const job = textJob(requester, nonce);
  const { receipt, proof } = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
  const id = receiptId(receipt);
  return { receipt, job, id, served: signServedProof(id, proof, worker) } satisfies Work;
}

/**
 * A validator that draws every receipt (coin 1), whose challenges are served `work`'s proof data,
 * on a fresh ledger with a staked worker; its reopen's timers fire when the test says so.
 */
async function setUp(ledgerDir: string, name: string, cheat: boolean) {
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const work = await workOf(requester, worker, name, cheat);
  const timers = new FakeTimers();
  const logs: string[] = [];
  const crashes = { count: 0 };
  const system = new ActorSystem({ name });
  system.events.subscribe((event) => {
    if (event.name === "node/validator" && event.type === "crashed") crashes.count++;
  });
  const validator: ActorRef<ValidatorMessage> = await spawnValidator(system, {
    identity: me,
    ledgerDir,
    clock,
    challengeProbability: 1,
    models: HONEST_MODELS,
    source: { proof: () => Promise.resolve<ServedProof | undefined>(work.served) },
    log: (line) => logs.push(line),
    ledgerReopenTimers: timers,
  });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
  const reads = ledgerReads(() => validator, clock);
  return {
    clock,
    worker,
    work,
    timers,
    logs,
    crashes,
    reads,
    validator,
    reward: work.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
    /** The requester announces the receipt with its assignment. */
    announce: () => announceAssigned(validator, work.receipt, work.job, requester),
    /** The receipt is announced while the index's commit fails as on a full disk. */
    async announceIndexFails() {
      const undo = fullDiskOnCommit();
      try {
        return await announceAssigned(validator, work.receipt, work.job, requester);
      } finally {
        undo();
      }
    },
    /** The reopen's timer fires; resolves once the validator has taken the reopen. */
    async reopen() {
      assert.equal(timers.armed.size, 1, "no reopen armed");
      timers.fireAll();
      // Counted as the reopen is taken; the reopen itself runs in that same turn.
      await eventually(
        async () => (await reads.stats()).ledgerWriteFault?.reopens === 1,
        "the reopen",
      );
    },
    close: () => system.shutdown(),
  };
}

Deno.test("a cheat's receipt the coin drew, whose entry reached the log before the index failed, is challenged when the ledger reopens in place (no restart): the cheat is slashed and never credited", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "reopen-draw-cheat", true);
    try {
      const handled = await run.announceIndexFails();
      assert.deepEqual([handled.recorded, handled.challenged], [true, false]);
      await run.reopen();
      // Failed before the fix: nothing opened the challenge until a restart (0 challenged), and
      // the window closing paid the cheat.
      await eventually(async () => (await run.reads.stats()).challenged === 1, "the challenge");
      await run.reads.drained();
      await run.reads.closeWindow();
      assert.equal((await run.reads.record(run.work.id))?.status, "fraud");
      assert.equal(
        (await run.reads.account(run.worker.publicKey)).balance,
        0,
        "the cheat was paid",
      );
      assert.equal(run.crashes.count, 0);
    } finally {
      await run.close();
    }
  }));

Deno.test("an honest receipt the coin drew, whose index write failed, is challenged at the in-place reopen and credited once when its window closes", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "reopen-draw-honest", false);
    try {
      assert.equal((await run.announceIndexFails()).recorded, true);
      await run.reopen();
      await eventually(async () => (await run.reads.stats()).challenged === 1, "the challenge");
      await run.reads.drained();
      await run.reads.closeWindow();
      assert.equal((await run.reads.record(run.work.id))?.status, "final");
      assert.equal((await run.reads.account(run.worker.publicKey)).balance, run.reward);
      assert.equal((await run.reads.stats()).verdicts.valid, 1);
    } finally {
      await run.close();
    }
  }));

Deno.test("a receipt the coin drew whose window closed before the in-place reopen is left unpaid (unresolved, ledger_write_failed), not credited as if it passed, and its worker is not slashed", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "reopen-draw-late", true);
    try {
      assert.equal((await run.announceIndexFails()).recorded, true);
      run.clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await run.reopen();
      // Failed before the fix: this finalize paid the drawn receipt, unchallenged.
      assert.deepEqual(await run.validator.ask({ type: "finalize" }), []);
      const record = await run.reads.record(run.work.id);
      assert.equal(record?.status, "unpaid");
      const account = await run.reads.account(run.worker.publicKey);
      assert.equal(account.balance, 0, "credited though never checked");
      assert.equal(account.stake, STAKE, "slashed for the validator's own gap");
      const stats = await run.reads.stats();
      assert.equal(stats.unresolved, 1);
      assert.equal(stats.challenged, 0);
      const said = run.logs.filter((line) => line.includes(run.work.id));
      assert.equal(said.length, 1, run.logs.join("\n"));
      assert.match(said[0], /left unpaid \(ledger_write_failed\)/);
    } finally {
      await run.close();
    }
  }));

Deno.test("a receipt the coin drew whose entry reached the log whole before the log's fsync failed (answered ledger_write_failed) is challenged at the in-place reopen, not paid unchallenged", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "reopen-draw-fsync", true);
    const append = LedgerLog.prototype.append;
    try {
      // The next append writes the whole frame, then fails as a failed fsync does (EIO).
      LedgerLog.prototype.append = async function (this: LedgerLog, frame: Uint8Array) {
        LedgerLog.prototype.append = append;
        await append.call(this, frame);
        const error = new Error("Input/output error (os error 5) (simulated fsync)");
        throw Object.assign(error, { code: "EIO" });
      };
      const handled = await run.announce();
      LedgerLog.prototype.append = append;
      assert.deepEqual([handled.recorded, handled.refusal], [false, "ledger_write_failed"]);
      await run.reopen();
      // The reopen found the entry in the log: recorded, and (failed before the fix: the draw's
      // record was removed with the failure, so it was paid unchallenged) challenged now.
      await eventually(async () => (await run.reads.stats()).challenged === 1, "the challenge");
      await run.reads.drained();
      await run.reads.closeWindow();
      assert.equal((await run.reads.record(run.work.id))?.status, "fraud");
      assert.equal(
        (await run.reads.account(run.worker.publicKey)).balance,
        0,
        "the cheat was paid",
      );
    } finally {
      LedgerLog.prototype.append = append;
      await run.close();
    }
  }));
