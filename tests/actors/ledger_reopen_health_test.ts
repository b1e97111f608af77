/**
 * `/healthz` after the ledger reopens in place (review s72, "Ledger edges"): a ledger write that
 * failed is the `ledger_write_failed` condition (degraded), and the validator reopens the ledger
 * from disk on a timer (`actors/_ledger_reopen.ts`); the condition held until the next ledger
 * write, so a quiet node whose disk was fixed stayed `degraded` for as long as no receipt came.
 * Now the reopen that succeeds ends it; a write that fails after it raises it again. Read through
 * the health route; faults injected (`_sqlite_faults.ts`, `_ledger_disk_fault.ts`); the reopen's
 * timer fires only when the test fires it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { LEDGER_WRITE_FAILED, ledgerConditions } from "../../actors/ledger_conditions.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { healthRoutes } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { fullDiskOnCommit } from "../proof/_sqlite_faults.ts";
import { fillDiskUnder } from "../proof/_ledger_disk_fault.ts";
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

/** A port that serves nothing and says so at once: `/healthz` then reflects the conditions only. */
const IDLE_PORT = {
  stats: () => Promise.resolve(emptyInferenceStats()),
  models: () => Promise.resolve([]),
} as unknown as InferencePort;

/** `/healthz`'s body, for a node whose only other condition source is `validator`'s ledger. */
function healthz(validator: ActorRef<ValidatorMessage>) {
  const app = new Hono().route(
    "/",
    healthRoutes(
      new InferenceGateway({ inference: IDLE_PORT }),
      new MetricsRegistry(),
      undefined,
      () => ledgerConditions(validator),
    ),
  );
  return async () => {
    const response = await app.request("/healthz");
    assert.equal(response.status, 200);
    return await response.json() as { status: string; conditions?: { code: string }[] };
  };
}

Deno.test("/healthz is ok again as soon as the ledger reopens in place after a failed write, with no ledger write since; a write that fails after the reopen makes it degraded again", () =>
  inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
    const timers = new FakeTimers();
    const system = new ActorSystem({ name: "reopen-health" });
    try {
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        ledgerReopenTimers: timers,
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      const reads = ledgerReads(() => validator, clock);
      const health = healthz(validator);
      const announce = async (nonce: string) => {
        const job = textJob(requester, nonce);
        const { receipt } = await proveOn(job, worker);
        return await announceAssigned(validator, receipt, job, requester);
      };
      assert.equal((await health()).status, "ok");

      // The index's commit fails as on a full disk: the ledger is poisoned, the node degraded.
      const undo = fullDiskOnCommit();
      try {
        assert.equal((await announce("index-fails")).recorded, true);
      } finally {
        undo();
      }
      const degraded = await health();
      assert.equal(degraded.status, "degraded");
      assert.equal(degraded.conditions?.[0]?.code, LEDGER_WRITE_FAILED);

      // The disk is sound again; the reopen's timer fires and the reopen succeeds. No receipt
      // comes, so nothing writes to the ledger.
      timers.fireAll();
      await eventually(async () => (await reads.stats()).ledgerWriteFault?.reopens === 1, "reopen");
      // Failed before the fix: `degraded` until the next ledger write.
      const after = await health();
      assert.equal(after.status, "ok", JSON.stringify(after));
      assert.equal(after.conditions, undefined);

      // A write that fails after the reopen raises the condition again.
      const full = fillDiskUnder(ledgerDir);
      try {
        assert.equal((await announce("full-again")).refusal, LEDGER_WRITE_FAILED);
      } finally {
        full();
      }
      assert.equal((await health()).conditions?.[0]?.code, LEDGER_WRITE_FAILED);
    } finally {
      await system.shutdown();
    }
  }));
