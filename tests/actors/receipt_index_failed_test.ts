/**
 * A receipt whose ledger entry reached the log before the history index failed (a full disk
 * between the two writes, `ledger_index_failed`): it is recorded — in the log, in the ledger's
 * state, counted after the reopen — so the intake answers it recorded, not `ledger_write_failed`
 * (review s72: its sender was told "not recorded" of a receipt that counts). The failure is the
 * ledger's condition all the same (on the stats, one error line) and the reopen runs; after it the
 * receipt is paid once. The full disk is injected into SQLite's commit (`_sqlite_faults.ts`); the
 * reopen's timer fires only when the test fires it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
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

Deno.test("a receipt whose entry reached the log before the ledger's index failed is answered recorded (no refusal, not counted refused), raises the ledger_write_failed condition and arms the reopen; reopened, it is recorded once and paid once", () =>
  inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
    const logs: string[] = [];
    const timers = new FakeTimers();
    const system = new ActorSystem({ name: "receipt-index-failed" });
    try {
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        log: (line) => logs.push(line),
        ledgerReopenTimers: timers,
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      const ledger = ledgerReads(() => validator, clock);
      const job = textJob(requester, "index-fails");
      const { receipt } = await proveOn(job, worker);
      const id = receiptId(receipt);

      const undo = fullDiskOnCommit();
      let handled;
      try {
        handled = await announceAssigned(validator, receipt, job, requester);
      } finally {
        undo();
      }
      assert.equal(handled.recorded, true, `answered ${handled.refusal}`);
      assert.equal(handled.refusal, undefined);
      const stats = await ledger.stats();
      assert.equal(stats.refused, 0, "a recorded receipt counted refused");
      assert.equal(stats.ledgerWriteFault?.cause, "disk_full", "no ledger condition raised");
      assert.equal(logs.filter((line) => line.startsWith("error: ledger:")).length, 1);
      assert.equal(timers.armed.size, 1, "no reopen armed");

      timers.fireAll();
      await ledger.stats(); // the reopen runs in the actor's turn, before this answer
      assert.equal((await ledger.record(id))?.status, "pending");
      await ledger.closeWindow();
      const reward = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      assert.equal(
        (await ledger.account(worker.publicKey)).balance,
        reward,
        "paid other than once",
      );
    } finally {
      await system.shutdown();
    }
  }));

Deno.test("a cheat's receipt the coin drew, whose entry reached the log before the index failed: answered recorded and not challenged on the poisoned ledger (the validator does not crash); the draw kept is challenged at the next start and the cheat slashed", () =>
  inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
    const job = textJob(requester, "index-fails-drawn");
    const { receipt, proof } = await proveOn(job, worker, f.otherSeed);
    const id = receiptId(receipt);
    const served = signServedProof(id, proof, worker);
    const crashes = { count: 0 };
    const system = new ActorSystem({ name: "receipt-index-failed-drawn" });
    system.events.subscribe((event) => {
      if (event.name === "node/validator" && event.type === "crashed") crashes.count++;
    });
    const spawn = () =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: { proof: () => Promise.resolve<ServedProof | undefined>(served) },
        ledgerReopenTimers: new FakeTimers(),
      });
    try {
      let validator = await spawn();
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      const undo = fullDiskOnCommit();
      let handled;
      try {
        handled = await announceAssigned(validator, receipt, job, requester);
      } finally {
        undo();
      }
      assert.deepEqual([handled.recorded, handled.challenged], [true, false]);
      assert.equal((await ledgerReads(() => validator, clock).stats()).challenged, 0);
      assert.equal(crashes.count, 0, "the validator crashed");

      await system.stop("node/validator");
      validator = await spawn();
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      await reads.closeWindow();
      assert.equal((await reads.record(id))?.status, "fraud", "the draw kept was not challenged");
      assert.equal((await reads.account(worker.publicKey)).balance, 0, "the cheat was paid");
    } finally {
      await system.shutdown();
    }
  }));
