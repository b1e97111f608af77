/**
 * What a validator resumes at its start (`actors/_validator_restart.ts`): a receipt drawn before a
 * crash is still challenged, its own verdicts are read from the ledger once, a job it signed a
 * receipt for stays refused, and a peer's fraud proof being checked when it crashed is settled
 * exactly once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type {
  FraudProofHandled,
  ValidatorActivity,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
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
import { type ReceiptHandled, ValidatorActor } from "../../actors/validator_actor.ts";
import { Ledger } from "../../proof/ledger.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { jobId } from "../../protocols/job.ts";
import { LedgerLog } from "../../proof/ledger_log.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { eventually } from "../_helpers/wait.ts";
import { slashOf, STAKE } from "./_ledger_write_fault.ts";
import { copyDirNow } from "../_helpers/copy_dir.ts";

// -------------------------------------------------------------------------------------------------
// A crash between a receipt's draw and its challenge (`ValidatorActor`'s receipt intake and start):
// a validator that draws a receipt records it, then opens its challenge in a second ledger write. A
// process killed between the two left the receipt `pending` in the log, and the restarted validator
// never challenged it: the cheat it had drawn was paid unchecked when its window closed. The crash
// is taken as a copy of the ledger directory made at that instant (what a `kill -9` there leaves on
// disk), and a validator with the same key is started on the copy: no clock or timer is raced.

const DRAWN_STAKE = 10_000;

/**
 * A validator that draws every receipt hears the worker's (a cheat's, or an honest one's); the
 * process dies right after the receipt is recorded, before its challenge is opened. A validator
 * with the same key starts on what the disk held then, challenges run, the window closes.
 * Returns the receipt's status and the worker's account there.
 */
async function afterCrashAtDraw(cheat: boolean) {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, `drawn-${cheat}`);
  const { receipt, proof } = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
  const id = receiptId(receipt);
  const served = signServedProof(id, proof, worker);
  const source = { proof: () => Promise.resolve<ServedProof | undefined>(served) };
  const crashed = join(dir, "crashed");
  try {
    const before = new ActorSystem({ name: `s48-drawn-before-${cheat}` });
    try {
      const ledgerDir = join(dir, "ledger");
      const validator = await spawnValidator(before, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source,
        // The receipt is recorded and seen as drawn; its challenge is opened next: the kill.
        onActivity: (a: ValidatorActivity) => {
          if (a.kind === "receipt" && a.challenged) copyDirNow(ledgerDir, crashed);
        },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: DRAWN_STAKE });
      const handled = await announceAssigned(validator, receipt, job, requester);
      assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: `s48-drawn-after-${cheat}` });
    try {
      const validator = await spawnValidator(after, {
        identity: me,
        ledgerDir: crashed,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source,
      });
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      await reads.closeWindow();
      const credit = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      return {
        status: (await reads.record(id))?.status,
        account: await reads.account(worker.publicKey),
        credit,
      };
    } finally {
      await after.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a cheat drawn before a crash that came before its challenge opened is slashed after the restart, not paid unchecked", async () => {
  const { status, account } = await afterCrashAtDraw(true);
  assert.equal(status, "fraud", "the restarted validator owes the challenge it drew");
  assert.equal(account.balance, 0, "the cheat keeps no pay");
  assert.ok(account.stake < DRAWN_STAKE, "its stake is slashed");
});

Deno.test("an honest receipt drawn before a crash that came before its challenge opened is checked after the restart and paid", async () => {
  const { status, account, credit } = await afterCrashAtDraw(false);
  assert.equal(status, "final");
  assert.deepEqual(account, { balance: credit, stake: DRAWN_STAKE, locked: 0 });
});

// -------------------------------------------------------------------------------------------------
// The ValidatorActor's start reads its own verdicts from the ledger once. Its steering record and
// the receipts it challenged before the stop (remembered again so a copy of one never has its
// worker asked twice) come from the same verdicts; before, each read them (`Ledger.verdictsBy`: 2
// to 3 s on a ledger of 200,000 verdicts, each), so a start took twice that. Counted through the
// ledger's reader; no timing.

Deno.test("a validator's start reads its own verdicts from the ledger once (its steering record and the receipts it challenged come from one read)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-start-reads-" });
  const system = new ActorSystem({ name: "s64-start-reads" });
  const me = Identity.generate();
  const verdictsBy = Ledger.prototype.verdictsBy;
  let reads = 0;
  Ledger.prototype.verdictsBy = function (validator, target) {
    if (target === undefined && bytesEqual(validator, me.publicKey)) reads++;
    return verdictsBy.call(this, validator, target);
  };
  try {
    await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: me,
          ledgerDir: join(dir, "ledger"),
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
        }),
    });
    // Started: it answers.
    await system.lookup<ValidatorMessage>("node/validator")!.ask({
      type: "account",
      key: me.publicKey,
    });
    // Before: 2 (the steering record's read, and the restart's).
    assert.equal(reads, 1, "its own verdicts read once");
  } finally {
    Ledger.prototype.verdictsBy = verdictsBy;
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// The one-receipt-per-job guard (`ValidatorActor`'s `job_recorded`, asked with this node's key by
// the InferenceActor's `receiptSigned`): a worker refuses a job it already signed a receipt for,
// since a second run can sign a receipt with another output, and two receipts of one worker for one
// job with other outputs are slashed as equivocation. Since s48 only this node's own receipt
// recorded in its ledger answers yes. But the ledger records one receipt per job: when another
// key's receipt for the job got there first (a requester that had the job run elsewhere first),
// this node's own receipt is refused there (`job_already_recorded`), and the prover releases it all
// the same. After a restart the ledger held no receipt of this node for the job, the job was taken
// again, and a second receipt could be signed: the ledgers that recorded the first slash the honest
// worker's stake.

Deno.test("a receipt this node signed that its own ledger refused (another key's receipt held the job) still makes it refuse the job after a restart", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const other = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, "front-run-then-mine");
    const fresh = textJob(requester, "front-run-only");
    const { receipt: mine } = await proveOn(job, me);
    const first = new ActorSystem({ name: "s49-own-refused-first" });
    try {
      const validator = await spawnValidator(first, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
      for (const key of [me.publicKey, other.publicKey]) {
        await validator.ask({ type: "deposit", key, amount: DRAWN_STAKE });
      }
      // Another key's receipts for both jobs reach this ledger first.
      for (const j of [job, fresh]) {
        const { receipt } = await proveOn(j, other);
        assert.equal((await announceAssigned(validator, receipt, j, requester)).recorded, true);
      }
      // Then this node runs `job`: its prover asks its validator, which refuses its receipt, and
      // releases it (the requester has it, and can announce it anywhere).
      const handled = await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: mine,
        job,
        origin: "local",
        announce: true,
      });
      assert.deepEqual([handled.recorded, handled.refusal], [false, "job_already_recorded"]);
    } finally {
      await first.shutdown();
    }

    // What a second receipt for the job costs this worker: a ledger that recorded the first
    // slashes its stake when another output comes for the same job.
    const elsewhere = new ActorSystem({ name: "s49-own-refused-elsewhere" });
    try {
      const clockThere = { t: START };
      const there = await spawnValidator(elsewhere, {
        identity: Identity.generate(),
        ledgerDir: join(ledgerDir, "..", "elsewhere"),
        clock: clockThere,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
      await there.ask({ type: "deposit", key: me.publicKey, amount: DRAWN_STAKE });
      assert.equal((await announceAssigned(there, mine, job, requester)).recorded, true);
      const { receipt: second } = await proveOn(job, me, f.otherSeed);
      assert.notEqual(second.outputHash, mine.outputHash);
      const again = await announceAssigned(there, second, job, requester);
      assert.equal(again.refusal, "equivocation");
      const account = await ledgerReads(() => there, clockThere).account(me.publicKey);
      assert.ok(account.stake < DRAWN_STAKE, `stake ${account.stake} was slashed`);
    } finally {
      await elsewhere.shutdown();
    }

    // After a restart, this node's ledger is what keeps it from running `job` a second time.
    const restarted = new ActorSystem({ name: "s49-own-refused-restarted" });
    try {
      const validator = await spawnValidator(restarted, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
      const signed = (j: typeof job) =>
        validator.ask<boolean>({ type: "job_recorded", jobId: jobId(j), worker: me.publicKey });
      assert.equal(await signed(job), true, "this node signed a receipt for the job");
      // Review s48 stays: another key's receipt alone does not make this node refuse a job.
      assert.equal(await signed(fresh), false);
    } finally {
      await restarted.shutdown();
    }
  });
});

// -------------------------------------------------------------------------------------------------
// A peer's fraud proof being checked when the ValidatorActor crashes: the crashed incarnation's
// check ends and its `fraud_checked` reaches the restarted incarnation (`ctx.self` outlives a
// supervisor's restart), which has taken the same proof again from the held evidence and checks it
// too. The training validator lost such a proof (`tests/training/training_proof_intake_test.ts`);
// here the ledger must slash the cheat exactly once and reward the accuser once, whichever of the
// two results comes first. No clock is raced: the model loads each check waits on are gates the
// test opens, and the ledger's clock is the test's.

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
