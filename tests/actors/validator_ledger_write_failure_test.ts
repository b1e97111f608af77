/**
 * A challenge's ending outlives a ledger write that fails with a disk error. The ValidatorActor
 * owns its ledger: a failed write poisons it, the actor crashes, and its supervisor restarts it
 * with the ledger reopened from disk. Before, the restart found the receipt still `challenged`
 * with nothing kept of how its challenge had ended, and left it unresolved: an honest worker
 * whose challenge passed was never paid there, a cheat the validator had caught (its own fraud
 * proof, or proof data withheld) kept its stake. The ending is now kept on disk before the ledger
 * is asked, and applied at the restart; an ending the ledger already has (the write reached the
 * log, the crash came after it) is applied once, not twice.
 *
 * The failing write is a fake: the ledger log's append (nothing written) or the history index's
 * apply (the entry durable in the log) throws an I/O-like error once, during one named ledger
 * call. No clock is raced: the ledger's clock is the test's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { CHALLENGE_ENDINGS_DIR } from "../../actors/_challenge_endings.ts";
import { OWN_FRAUD_PROOFS_DIR } from "../../actors/_own_fraud_proofs.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LedgerLog } from "../../proof/ledger_log.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 10_000;

/** Where the fake disk error strikes: before the entry is written, or after it is durable. */
type Fault = "append" | "index";

/** An I/O error as the OS reports one. */
function ioError(): Error {
  return Object.assign(new Error("Input/output error (os error 5) (simulated)"), { code: "EIO" });
}

/**
 * During the first `times` calls of ledger method `method`, one write each fails: `append`, the
 * log's append throws before writing (the entry is lost); `index`, the history index's apply
 * throws after the log append (the entry is durable, the crash comes after it). Returns the undo.
 */
function failDuring(
  method: "clearChallenge" | "settleFraud" | "settleFault",
  fault: Fault,
  times: number,
) {
  const original = Ledger.prototype[method] as (...args: unknown[]) => Promise<unknown>;
  const append = LedgerLog.prototype.append;
  const apply = LedgerIndex.prototype.apply;
  let armed = times;
  const restore = () => {
    Object.assign(Ledger.prototype, { [method]: original });
    LedgerLog.prototype.append = append;
    LedgerIndex.prototype.apply = apply;
  };
  Object.assign(Ledger.prototype, {
    [method](this: Ledger, ...args: unknown[]) {
      if (armed === 0) return original.apply(this, args);
      armed--;
      if (fault === "append") {
        LedgerLog.prototype.append = function () {
          LedgerLog.prototype.append = append;
          return Promise.reject(ioError());
        };
      } else {
        LedgerIndex.prototype.apply = function () {
          LedgerIndex.prototype.apply = apply;
          throw ioError();
        };
      }
      return original.apply(this, args);
    },
  });
  return restore;
}

/** What the worker did, and where its proof data comes from. */
type Work = "honest" | "cheat" | "withheld";

/**
 * `work` announced to a validator that challenges everything, whose ending write fails once
 * (`fault`, during `method`): the validator crashes, is restarted, and its window closes.
 * Returns the worker's and the validator's accounts after it, the receipt's status, and how
 * many times the validator crashed (a start that failed included).
 */
async function endingWriteFails(
  work: Work,
  method: "clearChallenge" | "settleFraud" | "settleFault",
  fault: Fault,
  times = 1,
) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, work === "cheat" ? f.otherSeed : f.honest);
  const id = receiptId(proved.receipt);
  const system = new ActorSystem({ name: `ledger-write-${work}-${fault}` });
  let crashes = 0;
  let restarts = 0;
  system.events.subscribe((event) => {
    if (event.name !== "node/validator") return;
    if (event.type === "crashed") crashes++; // a failed start, too
    if (event.type === "restarted") restarts++;
  });
  const restore = failDuring(method, fault, times);
  try {
    const validator: ActorRef<ValidatorMessage> = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models: HONEST_MODELS,
      source: {
        proof: () =>
          Promise.resolve(
            work === "withheld" ? undefined : signServedProof(id, proved.proof, worker),
          ),
      },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    assert.equal(handled.challenged, true);
    handled.result?.catch(() => {});
    const ledger = ledgerReads(() => validator, clock);
    await eventually(() => restarts > 0, "the validator to crash and be restarted");
    await eventually(
      async () => (await ledger.record(id))?.status !== "challenged",
      "the challenge to end after the restart",
    );
    await ledger.drained();
    await ledger.closeWindow();
    // Nothing is left kept once the ledger has every ending.
    for (const folder of [CHALLENGE_ENDINGS_DIR, OWN_FRAUD_PROOFS_DIR]) {
      const kept = await Array.fromAsync(Deno.readDir(`${dir}/ledger/${folder}`)).catch(() => []);
      assert.deepEqual(kept, [], `${folder} still keeps an ending`);
    }
    return {
      status: (await ledger.record(id))?.status,
      worker: await ledger.account(worker.publicKey),
      validator: await ledger.account(me.publicKey),
      reward: proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
      crashes,
    };
  } finally {
    restore();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a valid challenge whose clearing write fails with a disk error is cleared after the restart: the honest worker is paid", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "append");
  assert.equal(out.status, "final", `the honest work ended ${out.status}`);
  assert.equal(out.worker.balance, out.reward, "the honest worker was not paid");
  assert.equal(out.worker.stake, STAKE);
});

Deno.test("a clearing whose write fails again at the restart is applied at the restart after it: the honest worker is paid", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "append", 2);
  assert.equal(out.crashes, 2, "the restart's write did not fail");
  assert.equal(out.status, "final", `the honest work ended ${out.status}`);
  assert.equal(out.worker.balance, out.reward, "the honest worker was not paid");
});

Deno.test("a caught cheat whose fraud settlement write fails with a disk error is slashed after the restart, and the validator earns its share", async () => {
  const out = await endingWriteFails("cheat", "settleFraud", "append");
  const slash = out.reward * DEFAULT_ECONOMICS.slashMultiplier;
  assert.equal(out.status, "fraud", `the cheat's receipt ended ${out.status}`);
  assert.equal(out.worker.stake, STAKE - slash, "the cheat kept its stake");
  assert.equal(out.worker.balance, 0, "the cheat was paid");
  assert.equal(out.validator.balance, slash * DEFAULT_ECONOMICS.validatorRewardShare);
});

Deno.test("a worker that withheld its proof data, whose fault write fails with a disk error, is slashed after the restart", async () => {
  const out = await endingWriteFails("withheld", "settleFault", "append");
  const slash = out.reward * DEFAULT_ECONOMICS.slashMultiplier;
  assert.equal(out.status, "fraud", `the withheld receipt ended ${out.status}`);
  assert.equal(out.worker.stake, STAKE - slash, "the worker that withheld kept its stake");
  assert.equal(out.worker.balance, 0);
});

Deno.test("a clearing that reached the ledger before the crash is applied once after the restart: the worker is paid once", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "index");
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "final");
  assert.equal(out.worker.balance, out.reward, "paid other than once");
  assert.equal(out.worker.stake, STAKE);
});

Deno.test("a fraud settlement that reached the ledger before the crash is applied once after the restart: the cheat is slashed once", async () => {
  const out = await endingWriteFails("cheat", "settleFraud", "index");
  const slash = out.reward * DEFAULT_ECONOMICS.slashMultiplier;
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - slash, "slashed other than once");
  assert.equal(out.validator.balance, slash * DEFAULT_ECONOMICS.validatorRewardShare);
});

Deno.test("a fault that reached the ledger before the crash is applied once after the restart: slashed once", async () => {
  const out = await endingWriteFails("withheld", "settleFault", "index");
  const slash = out.reward * DEFAULT_ECONOMICS.slashMultiplier;
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - slash, "slashed other than once");
});
