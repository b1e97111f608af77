/**
 * A peer's fraud proof being checked when the ValidatorActor crashes: the crashed incarnation's
 * check ends and its `fraud_checked` reaches the restarted incarnation (`ctx.self` outlives a
 * supervisor's restart), which has taken the same proof again from the held evidence and checks
 * it too. The training validator lost such a proof (`tests/training/review_s42_split_test.ts`);
 * here the ledger must slash the cheat exactly once and reward the accuser once, whichever of the
 * two results comes first. No clock is raced: the model loads each check waits on are gates the
 * test opens, and the ledger's clock is the test's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled, ValidatorStats } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LedgerLog } from "../../proof/ledger_log.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
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
import { slashOf, STAKE } from "./_ledger_write_fault.ts";

/**
 * How long the crashed incarnation's `postStop` may wait for its check (`stopTimeoutMs`) in the
 * `after` order: it waits on a gate the test holds shut, so this only decides when it is
 * abandoned, never whether.
 */
const ABANDON_POST_STOP_MS = 50;

/** The next ledger log append throws an I/O error (nothing written): the actor crashes. */
function failNextAppend(): () => void {
  const append = LedgerLog.prototype.append;
  LedgerLog.prototype.append = function () {
    LedgerLog.prototype.append = append;
    return Promise.reject(
      Object.assign(new Error("Input/output error (os error 5) (simulated)"), { code: "EIO" }),
    );
  };
  return () => {
    LedgerLog.prototype.append = append;
  };
}

/**
 * Which check's result the restarted incarnation handles first: `before`, the crashed one's (it
 * ended while the crashed incarnation's `postStop` waited for it, and waited in the mailbox);
 * `after`, its own (the crashed one's check outlived its abandoned `postStop`).
 */
type Order = "before" | "after";

async function crashedCheck(order: Order) {
  const dir = await Deno.makeTempDir();
  const ledgerDir = `${dir}/ledger`;
  const clock = { t: START };
  const [me, cheat, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, cheat, f.otherSeed);
  const id = receiptId(proved.receipt);
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof);
  // Each check's model load waits on its own gate: the first is the crashed incarnation's check,
  // the second the restarted one's. (Intake asks `has`, never `get`.)
  const gates = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  const called = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  let loads = 0;
  const models = {
    has: (cid: string) => Promise.resolve(cid === f.honest.info.cid),
    get: async (cid: string) => {
      const n = loads++;
      called[n]?.resolve();
      await gates[n]?.promise;
      return await HONEST_MODELS.get(cid);
    },
  };
  const system = new ActorSystem({
    name: `crashed-check-${order}`,
    stopTimeoutMs: order === "after" ? ABANDON_POST_STOP_MS : undefined,
  });
  const counts = { crashes: 0, restarts: 0 };
  system.events.subscribe((event) => {
    if (event.name !== "node/validator") return;
    if (event.type === "crashed") counts.crashes++;
    if (event.type === "restarted") counts.restarts++;
  });
  // Ledger closes: the crashed incarnation's, once its abandoned `postStop` ends (`after`).
  const close = Ledger.prototype.close;
  let closes = 0;
  Ledger.prototype.close = function (this: Ledger) {
    closes++;
    return close.call(this);
  };
  let restore = () => {};
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      models,
      challengeProbability: 0,
    });
    const ledger = ledgerReads(() => validator, clock);
    const stats = () => validator.ask<ValidatorStats>({ type: "stats" });
    for (const key of [cheat, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    assert.equal(handled.recorded, true);
    assert.equal(handled.challenged, false);
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    await called[0].promise;
    // Kept with the proof in flight (a finalize tick): what the restart reads when the crashed
    // incarnation's `postStop` is abandoned before it keeps anything.
    await validator.ask({ type: "finalize" });
    // A disk error on another write, while the proof is being checked: the actor crashes.
    restore = failNextAppend();
    await assert.rejects(
      validator.ask({ type: "deposit", key: requester.publicKey, amount: 1 }),
    );
    restore();
    await eventually(() => counts.crashes === 1, "the validator to crash");
    if (order === "before") {
      // The crashed check ends while its incarnation's `postStop` waits for it: its result waits
      // in the mailbox for the restarted incarnation, which takes the proof again first.
      gates[0].resolve();
      await eventually(() => counts.restarts === 1, "the validator to be restarted");
      await called[1].promise;
      await eventually(
        async () => (await ledger.record(id))?.status === "fraud",
        "the crashed check's result to settle the proof",
      );
      gates[1].resolve();
    } else {
      // The crashed check outlives its `postStop` (abandoned): the restarted incarnation settles
      // its own check first, then the crashed one's result comes.
      await eventually(() => counts.restarts === 1, "the validator to be restarted");
      await called[1].promise;
      gates[1].resolve();
      await eventually(
        async () => (await stats()).fraudProofsChecked === 1,
        "the restarted check to be settled",
      );
      assert.equal((await ledger.record(id))?.status, "fraud");
      gates[0].resolve();
      // The crashed incarnation's `postStop` goes on, and closes its ledger.
      await eventually(() => closes === 1, "the crashed incarnation's postStop to end");
    }
    // Both results reached the restarted incarnation.
    await eventually(
      async () => (await stats()).fraudProofsChecked === 2,
      "both checks' results to be handled",
    );
    assert.equal(counts.crashes, 1);
    assert.equal(counts.restarts, 1);
    assert.equal((await stats()).fraudProofsChecking, 0);
    await ledger.closeWindow();
    const slash = slashOf(proved.receipt);
    const out = {
      status: (await ledger.record(id))?.status,
      cheat: await ledger.account(cheat.publicKey),
      accuser: await ledger.account(accuser.publicKey),
      slash,
    };
    await system.shutdown();
    // A process restart on the same directory takes up what was kept (nothing may settle again).
    const again = new ActorSystem({ name: `crashed-check-${order}-again` });
    const reopened = await spawnValidator(again, {
      identity: me,
      ledgerDir,
      clock,
      models: HONEST_MODELS,
      challengeProbability: 0,
    });
    await eventually(
      async () => (await reopened.ask<ValidatorStats>({ type: "stats" })).fraudProofsChecking === 0,
      "what the process restart took up to be settled",
    );
    await reopened.ask({ type: "finalize" });
    await again.shutdown();
    const kept = await Ledger.open(ledgerDir, me, { now: () => clock.t });
    const entries = kept.entries().filter((e) => e.body.receiptId === id);
    await kept.close();
    return {
      ...out,
      frauds: entries.filter((e) => e.kind === "fraud").length,
      refuted: entries.filter((e) => e.kind === "false_accusation").length,
    };
  } finally {
    restore();
    Ledger.prototype.close = close;
    for (const gate of gates) gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

function assertSlashedOnce(out: Awaited<ReturnType<typeof crashedCheck>>): void {
  assert.equal(out.status, "fraud", `the cheat's receipt ended ${out.status}`);
  assert.equal(out.frauds, 1, `the cheat was slashed ${out.frauds} times in this ledger`);
  assert.equal(out.refuted, 0, "the accuser was charged for a false accusation");
  assert.equal(out.cheat.stake, STAKE - out.slash, "the cheat was not slashed once");
  assert.equal(out.cheat.balance, 0, "the cheat was paid");
  assert.equal(
    out.accuser.balance,
    out.slash * DEFAULT_ECONOMICS.validatorRewardShare,
    "the accuser was not rewarded exactly once",
  );
  assert.equal(out.accuser.stake, STAKE, "the accuser lost stake");
}

Deno.test("a peer's fraud proof being checked when the validator crashes: the crashed check's result, handled before the restarted one's, slashes the cheat once and rewards the accuser once", async () => {
  assertSlashedOnce(await crashedCheck("before"));
});

Deno.test("a peer's fraud proof being checked when the validator crashes: the crashed check's result, handled after the restarted one's, settles nothing again", async () => {
  assertSlashedOnce(await crashedCheck("after"));
});
