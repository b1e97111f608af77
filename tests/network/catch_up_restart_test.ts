/**
 * A node's catch-up (`actors/_catch_up.ts`) survives its process: a conviction, a "proof withheld"
 * fault and a receipt it assigned still reach a ledger that connects after a restart, a death right
 * after the settlement, a ledger write that crashed the validator, or a kill right after the record.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { receiptId } from "../../protocols/receipt.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import {
  assertAwaySlashed,
  cheatCase,
  fraudProofOf,
  restartMeetingAwayLedger,
  runFirstLife,
  spawnAwayLedger,
  spawnKnowingA,
  writeFirstLife,
} from "./_catch_up_second_life.ts";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import type { FraudProofHandled, ValidatorMessage } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  copyDir,
  inLedgerSetting,
  joinLedgerNodes,
  latePeerCatchesUp,
  type LedgerNode,
  type LedgerSetting,
  spawnLedgerNode,
  spawnSettingNode,
  spawnValidatorAndLatePeer,
  STAKE,
  withholds,
} from "./_ledger_node.ts";
import { failDuring } from "../actors/_ledger_write_fault.ts";
import { CATCH_UP_VERDICTS_DIR } from "../../actors/_catch_up.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  PLEDGE_SEND_RESERVE,
  PLEDGES_PUSHED_ON_CONNECT,
  signStakePledge,
} from "../../protocols/stake_pledge.ts";
import { paidInCAsInA, recordAssigned } from "./_assigned_receipt.ts";
import { copyDirNow } from "../_helpers/copy_dir.ts";

// ---- a conviction across a restart ----------------------------------------------------------------
// A node's catch-up (`actors/_catch_up.ts`) survives a restart of its process: node A confirmed a
// peer's conviction of a cheat (V's fraud proof, gossiped to it), then its process ended and a new
// one started on the same data directory. Before, the convictions were in memory only: the
// restarted A resent its own proofs (read back from `own-fraud-proofs/`) but not V's, and ledger C,
// which had the cheat's receipt and was away, connected only to the restarted A and paid the cheat
// every other ledger slashed.
//
// The first life runs in a child process (`_catch_up_first_life.ts`), so nothing of it stays in
// this one's memory: a restart, not a supervisor's restart. No clock is raced: every ledger runs
// on a clock fixed at `START`.

const FIRST_LIFE = new URL("./_catch_up_first_life.ts", import.meta.url).pathname;

Deno.test("a peer's conviction this node confirmed reaches, after the node's process restarted, a ledger that connects only to it: the cheat is slashed there too", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "catch-up-restart" });
  try {
    const life = await runFirstLife(dir, [FIRST_LIFE, dir]);
    const id = receiptId(life.receipt);
    const clock = { t: START };
    // C was away with the cheat's receipt; A's second life, on the same directory, joins it only.
    const kept = await restartMeetingAwayLedger(system, dir, life, clock);
    assert.deepEqual(kept, [id], "the restarted node's catch-up lost the conviction it confirmed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- a death right after the settlement -----------------------------------------------------------
// A node's process dies right after its ledger settled a peer's conviction (the ledger's entry is
// durable, nothing after it ran). Before, the conviction was written to `<ledger>/catch-up/` only
// after the settlement, so it was lost from the catch-up: ledger C, which had the cheat's receipt
// and was away, connected only to the restarted node and paid the cheat every other ledger slashed.
// The catch-up now writes the conviction's file before it is settled, and reads back only what the
// ledger settled as fraud.
//
// The first life runs in a child process (this file, run with `first-life <dir>`), which exits
// inside the settlement: a process's death, not a supervisor's restart. No clock is raced:
// every ledger runs on a clock fixed at `START`.

/**
 * A's first life: it records the cheat's receipt, takes V's fraud proof from a peer, checks it
 * and settles it; the process exits as soon as the ledger's confirmed settlement is durable.
 */
async function firstLifeMain(dir: string): Promise<never> {
  const clock = { t: START };
  const c = await cheatCase();
  const fraudProof = await fraudProofOf(c);
  if (fraudProof === undefined) throw new Error("no fraud proof");
  await writeFirstLife(dir, c);
  const system = new ActorSystem({ name: "review-s43-first-life" });
  const nodeA = await spawnKnowingA(system, dir, c, clock);
  // The process dies once the ledger's conviction is on disk: nothing after it runs.
  const settle = Ledger.prototype.settleFraud;
  Ledger.prototype.settleFraud = async function (this: Ledger, settlement) {
    const entry = await settle.call(this, settlement);
    if (settlement.confirmed) Deno.exit(0);
    return entry;
  };
  await nodeA.validator.ask({ type: "fraud_proof", proof: fraudProof, origin: "ab".repeat(32) });
  await new Promise((resolve) => setTimeout(resolve, 60_000));
  Deno.exit(3); // never settled
}

if (Deno.args[0] === "first-life") await firstLifeMain(Deno.args[1]);

Deno.test("a conviction whose settlement the process died right after still reaches, after the restart, a ledger that connects only to this node: the cheat is slashed there", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s43-died" });
  try {
    const life = await runFirstLife(dir, [new URL(import.meta.url).pathname, "first-life", dir]);
    const id = receiptId(life.receipt);
    const clock = { t: START };
    const me = Identity.fromSecretKey(life.a);
    // A's ledger settled the conviction before the process died.
    const ledger = await Ledger.open(`${dir}/a`, me, { now: () => clock.t });
    assert.equal(ledger.receipt(id)?.status, "fraud", "A's first life did not settle the proof");
    await ledger.close();
    // C was away with the cheat's receipt; A's second life, on the same directory, joins it only.
    const kept = await restartMeetingAwayLedger(system, dir, life, clock);
    assert.deepEqual(
      kept,
      [id],
      "the restarted node's catch-up lost the conviction its ledger settled",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- a durable write that crashed the validator ---------------------------------------------------
// Node A's ledger write of a peer's conviction is durable, then the ledger fails (its history index
// throws: a disk error after the entry was written) and the ValidatorActor crashes; its supervisor
// restarts it, the ledger reopened from disk holding the conviction. Before, the conviction was
// kept in the catch-up only after the settlement returned: the restarted validator found the
// accusation settled (the proof taken again from the held evidence is a repeated accusation) and
// never kept it, so ledger C, which had the cheat's receipt and was away, connected to A after the
// crash and paid the cheat every other ledger slashed. The catch-up now writes the conviction ahead
// of the settlement, and each start of the validator keeps what was written ahead that the ledger
// settled.
//
// No clock is raced: every ledger runs on a clock fixed at `START`.

/** During the next `settleFraud`, the index's apply throws once, after the entry is durable. */
function failIndexDuringSettlement(): () => void {
  const settle = Ledger.prototype.settleFraud;
  const apply = LedgerIndex.prototype.apply;
  const restore = () => {
    Ledger.prototype.settleFraud = settle;
    LedgerIndex.prototype.apply = apply;
  };
  Ledger.prototype.settleFraud = function (this: Ledger, settlement) {
    Ledger.prototype.settleFraud = settle;
    LedgerIndex.prototype.apply = function () {
      LedgerIndex.prototype.apply = apply;
      throw Object.assign(new Error("Input/output error (os error 5) (simulated)"), {
        code: "EIO",
      });
    };
    return settle.call(this, settlement);
  };
  return restore;
}

Deno.test("a conviction whose durable ledger write crashed the validator reaches a ledger that connects after the restart: the cheat is slashed there", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s43-write-fault" });
  const counts = { crashes: 0, restarts: 0 };
  system.events.subscribe((event) => {
    if (event.name !== "a/validator") return;
    if (event.type === "crashed") counts.crashes++;
    if (event.type === "restarted") counts.restarts++;
  });
  let restore = () => {};
  try {
    const clock = { t: START };
    const cheating = await cheatCase();
    const { cheat, v, id, evidence } = cheating;
    const fraudProof = await fraudProofOf(cheating);
    assert.ok(fraudProof);
    const a = await spawnKnowingA(system, dir, cheating, clock);
    // V's proof, from a peer: A checks it, and its settlement's write fails once durable.
    restore = failIndexDuringSettlement();
    const taken = await a.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    await eventually(() => counts.restarts === 1, "A's validator to crash and be restarted");
    restore();
    const readsA = ledgerReads(() => a.validator, clock);
    await eventually(
      async () => (await readsA.record(id))?.status === "fraud",
      "A's restarted validator to hold the settled conviction",
    );
    // C had the cheat's receipt (through other peers) and the accuser's stake; it was away.
    const c = await spawnAwayLedger(system, dir, clock, evidence);
    await joinLedgerNodes(a, c);
    const slash = await assertAwaySlashed(c, clock, evidence);
    assert.equal(counts.crashes, 1);
    // And A settled it once.
    await readsA.closeWindow();
    assert.equal((await readsA.account(cheat.publicKey)).stake, STAKE - slash);
    assert.equal(
      (await readsA.account(v.publicKey)).balance,
      slash * DEFAULT_ECONOMICS.validatorRewardShare,
    );
  } finally {
    restore();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- start fault evidence -------------------------------------------------------------------------
// A "proof withheld" fault the validator applies at its start from its kept ending
// (`actors/_challenge_endings.ts`: the write of its verdict failed and crashed the validator, or a
// stop came first) is sent in the catch-up of a peer that connects afterwards after its receipt and
// job (`ClaimEvidence`), as a fault decided without a restart is (`catch_up_evidence_test.ts`).
// Before, the job was not kept past the challenge's opening and the start's fault went alone: a
// late peer that never had the receipt (or had forgotten it) held the claim for good, and the
// worker that withheld kept its stake there (or was paid), slashed here.
//
// The set-up: the validator V challenges the worker's receipt (it withholds from V: a fault),
// alone; the write of V's verdict fails once (`_ledger_write_fault.ts`), V crashes and its
// restart applies the kept fault. The late peer L, which never had the receipt, then connects to
// V. Every ledger runs on the test's clock; asserted on L's ledger after the window.

const STAKE_START_FAULT_EVIDENCE = 1_000_000;

Deno.test("a withheld fault applied at the validator's start goes in its catch-up after its receipt and job: a late peer that never had the receipt takes the claim over and slashes the worker that withholds there too", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s58-start-fault-evidence" });
  let restarts = 0;
  system.events.subscribe((event) => {
    if (event.name === "v/validator" && event.type === "restarted") restarts++;
  });
  const restore = failDuring("recordVerdict", "append", 1);
  try {
    const [v, worker, requester] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const { nodeV, nodeL } = await spawnValidatorAndLatePeer({ dir, clock, system }, v, {
      staked: [worker, v],
      stake: STAKE_START_FAULT_EVIDENCE,
    });
    // V decides alone; the write of its verdict fails, and its restart applies the kept fault.
    const handled = await announceAssigned(nodeV.validator, receipt, job, requester);
    assert.equal(handled.challenged, true);
    handled.result?.catch(() => {});
    const readsV = ledgerReads(() => nodeV.validator, clock);
    await eventually(() => restarts > 0, "V to crash and be restarted");
    await eventually(
      async () => (await readsV.record(id))?.status === "fraud",
      "V's restart to apply its kept fault",
    );

    // Before the fix nothing came that L could record: the claim was held for a receipt that
    // never came, so the wait for it gave up and the ledger tells the rest.
    const { readsL, record, before } = await latePeerCatchesUp(nodeL, nodeV, clock, id, worker);
    assert.equal(
      (await readsL.record(id))?.status,
      "fraud",
      `L ${record === undefined ? "never recorded the receipt" : "did not slash the worker"}` +
        ` (its stake there: ${before.stake} of ${STAKE_START_FAULT_EVIDENCE})`,
    );
    assert.deepEqual(
      await readsL.account(worker.publicKey),
      { balance: 0, stake: STAKE_START_FAULT_EVIDENCE - record!.locked, locked: 0 },
      "slashed in L as in V",
    );
  } finally {
    restore();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- a withheld fault across a restart ------------------------------------------------------------
// A validator's "proof withheld" fault survives, in its catch-up (`actors/_catch_up.ts`), a restart
// of its node's process. Validator V decides that worker W withheld its proof data (W slashed in
// V's ledger) with no peer connected, so its gossip reaches nobody; V's process then restarts (a
// new ValidatorActor on the same ledger). Ledger L was away meanwhile; it connects to V's new
// process. The fault's verdict was kept in memory only (convictions were kept on disk): L never
// heard the claim, never asked W, and paid the worker V slashed (or, never having had the receipt,
// left it its stake).
//
// A new process is stood in for by V's ledger directory copied under another name while V is
// down: the catch-up is one per ledger directory in a process (`CatchUp.of`), so the copy is read
// from disk as a new process reads it. Every ledger runs on the test's clock; asserted on L's
// ledger after the window.

const STAKE_CATCHUP_RESTART = 1_000_000;

/** W's work, and the away ledger L holding W's and V's stake (`knows`: and W's receipt). */
async function awayLedger({ dir, clock, system }: LedgerSetting, v: Identity, knows: boolean) {
  const [worker, requester] = [Identity.generate(), Identity.generate()];
  const job = textJob(requester, crypto.randomUUID());
  const { receipt } = await proveOn(job, worker);
  const nodeL = await spawnLedgerNode(system, dir, "l", {
    identity: Identity.generate(),
    models: HONEST_MODELS,
    clock,
    validator: { challengeProbability: 0, source: withholds },
  });
  for (const key of [worker, v]) {
    await nodeL.validator.ask({
      type: "deposit",
      key: key.publicKey,
      amount: STAKE_CATCHUP_RESTART,
    });
  }
  if (knows) {
    // Through its requester.
    const handled = await announceAssigned(nodeL.validator, receipt, job, requester);
    assert.equal(handled.recorded, true);
  }
  return { worker, requester, job, receipt, id: receiptId(receipt), nodeL };
}

/**
 * V's first life, in a system of its own: it decides alone (the worker withholds: a fault), then
 * its process ends; its second life, on a copy of its ledger directory (`v2`), in `system`.
 */
async function vRestartsAfterDeciding(
  setting: LedgerSetting,
  v: Identity,
  w: Awaited<ReturnType<typeof awayLedger>>,
): Promise<LedgerNode> {
  const { dir, clock, system } = setting;
  const spawnV = (on: ActorSystem, name: string) =>
    spawnLedgerNode(on, dir, name, {
      identity: v,
      models: HONEST_MODELS,
      clock,
      validator: { challengeProbability: 1, source: withholds },
    });
  const first = new ActorSystem({ name: "s59-first-life" });
  try {
    const nodeV = await spawnV(first, "v");
    await nodeV.validator.ask({
      type: "deposit",
      key: w.worker.publicKey,
      amount: STAKE_CATCHUP_RESTART,
    });
    const handled = await announceAssigned(nodeV.validator, w.receipt, w.job, w.requester);
    assert.equal(handled.challenged, true);
    await handled.result;
    const readsV = ledgerReads(() => nodeV.validator, clock);
    assert.equal((await readsV.record(w.id))?.status, "fraud", "V slashed the worker");
  } finally {
    await first.shutdown();
  }
  await copyDir(`${dir}/v`, `${dir}/v2`);
  return await spawnV(system, "v2");
}

/**
 * W's work and the away ledger L (`knows`: and W's receipt); V decides alone, its process restarts,
 * and L catches up with V's new process ({@link latePeerCatchesUp}).
 */
async function awayLedgerCatchesUpAfterRestart(setting: LedgerSetting, knows: boolean) {
  const v = Identity.generate();
  const w = await awayLedger(setting, v, knows);
  const nodeV2 = await vRestartsAfterDeciding(setting, v, w);
  const caughtUp = await latePeerCatchesUp(w.nodeL, nodeV2, setting.clock, w.id, w.worker);
  return { w, ...caughtUp };
}

Deno.test("a withheld fault a validator decided reaches, after its process restarted, a ledger that was away with the receipt: the worker is slashed there too, not paid", () =>
  inLedgerSetting("s59-catch-up-restart", async (setting) => {
    const { w, readsL, record, before } = await awayLedgerCatchesUpAfterRestart(setting, true);
    assert.ok(record !== undefined && record.credit > 0, "L would pay the work");
    assert.equal(
      (await readsL.record(w.id))?.status,
      "fraud",
      `L paid the worker that withheld (its stake there: ${before.stake} of ${STAKE_CATCHUP_RESTART})`,
    );
    assert.deepEqual(
      await readsL.account(w.worker.publicKey),
      { balance: 0, stake: STAKE_CATCHUP_RESTART - record.locked, locked: 0 },
      "slashed in L as in V, not paid",
    );
    assert.equal((await readsL.stats()).challenged, 1, "L took V's claim over");
    const files = await Array.fromAsync(Deno.readDir(`${setting.dir}/v2/${CATCH_UP_VERDICTS_DIR}`));
    assert.equal(files.length, 1, "V kept its fault on disk, one file");
  }));

Deno.test("a withheld fault kept across a process restart goes after its receipt and job: a ledger that never had the receipt records it, takes the claim over and slashes the worker", () =>
  inLedgerSetting("s59-catch-up-restart-evidence", async (setting) => {
    const { w, readsL, record, before } = await awayLedgerCatchesUpAfterRestart(setting, false);
    assert.equal(
      (await readsL.record(w.id))?.status,
      "fraud",
      `L ${record === undefined ? "never recorded the receipt" : "did not slash the worker"}` +
        ` (its stake there: ${before.stake} of ${STAKE_CATCHUP_RESTART})`,
    );
    assert.deepEqual(
      await readsL.account(w.worker.publicKey),
      { balance: 0, stake: STAKE_CATCHUP_RESTART - record!.locked, locked: 0 },
      "slashed in L as in V",
    );
  }));

// ---- assigned receipts across a crash -------------------------------------------------------------
// Two ways the announcement of a receipt A assigned (it forwarded the job: its own signed
// assignment, which no other node holds) still missed a ledger that connects later, and the honest
// worker that delivered every token was paid in A's ledger and not in C's.
//
// - The crash window. A's validator kept the announcement in its catch-up (a file under
//   `catch-up-receipts/`) only after its ledger had recorded the receipt, durably: a process
//   killed between the two came back with the receipt pending in its ledger, assigned by A, and no
//   file to carry its job and assignment, so C never heard of it. The kill is stood in for by a
//   copy of A's ledger directory taken at the moment the validator reports the receipt recorded
//   (its `onActivity`, synchronously: nothing of A's after that reaches the copy), which a new
//   process then opens, as `catch_up_receipts_test.ts` does.
// - The worker's pledge. C joined after the worker's pledge went round, and the pledges A pushes
//   on connect are bounded (`PLEDGES_PUSHED_ON_CONNECT`, the newest active keys first): with more
//   active keys than that pledged after the worker, C lacked its stake, refused A's catch-up
//   receipt `insufficient_stake` and held it for a pledge nothing sent (the live announcement asks
//   for it, `PledgeSync.sendNeeded`; the catch-up did not).
//
// Every ledger runs on the test's clock; asserted on C's ledger after the window.

const WORKER_STAKE = 1_000_000;

Deno.test("A's process killed right after its ledger recorded a receipt A assigned (no peer connected) still sends it to C after the restart: the honest worker is paid tokens × price in C as in A", () =>
  inLedgerSetting("s61-catch-up-crash", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const job = textJob(a, "s61-catch-up-crash");

    // A's first life, its validator alone: the copy taken as the receipt is reported recorded is
    // what a process killed at that moment leaves on disk.
    const first = new ActorSystem({ name: "s61-first-life" });
    let recorded: { id: string; tokens: number };
    let killedAt = 0;
    try {
      const validatorA = await first.spawn<ValidatorMessage>({
        name: "a/validator",
        factory: () =>
          new ValidatorActor({
            identity: a,
            ledgerDir: `${dir}/a`,
            models: HONEST_MODELS,
            challengeProbability: 0,
            finalizeIntervalMs: 0,
            ledger: { now: () => clock.t },
            // A fake clock (it starts in 1970): real receipts are decades "ahead" of it.
            maxReceiptLeadMs: Number.POSITIVE_INFINITY,
            onActivity: (activity) => {
              if (activity.kind !== "receipt" || !activity.recorded) return;
              killedAt++;
              copyDirNow(`${dir}/a`, `${dir}/a2`);
            },
          }),
      });
      await validatorA.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
      recorded = await recordAssigned({ validator: validatorA }, a, worker, job);
    } finally {
      await first.shutdown();
    }
    assert.equal(killedAt, 1, "the kill is stood in for once, as the receipt is recorded");

    // The process that starts on what the kill left; C, away until now, connects to it.
    const nodeA2 = await spawnSettingNode(setting, system, "a2", a);
    const { id } = recorded;
    assert.equal(
      (await nodeA2.validator.ask<{ requester?: string }>({
        type: "receipt_status",
        receiptId: id,
      }))
        ?.requester,
      toHex(a.publicKey),
      "the kill left the receipt recorded in A's ledger, assigned by A",
    );
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    await nodeC.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    await joinLedgerNodes(nodeC, nodeA2);
    await paidInCAsInA(
      clock,
      { nodeA: nodeA2, nodeC },
      a,
      worker,
      recorded,
      "C to record the receipt from A's catch-up",
    );
  }));

/**
 * A holds the pledges of `workerCount` workers, then of `others` keys pledged after them, each
 * active in its ledger (a deposit on top of its pledge), and records one receipt of each worker
 * under its own assignment, with no peer connected; C, which never heard of any of them, connects.
 * Every honest worker must be paid in C as in A: the indices of those unpaid in C are asserted
 * empty.
 */
async function workersPaidInC(
  setting: LedgerSetting,
  workerCount: number,
  others: number,
): Promise<void> {
  const { system, clock } = setting;
  const [a, c] = [Identity.generate(), Identity.generate()];
  const workers = Array.from({ length: workerCount }, () => Identity.generate());
  const nodeA = await spawnSettingNode(setting, system, "a", a);
  const pledge = (key: Identity) =>
    nodeA.validator.ask<boolean>({
      type: "pledge",
      pledge: signStakePledge(key, WORKER_STAKE, 1),
      origin: "local",
    });
  for (const worker of workers) assert.equal(await pledge(worker), true);
  for (let i = 0; i < others; i++) {
    const other = Identity.generate();
    assert.equal(await pledge(other), true);
    await nodeA.validator.ask({ type: "deposit", key: other.publicKey, amount: 1 });
  }
  const recorded: { id: string; tokens: number }[] = [];
  for (const [n, worker] of workers.entries()) {
    recorded.push(await recordAssigned(nodeA, a, worker, textJob(a, `s61-${n}`)));
  }

  const nodeC = await spawnSettingNode(setting, system, "c", c);
  for (const worker of workers) {
    assert.equal(
      await nodeC.validator.ask<boolean>({ type: "has_staked", key: worker.publicKey }),
      false,
      "C lacks the worker's stake",
    );
  }
  await joinLedgerNodes(nodeC, nodeA);
  const readsA = ledgerReads(() => nodeA.validator, clock);
  const readsC = ledgerReads(() => nodeC.validator, clock);
  await eventually(
    async () => {
      for (const { id } of recorded) if ((await readsC.record(id)) === undefined) return false;
      return true;
    },
    "C to record every receipt of A's catch-up",
  ).catch(() => {}); // lost: the ledgers tell below
  await readsA.closeWindow();
  await nodeC.validator.ask({ type: "finalize" });
  const unpaid: number[] = [];
  for (const [n, worker] of workers.entries()) {
    const paid = recorded[n].tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsA.account(worker.publicKey)).balance, paid, "paid in A");
    if ((await readsC.account(worker.publicKey)).balance !== paid) unpaid.push(n);
  }
  assert.deepEqual(
    unpaid,
    [],
    "honest workers unpaid in a ledger that hears of them only through A",
  );
}

Deno.test("C joins after the worker's pledge went round, with more active keys pledged after it in A than A pushes on connect: the honest worker is paid tokens × price in C as in A", () =>
  inLedgerSetting(
    "s61-catch-up-pledge",
    (setting) => workersPaidInC(setting, 1, PLEDGES_PUSHED_ON_CONNECT + 1),
  ));

Deno.test("C lacks the stake of more workers of A's catch-up receipts than the room A keeps for pledges a peer needs, with more active keys pledged after them: the connect push carries those workers' pledges first, and each honest worker is paid in C as in A", () =>
  inLedgerSetting(
    "s61-catch-up-pledges-first",
    (setting) => workersPaidInC(setting, PLEDGE_SEND_RESERVE + 4, PLEDGES_PUSHED_ON_CONNECT + 1),
  ));

Deno.test("C lacks the stake of more workers of A's catch-up receipts than A pushes on connect: those left out are sent when C refuses their receipts insufficient_stake, and each honest worker is paid in C as in A", () =>
  inLedgerSetting(
    "s61-catch-up-pledges-needed",
    (setting) => workersPaidInC(setting, PLEDGES_PUSHED_ON_CONNECT + 4, 0),
  ));
