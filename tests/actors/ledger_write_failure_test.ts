/**
 * A ledger that stops taking writes (a disk error, an immutable or read-only file: anything that is
 * not the ledger's refusal of what it was handed) is no longer silent (review s70, node operators
 * #2): the receipt it could not record is answered `ledger_write_failed`, counted refused and not
 * recorded, the log says it once (`error: ledger: …`) however many receipts follow, the validator's
 * stats carry the fault and `/healthz` shows it as the `ledger_write_failed` condition (degraded)
 * until a write succeeds again (one log line says so). A ledger refusal stays a refusal: no
 * condition, no error line. A peer's verdict whose write fails raises the same condition (it was
 * swallowed as a refused verdict). No clock is raced: the ledger's clock is the test's, and the
 * failing write is held until the test lets it fail.
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

/** A validator (coin 0: nothing is challenged) on a fresh ledger, with a staked worker. */
async function setUp(ledgerDir: string, name: string) {
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const logs: string[] = [];
  const system = new ActorSystem({ name });
  const spawn = () =>
    spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      log: (line) => logs.push(line),
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
