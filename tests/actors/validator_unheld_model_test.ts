/**
 * Credit only what this ledger can check. A receipt on a model this validator cannot get is
 * recorded (the worker's stake locked, slashable, passed on with its assignment) but earns
 * nothing here, drawn or not: nothing here could ever catch it, so paying it paid made-up work
 * (an auditor's 60 receipts on a model no validator holds, at p = 0.1: 58 paid, none slashed).
 * The ledgers of validators that hold the model pay it. The intake asks the model source's
 * `has`, loading nothing; a source that cannot say (no `has`) is asked by `get`, and a model
 * that fails to load is the validator's own gap: challenged, unpaid, nobody slashed.
 * Assertions are on the ledger after the window: status, balance, stake.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import type { ValidatorModelSource } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { f, ledgerReads, proveOn, spawnValidator, START, textJob } from "./_validator_fixture.ts";

const WORKER_STAKE = 10_000;
/** A model CID no validator here holds. */
const UNHELD = "bafkreiunheldmodelunheldmodelunheldmodelunheldmodelunheld";

/** A validator with `models`, coin `p`, and a worker whose receipts it is handed. */
async function setup(p: number, models: ValidatorModelSource) {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const served = new Map<string, ServedProof>();
  const system = new ActorSystem({ name: "unheld-model" });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: p,
    models,
    source: { proof: (r: Receipt) => Promise.resolve(served.get(receiptId(r))) },
  });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const { record, account, closeWindow } = ledgerReads(() => validator, clock);
  let n = 0;
  return {
    worker,
    /** The worker's honest receipt for a job on `model`, with its job and assignment. */
    async prove(model: string) {
      const job = textJob(requester, `job-${n++}`, { model });
      const proved = await proveOn(job, worker);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
      return { job, receipt: proved.receipt, id, assignment };
    },
    submit: (message: Omit<Extract<ValidatorMessage, { type: "receipt" }>, "type">) =>
      validator.ask<ReceiptHandled>({ type: "receipt", origin: "ab".repeat(32), ...message }),
    record,
    account: () => account(worker.publicKey),
    closeWindow,
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A source holding the honest model, answering `has`, and counting what `get` was asked. */
function countingSource(): ValidatorModelSource & { got: string[]; asked: string[] } {
  const got: string[] = [];
  const asked: string[] = [];
  return {
    got,
    asked,
    has: (cid) => (asked.push(cid), cid === f.honest.info.cid),
    get: (
      cid,
    ) => (got.push(cid), Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined)),
  };
}

for (const p of [1, 0]) {
  Deno.test(`a receipt on a model this validator cannot get earns nothing here (p = ${p}: ${p ? "every coin would draw it" : "never drawn"}); the same worker's receipt on a held model is paid`, async () => {
    const models = countingSource();
    const t = await setup(p, models);
    try {
      const unheld = await t.prove(UNHELD);
      const held = await t.prove(f.honest.info.cid);
      // The worker's own announcement first (no assignment), then the requester's: the late
      // assignment does not bring credit either.
      const bare = await t.submit({ receipt: unheld.receipt, job: unheld.job });
      assert.deepEqual([bare.recorded, bare.uncredited, bare.challenged], [
        true,
        "model_unavailable",
        false,
      ]);
      await t.submit({ receipt: unheld.receipt, job: unheld.job, assignment: unheld.assignment });
      const handled = await t.submit({
        receipt: held.receipt,
        job: held.job,
        assignment: held.assignment,
      });
      assert.equal(handled.uncredited, undefined);
      assert.equal(handled.challenged, p === 1);
      if (handled.result) assert.equal((await handled.result).verdict.outcome, "valid");
      const record = (await t.record(unheld.id))!;
      assert.equal(record.requester !== undefined, true, "the assignment is attached");
      assert.equal(record.credit, 0);
      assert.ok(record.locked > 0, "its stake backs it: slashable like any receipt");
      await t.closeWindow();
      assert.equal((await t.record(unheld.id))?.status, "final");
      assert.equal((await t.record(held.id))?.status, "final");
      const credit = held.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      assert.deepEqual(await t.account(), { balance: credit, stake: WORKER_STAKE, locked: 0 });
      // Cheap: the intake asked `has`; the unheld model was never loaded.
      assert.ok(models.asked.includes(UNHELD));
      assert.equal(models.got.includes(UNHELD), false, `get asked for ${models.got}`);
    } finally {
      await t.close();
    }
  });
}

Deno.test("a model source without `has` is asked by `get` at intake: the unheld model's receipt is not paid; a model that fails to load is the validator's gap (unpaid, nobody slashed)", async () => {
  for (const broken of [false, true]) {
    const t = await setup(1, {
      get: (cid) =>
        broken
          ? Promise.reject(new Error("the model file is corrupt"))
          : Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
    });
    try {
      const { receipt, job, assignment, id } = await t.prove(broken ? f.honest.info.cid : UNHELD);
      const handled = await t.submit({ receipt, job, assignment });
      assert.equal(handled.recorded, true);
      if (broken) {
        // Held (it is registered) but failing to load: judged in the challenge, not the intake.
        assert.equal(handled.uncredited, undefined);
        const { verdict } = await handled.result!;
        assert.deepEqual([verdict.outcome, verdict.reason], ["inconclusive", "validator_error"]);
      } else {
        assert.deepEqual([handled.uncredited, handled.challenged], ["model_unavailable", false]);
      }
      await t.closeWindow();
      assert.equal((await t.record(id))?.status, broken ? "unpaid" : "final");
      assert.deepEqual(await t.account(), { balance: 0, stake: WORKER_STAKE, locked: 0 });
    } finally {
      await t.close();
    }
  }
});
