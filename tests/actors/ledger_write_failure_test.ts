/**
 * A ledger that stops taking writes (a disk error, an immutable or read-only file: anything that is
 * not the ledger's refusal of what it was handed) is no longer silent (review s70, node operators
 * #2): the receipt it could not record is answered `ledger_write_failed`, counted refused and not
 * recorded, the log says it once (`error: ledger: …`) however many receipts follow, the validator's
 * stats carry the fault and `/healthz` shows it as the `ledger_write_failed` condition (degraded)
 * until a write succeeds again (one log line says so). A ledger refusal stays a refusal: no
 * condition, no error line. A peer's verdict whose write fails raises the same condition (it was
 * swallowed as a refused verdict). A ledger poisoned by a failed write reopens itself from disk on
 * a backoff timer (`actors/_ledger_reopen.ts`): one timer armed at a time whatever the traffic, its
 * delay doubling while the disk stays full, and once it is freed the next receipt is recorded and
 * the condition clears, with no restart and no crash. No clock is raced: the ledger's clock is the
 * test's, the failing write is held until the test lets it fail, and the reopen's timers fire only
 * when the test fires them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ledgerConditions } from "../../actors/ledger_conditions.ts";
import type {
  ReceiptHandled,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { healthRoutes } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import { holdNextAppend } from "./_ledger_write_fault.ts";
import { fillDiskUnder } from "../proof/_ledger_disk_fault.ts";
import { LedgerLog } from "../../proof/ledger_log.ts";
import { ReceiptFiles } from "../../actors/_receipt_files.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { LEDGER_REOPEN_FIRST_MS } from "../../actors/_ledger_reopen.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 10_000;
const REFUSAL = "ledger_write_failed";

/** A port that serves nothing and says so at once: `/healthz` then reflects the conditions only. */
const IDLE_PORT = {
  stats: () => Promise.resolve(emptyInferenceStats()),
  models: () => Promise.resolve([]),
} as unknown as InferencePort;

/** `/healthz` of a node whose only other condition source is `validator`'s ledger. */
function healthz(validator: () => ActorRef<ValidatorMessage>) {
  const app = new Hono().route(
    "/",
    healthRoutes(
      new InferenceGateway({ inference: IDLE_PORT }),
      new MetricsRegistry(),
      undefined,
      () => ledgerConditions(validator()),
    ),
  );
  return async () => {
    const response = await app.request("/healthz");
    assert.equal(response.status, 200);
    return await response.json() as {
      status: string;
      conditions?: { component: string; status: string; code: string; message: string }[];
    };
  };
}

/**
 * A validator (coin 0: nothing is challenged) on a fresh ledger, with a staked worker; its ledger
 * reopen's timers fire only when the test says so (`timers`), and its crashes are counted.
 */
async function setUp(ledgerDir: string, name: string) {
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const logs: string[] = [];
  const system = new ActorSystem({ name });
  const timers = new FakeTimers();
  const counts = { crashes: 0 };
  system.events.subscribe((event) => {
    if (event.name === "node/validator" && event.type === "crashed") counts.crashes++;
  });
  const spawn = () =>
    spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      log: (line) => logs.push(line),
      ledgerReopenTimers: timers,
    });
  let validator = await spawn();
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
  const ledger = ledgerReads(() => validator, clock);
  const receiptOf = async (nonce: string) => {
    const job = textJob(requester, nonce);
    const { receipt } = await proveOn(job, worker);
    return { receipt, job, id: receiptId(receipt) };
  };
  return {
    me,
    worker,
    requester,
    logs,
    timers,
    counts,
    clock,
    ledger,
    receiptOf,
    validator: () => validator,
    /** A peer announces `nonce`'s receipt (the requester's assignment with it). */
    announce: async (r: Awaited<ReturnType<typeof receiptOf>>) =>
      await announceAssigned(validator, r.receipt, r.job, requester),
    /** The node restarts: the validator stops, and a new one opens the ledger from disk. */
    async restart() {
      await system.stop("node/validator");
      validator = await spawn();
    },
    errors: () => logs.filter((line) => line.startsWith("error: ledger:")),
    close: () => system.shutdown(),
  };
}

Deno.test("a ledger whose log refuses a write: each receipt is answered ledger_write_failed, refused and not recorded, one error line, /healthz degraded with ledger_write_failed; reopened on a sound disk, the receipts are recorded and paid and the condition is gone", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "ledger-write-fails");
    const health = healthz(run.validator);
    try {
      // A ledger refusal is not a fault: an unstaked worker's receipt, refused, raises nothing.
      const stranger = Identity.generate();
      const job = textJob(run.requester, "unstaked");
      const { receipt } = await proveOn(job, stranger);
      const refused = await announceAssigned(run.validator(), receipt, job, run.requester);
      assert.equal(refused.refusal, "insufficient_stake");
      assert.equal((await health()).status, "ok");
      assert.deepEqual(run.errors(), []);

      // The log's next append fails with an I/O error (nothing written).
      const write = holdNextAppend(ledgerDir);
      const receipts = await Promise.all(["a", "b", "c"].map(run.receiptOf));
      let handled: ReceiptHandled;
      try {
        const first = run.announce(receipts[0]);
        await write.called;
        write.fail();
        handled = await first;
      } finally {
        write.restore();
      }
      // Failed before the fix: answered `EIO` as if the ledger had refused it, and nothing said.
      assert.equal(handled.recorded, false);
      assert.equal(handled.refusal, REFUSAL);
      // The ledger takes no write after a failed one (it may hold a torn entry) until it is
      // reopened: the receipts that follow fail too, and the log still says it once.
      for (const r of receipts.slice(1)) {
        const next = await run.announce(r);
        assert.equal(next.recorded, false);
        assert.equal(next.refusal, REFUSAL);
      }
      const errors = run.errors();
      assert.equal(errors.length, 1, run.logs.join("\n"));
      assert.match(errors[0], /Input\/output error/);
      assert.ok(errors[0].includes(ledgerDir), errors[0]);
      for (const r of receipts) assert.equal(await run.ledger.record(r.id), undefined);
      const stats = await run.ledger.stats();
      assert.equal(stats.received, 4);
      assert.equal(stats.refused, 4);
      assert.equal(stats.copies, 0);
      assert.equal(stats.ledgerWriteFault?.cause, "EIO");
      assert.equal(stats.ledgerWriteFault?.failures, 3);
      const degraded = await health();
      assert.equal(degraded.status, "degraded");
      assert.equal(degraded.conditions?.length, 1);
      const [condition] = degraded.conditions!;
      assert.equal(condition.component, "ledger");
      assert.equal(condition.status, "degraded");
      assert.equal(condition.code, REFUSAL);
      assert.ok(condition.message.includes(ledgerDir), condition.message);
      assert.match(condition.message, /Input\/output error/);

      // The node restarts on a sound disk: the ledger is reopened, the receipts are recorded
      // when they come again, and paid when their window closes.
      await run.restart();
      for (const r of receipts) assert.equal((await run.announce(r)).recorded, true);
      assert.equal((await health()).status, "ok");
      assert.equal((await run.ledger.stats()).ledgerWriteFault, undefined);
      await run.ledger.closeWindow();
      const paid = receipts.reduce(
        (sum, r) => sum + r.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
        0,
      );
      assert.equal((await run.ledger.account(run.worker.publicKey)).balance, paid);
      assert.equal(run.errors().length, 1);
    } finally {
      await run.close();
    }
  }));

Deno.test("a receipt's ledger write that fails without stopping the ledger raises ledger_write_failed, and the next receipt's good write clears it (one line each way)", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "ledger-write-recovers");
    const health = healthz(run.validator);
    const original = Ledger.prototype.recordReceipt;
    let armed = 1;
    Ledger.prototype.recordReceipt = function (this: Ledger, ...args) {
      if (armed-- > 0) {
        const error = new Error("No space left on device (os error 28) (simulated)");
        return Promise.reject(Object.assign(error, { code: "ENOSPC" }));
      }
      return original.apply(this, args);
    };
    try {
      const [lost, kept] = await Promise.all(["lost", "kept"].map(run.receiptOf));
      const failed = await run.announce(lost);
      assert.equal(failed.recorded, false);
      assert.equal(failed.refusal, REFUSAL);
      assert.equal((await health()).conditions?.[0]?.code, REFUSAL);
      assert.equal(run.errors().length, 1);
      assert.match(run.errors()[0], /No space left on device/);

      const recorded = await run.announce(kept);
      assert.equal(recorded.recorded, true);
      assert.equal((await health()).status, "ok");
      const stats: ValidatorStats = await run.ledger.stats();
      assert.equal(stats.ledgerWriteFault, undefined);
      assert.equal(stats.refused, 1);
      assert.equal(run.errors().length, 1);
      assert.equal(run.logs.filter((line) => /^ledger: .*again/.test(line)).length, 1);
      // The ledger outcome: the receipt written is paid, the one lost is not.
      await run.ledger.closeWindow();
      const reward = kept.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      assert.equal((await run.ledger.account(run.worker.publicKey)).balance, reward);
      assert.equal(await run.ledger.record(lost.id), undefined);
    } finally {
      Ledger.prototype.recordReceipt = original;
      await run.close();
    }
  }));

Deno.test("a staked peer's verdict whose ledger write fails raises ledger_write_failed (it was counted a refused verdict, silently); a refused verdict raises nothing", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "verdict-write-fails");
    const health = healthz(run.validator);
    try {
      const peer = Identity.generate();
      await run.validator().ask({ type: "deposit", key: peer.publicKey, amount: STAKE });
      const r = await run.receiptOf("judged");
      assert.equal((await run.announce(r)).recorded, true);
      const verdict = (issuedAt: number, by = peer) =>
        signVerdict({
          v: 1,
          subject: "inference",
          subjectId: r.id,
          target: r.receipt.worker,
          outcome: "valid",
          reason: "ok",
          issuedAt,
        }, by);
      const origin = toHex(peer.publicKey);
      // A forged verdict (signed by another key than the one it names) is refused: no condition.
      const forged = { ...verdict(START), validator: peer.publicKey };
      Object.assign(forged, { sig: verdict(START, Identity.generate()).sig });
      await run.validator().ask({ type: "verdict", verdict: forged, origin });
      assert.equal((await health()).status, "ok");

      const write = holdNextAppend(ledgerDir);
      try {
        const answer = run.validator().ask({ type: "verdict", verdict: verdict(START), origin });
        await write.called;
        write.fail();
        assert.equal(await answer, undefined);
      } finally {
        write.restore();
      }
      const degraded = await health();
      assert.equal(degraded.status, "degraded");
      assert.equal(degraded.conditions?.[0]?.code, REFUSAL);
      assert.equal(run.errors().length, 1, run.logs.join("\n"));
    } finally {
      await run.close();
    }
  }));

/** The ledger's torn entries set aside by its opens (`ledger.log.torn-<time>`). */
async function tornFiles(ledgerDir: string): Promise<string[]> {
  const names = (await Array.fromAsync(Deno.readDir(ledgerDir))).map((entry) => entry.name);
  return names.filter((name) => name.startsWith("ledger.log.torn-"));
}

Deno.test("a ledger poisoned by a full disk reopens itself from disk once the disk is freed, without a restart: while full, receipts are refused ledger_write_failed and one reopen is armed per backoff delay (1 s, 2 s, 4 s) however many receipts come, each torn entry is cut, one error line, no crash; freed, the next timer reopens it, the next receipt is recorded and the condition clears in one line, and the receipts refused meanwhile are recorded once when they come again", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "ledger-reopens");
    const health = healthz(run.validator);
    const reopens = async () => (await run.ledger.stats()).ledgerWriteFault?.reopens;
    /** The delay of the reopen timer armed, checking that exactly one is. */
    const armed = () => {
      const delays = [...run.timers.armed.values()].map((timer) => timer.ms);
      assert.equal(delays.length, 1, `reopen timers armed: ${delays.length}`);
      return delays[0];
    };
    /** The armed timer fires; resolves once the validator has taken its `n`th reopen. */
    const fire = async (n: number) => {
      run.timers.fireAll();
      await eventually(async () => (await reopens()) === n, `reopen ${n}`);
    };
    const receipts = await Promise.all(["a", "b", "c", "d", "e"].map(run.receiptOf));
    let undo = fillDiskUnder(ledgerDir);
    try {
      // Full: every receipt refused; one timer armed, at the first delay, however many come.
      for (const r of receipts.slice(0, 3)) {
        const handled = await run.announce(r);
        assert.equal(handled.recorded, false);
        assert.equal(handled.refusal, REFUSAL);
      }
      // Failed before the fix: nothing was ever armed, the ledger stayed poisoned until a restart.
      assert.equal(armed(), LEDGER_REOPEN_FIRST_MS);
      assert.equal(await reopens(), 0);
      assert.equal((await health()).conditions?.[0]?.code, REFUSAL);
      // Each reopen cuts the torn entry; the disk still full, the next write fails again and the
      // next timer is twice as far. Reopened, nothing is armed until a write fails.
      await fire(1);
      assert.equal(run.timers.armed.size, 0);
      assert.equal((await run.announce(receipts[3])).refusal, REFUSAL);
      assert.equal((await run.announce(receipts[3])).refusal, REFUSAL);
      assert.equal(armed(), 2 * LEDGER_REOPEN_FIRST_MS);
      await fire(2);
      assert.equal((await run.announce(receipts[3])).refusal, REFUSAL);
      assert.equal(armed(), 4 * LEDGER_REOPEN_FIRST_MS);
      assert.equal((await tornFiles(ledgerDir)).length, 2);
      assert.equal((await health()).conditions?.[0]?.code, REFUSAL);
      assert.equal(run.errors().length, 1, run.logs.join("\n"));
      assert.match(run.errors()[0], /No space left on device/);
      assert.equal(run.counts.crashes, 0);

      // Freed: the next timer reopens the ledger (the last torn entry cut), and the next receipt
      // is recorded; the condition clears with one line.
      undo();
      undo = () => {};
      await fire(3);
      assert.equal(run.timers.armed.size, 0);
      assert.equal((await tornFiles(ledgerDir)).length, 3);
      assert.equal((await run.announce(receipts[4])).recorded, true);
      assert.equal((await health()).status, "ok");
      assert.equal((await run.ledger.stats()).ledgerWriteFault, undefined);
      const lines = run.logs.filter((line) => /^ledger: .*succeed again/.test(line));
      assert.equal(lines.length, 1, run.logs.join("\n"));
      assert.match(lines[0], /3 reopens/);
      // Refused while full, nothing of them kept: each recorded once when it comes again (a
      // second copy is a copy, not recorded again), and paid once.
      for (const r of receipts.slice(0, 4)) assert.equal((await run.announce(r)).recorded, true);
      const copy = await run.announce(receipts[0]);
      assert.equal(copy.recorded, true);
      assert.equal((await run.ledger.stats()).copies, 1);
      await run.ledger.closeWindow();
      const paid = receipts.reduce(
        (sum, r) => sum + r.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
        0,
      );
      assert.equal((await run.ledger.account(run.worker.publicKey)).balance, paid);
      assert.equal(run.errors().length, 1);
      assert.equal(run.counts.crashes, 0);
      // What the reopened ledger wrote is on disk whole: the node's restart reads the same.
      await run.restart();
      assert.equal((await run.ledger.account(run.worker.publicKey)).balance, paid);
    } finally {
      undo();
      await run.close();
    }
  }));

Deno.test("a poisoned ledger's due receipts wait for its reopen: the finalize tick neither crashes the validator nor pays them; reopened, they are paid", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "finalize-poisoned");
    try {
      const [due, lost] = await Promise.all(["due", "lost"].map(run.receiptOf));
      assert.equal((await run.announce(due)).recorded, true);
      const undo = fillDiskUnder(ledgerDir);
      try {
        assert.equal((await run.announce(lost)).refusal, REFUSAL);
      } finally {
        undo();
      }
      run.clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      // Failed before the fix: `ledger_poisoned` crashed the validator at every tick.
      assert.deepEqual(await run.validator().ask({ type: "finalize" }), []);
      assert.equal(run.counts.crashes, 0);
      assert.equal((await run.ledger.record(due.id))?.status, "pending");
      run.timers.fireAll();
      await eventually(
        async () => (await run.ledger.stats()).ledgerWriteFault?.reopens === 1,
        "the reopen",
      );
      assert.deepEqual(await run.validator().ask({ type: "finalize" }), [due.id]);
      const reward = due.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      assert.equal((await run.ledger.account(run.worker.publicKey)).balance, reward);
      assert.equal(await run.ledger.record(lost.id), undefined);
      assert.equal(run.counts.crashes, 0);
    } finally {
      await run.close();
    }
  }));

Deno.test("a reopen that fails (the disk still full) is counted as a failure of the same cause, logs nothing more and arms the next at twice the delay; the validator does not crash, and the next reopen takes writes", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "reopen-fails");
    const open = LedgerLog.open;
    const stats = () => run.ledger.stats();
    try {
      const [lost, kept] = await Promise.all(["lost", "kept"].map(run.receiptOf));
      const undo = fillDiskUnder(ledgerDir);
      try {
        assert.equal((await run.announce(lost)).refusal, REFUSAL);
      } finally {
        undo();
      }
      LedgerLog.open = () => {
        const error = new Error("No space left on device (os error 28) (simulated)");
        return Promise.reject(Object.assign(error, { code: "ENOSPC" }));
      };
      run.timers.fireAll();
      await eventually(async () => (await stats()).ledgerWriteFault?.reopens === 1, "the reopen");
      LedgerLog.open = open;
      assert.deepEqual([...run.timers.armed.values()].map((t) => t.ms), [
        2 * LEDGER_REOPEN_FIRST_MS,
      ]);
      assert.equal((await stats()).ledgerWriteFault?.failures, 2);
      assert.equal((await run.announce(kept)).refusal, REFUSAL, "still poisoned");
      assert.equal(run.errors().length, 1, run.logs.join("\n"));
      assert.equal(run.counts.crashes, 0);
      run.timers.fireAll();
      await eventually(async () => (await stats()).ledgerWriteFault?.reopens === 2, "reopen 2");
      assert.equal((await run.announce(kept)).recorded, true);
      assert.equal((await stats()).ledgerWriteFault, undefined);
      assert.equal(run.timers.armed.size, 0);
    } finally {
      LedgerLog.open = open;
      await run.close();
    }
  }));

Deno.test("a full disk that refuses the receipt files kept beside the ledger too: receipts are refused ledger_write_failed (one error line, /healthz degraded) and the validator does not crash; freed, the next receipt is recorded and the condition clears", () =>
  inLedgerDir(async (ledgerDir) => {
    const run = await setUp(ledgerDir, "receipt-files-full");
    const health = healthz(run.validator);
    const save = ReceiptFiles.prototype.save;
    try {
      const [lost, again, kept] = await Promise.all(["lost", "again", "kept"].map(run.receiptOf));
      ReceiptFiles.prototype.save = () => {
        const error = new Error("No space left on device (os error 28) (simulated)");
        return Promise.reject(Object.assign(error, { code: "ENOSPC" }));
      };
      // Failed before the fix: the save's error crashed the validator at every receipt.
      for (const r of [lost, again]) {
        const handled = await run.announce(r);
        assert.equal(handled.recorded, false);
        assert.equal(handled.refusal, REFUSAL);
      }
      assert.equal(run.counts.crashes, 0);
      assert.equal((await health()).conditions?.[0]?.code, REFUSAL);
      assert.equal(run.errors().length, 1, run.logs.join("\n"));
      assert.match(run.errors()[0], /No space left on device/);
      assert.equal(await run.ledger.record(lost.id), undefined);
      ReceiptFiles.prototype.save = save;
      assert.equal((await run.announce(kept)).recorded, true);
      assert.equal((await health()).status, "ok");
      assert.equal((await run.announce(lost)).recorded, true, "recorded when it comes again");
      assert.equal(run.counts.crashes, 0);
    } finally {
      ReceiptFiles.prototype.save = save;
      await run.close();
    }
  }));
