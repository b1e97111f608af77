/**
 * Fraud proofs in the ledger: what each settles, whatever the order and timing it comes in (late
 * proofs, proofs about receipts the ledger never recorded, variants, self-accusations), and the
 * receipts that are no proof's subject.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  assigned,
  receipt,
  receipt as fixtureReceipt,
  resigned,
  withLedgerDir,
} from "./_ledger_fixtures.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { join } from "node:path";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import {
  announce,
  type Evidence,
  feed,
  parties,
  pledge,
  proof,
  seeded,
  signedProof,
  WINDOW,
} from "./_convergence_world.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled } from "../../actors/validator_actor.ts";
import { eventually } from "../_helpers/wait.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";

const { v1, v2, w1, w2 } = parties;

// Fraud proofs about receipts a ledger has closed, inside their window: every ledger books the same
// accusations whatever the order they come in.
//
// - A receipt whose challenge here ended undecided (`unresolved`: not paid, its lock released)
//   still takes a peer's checked fraud proof, as it would have while pending. Every other ledger
//   settles that proof; this one used to refuse it (`not_pending`), so the cheat kept here the
//   stake it lost everywhere else.
// - A receipt already slashed still takes a refuted proof: its accuser pays here as in the ledgers
//   that checked that proof before the confirmed one (it used to pay only there).

const owner = Identity.generate();
const worker = Identity.generate();
const accuser = Identity.generate();
const SHORT_WINDOW = 100;

Deno.test("ledger: an unresolved receipt is slashed by a peer's confirmed proof inside its window, a refuted one costs its accuser, and past the window nothing settles; all of it survives a restart", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const options = { now: () => clock.t, economics: { challengeWindowMs: SHORT_WINDOW } };
  try {
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 1_000);
    await ledger.deposit(accuser.publicKey, 1_000);
    const [cheat, honest, late] = [
      fixtureReceipt(31, 4, worker),
      fixtureReceipt(32, 4, worker),
      fixtureReceipt(33, 4, worker),
    ];
    for (const r of [cheat, honest, late]) {
      await ledger.recordReceipt(r, assigned(r));
      await ledger.openChallenge(receiptId(r));
      await ledger.leaveUnresolved(receiptId(r), "restarted");
    }
    const lock = ledger.receipt(receiptId(cheat))!.locked;
    assert.ok(lock > 0);
    // Each lock is kept until its window ends: a proof can still convict it (review s79, F1).
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 1_000,
      locked: 3 * lock,
    });
    assert.equal(ledger.receipt(receiptId(cheat))!.status, "unpaid");

    const settle = (r: typeof cheat, confirmed: boolean, hash: string) =>
      ledger.settleFraud({
        receiptId: receiptId(r),
        fraudProofHash: hash.repeat(32),
        validator: accuser.publicKey,
        confirmed,
        reason: confirmed ? "fingerprint_mismatch" : "refuted",
      });
    await settle(cheat, true, "71");
    assert.equal(ledger.receipt(receiptId(cheat))!.status, "fraud");
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 1_000 - lock,
      locked: 2 * lock,
    });
    const reward = lock * DEFAULT_ECONOMICS.validatorRewardShare;
    assert.deepEqual(ledger.account(accuser.publicKey), {
      balance: reward,
      stake: 1_000,
      locked: 0,
    });
    await assert.rejects(() => settle(cheat, true, "72"), LedgerRejectedError, "settled once");

    await settle(honest, false, "73");
    assert.equal(ledger.receipt(receiptId(honest))!.status, "unpaid", "the work stays unpaid");
    const penalty = DEFAULT_ECONOMICS.falseAccusationPenalty;
    assert.equal(ledger.account(accuser.publicKey).stake, 1_000 - penalty);

    clock.t += SHORT_WINDOW + 1;
    await assert.rejects(
      () => settle(late, true, "74"),
      (e: unknown) => e instanceof LedgerRejectedError && e.code === "challenge_window_closed",
    );
    assert.deepEqual(await ledger.finalizeDue(), [], "nothing unpaid is paid at the window's end");
    // Released unpaid at the window's end.
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 1_000 - lock,
      locked: 0,
    });

    const accounts = [worker, accuser].map((k) => ledger.account(k.publicKey));
    const statuses = [cheat, honest, late].map((r) => ledger.receipt(receiptId(r))!.status);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual([worker, accuser].map((k) => ledger.account(k.publicKey)), accounts);
    assert.deepEqual(
      [cheat, honest, late].map((r) => ledger.receipt(receiptId(r))!.status),
      statuses,
    );
    assert.deepEqual(statuses, ["fraud", "unpaid", "unpaid"]);
    await ledger.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ledger: a refuted proof that comes after the receipt was slashed still costs its accuser; a second confirmed one settles nothing", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const options = { now: () => clock.t, economics: { challengeWindowMs: SHORT_WINDOW } };
  const liar = Identity.generate();
  try {
    const ledger = await Ledger.open(dir, owner, options);
    for (const key of [worker, accuser, liar]) await ledger.deposit(key.publicKey, 1_000);
    const cheat = fixtureReceipt(41, 4, worker);
    await ledger.recordReceipt(cheat, assigned(cheat));
    const settle = (by: Identity, confirmed: boolean, hash: string) =>
      ledger.settleFraud({
        receiptId: receiptId(cheat),
        fraudProofHash: hash.repeat(32),
        validator: by.publicKey,
        confirmed,
        reason: confirmed ? "fingerprint_mismatch" : "refuted",
      });
    await settle(accuser, true, "81");
    const worker1 = ledger.account(worker.publicKey);
    await settle(liar, false, "82");
    const penalty = DEFAULT_ECONOMICS.falseAccusationPenalty;
    assert.equal(ledger.account(liar.publicKey).stake, 1_000 - penalty);
    assert.equal(ledger.receipt(receiptId(cheat))!.status, "fraud");
    await assert.rejects(
      () => settle(Identity.generate(), true, "83"),
      (e: unknown) => e instanceof LedgerRejectedError && e.code === "not_pending",
    );
    assert.deepEqual(ledger.account(worker.publicKey), worker1, "slashed once");
    clock.t += SHORT_WINDOW + 1;
    const late = Identity.generate();
    await ledger.deposit(late.publicKey, 1_000);
    await assert.rejects(
      () => settle(late, false, "84"),
      (e: unknown) => e instanceof LedgerRejectedError && e.code === "challenge_window_closed",
    );
    await ledger.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Settlements the ledger took after a receipt's window because their proof was taken inside it
// (`FraudSettlement.takenAt`): reopened, the log replays to the same balances, and a receipt held
// unpaid for a refuted one is paid once, live or reopened.

Deno.test("settlements taken after the window by their takenAt replay to the same balances when the ledger is reopened, and the held receipt is paid once", () =>
  withLedgerDir(async (dir, clock) => {
    const options = { now: () => clock.t, economics: { challengeWindowMs: 100 } };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 10_000);
    await ledger.deposit(accuser.publicKey, 1_000);
    const [cheat, honest] = [receipt(1, 10, worker), receipt(2, 10, worker)];
    for (const r of [cheat, honest]) await ledger.recordReceipt(r, assigned(r));
    const takenAt = ledger.receipt(receiptId(cheat))!.pendingUntil - 1;
    clock.t = takenAt + 2; // the window has closed
    const held = new Set([receiptId(cheat), receiptId(honest)]);
    assert.deepEqual(await ledger.finalizeDue((id) => held.has(id)), [], "both held");
    for (const [r, confirmed, hash] of [[cheat, true, "71"], [honest, false, "72"]] as const) {
      await ledger.settleFraud({
        receiptId: receiptId(r),
        fraudProofHash: hash.repeat(32),
        validator: accuser.publicKey,
        confirmed,
        reason: confirmed ? "confirmed" : "not_reproduced",
        takenAt,
      });
    }
    const snapshot = () => ({
      worker: ledger.account(worker.publicKey),
      accuser: ledger.account(accuser.publicKey),
      cheat: ledger.receipt(receiptId(cheat))?.status,
      honest: ledger.receipt(receiptId(honest))?.status,
    });
    assert.deepEqual(await ledger.finalizeDue(), [receiptId(honest)], "the refuted one paid");
    assert.deepEqual(await ledger.finalizeDue(), [], "once");
    const live = snapshot();
    assert.equal(live.cheat, "fraud");
    assert.equal(live.honest, "final");
    await ledger.close();
    assert.ok((await verifyLedger(dir)).ok, "the log verifies");
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual(snapshot(), live, "reopened: the same");
    assert.deepEqual(await ledger.finalizeDue(), [], "nothing paid twice");
    await ledger.close();
  }));

// A worker's accusation of its own receipt is refused by the ledger itself (whoever calls
// `settleFraud`): refuted, it would buy a flat penalty in place of the receipt's checks; confirmed,
// a reward out of its own slash. Nothing moves.

Deno.test("ledger: a worker's fraud proof about its own receipt is refused, confirmed or refuted, and nothing moves", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), { now: () => clock.t });
    const worker = Identity.generate();
    await ledger.deposit(worker.publicKey, 10_000);
    const r = receipt(1, 10, worker);
    const record = await ledger.recordReceipt(r, assigned(r));
    for (const [confirmed, hash] of [[false, "44"], [true, "55"]] as const) {
      await assert.rejects(
        () =>
          ledger.settleFraud({
            receiptId: receiptId(r),
            fraudProofHash: hash.repeat(32),
            validator: worker.publicKey,
            confirmed,
            reason: confirmed ? "confirmed" : "not_reproduced",
          }),
        { code: "self_accusation" },
      );
    }
    assert.equal(ledger.receipt(receiptId(r))?.status, "pending");
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 10_000,
      locked: record.locked,
    });
    await ledger.close();
  }));

// A fraud proof about a receipt a ledger never recorded because another worker's receipt holds its
// job (the second of a job its requester assigned twice, a copier's after the worker's) settled
// nowhere there: the proven cheat kept its stake, or a false accuser its penalty, where the other
// receipt came first. Now it settles against that receipt itself, as where it was recorded: once,
// inside the job's window, replayed alike from the log.

/** A job its requester assigned to w1 and w2; w1 cheated (locks 140 where recorded). */
const g1 = receipt(6207, 7, w1);
const g2 = receipt(6207, 7, w2);
const pledges = [
  pledge("pledge w1", w1, 100_000),
  pledge("pledge w2", w2, 100_000),
  pledge("pledge v1", v1, 1_000),
  pledge("pledge v2", v2, 1_000),
];
const a1 = announce("w1", g1, true);
const a2 = announce("w2", g2, true);
const byV2 = proof("v2 on w1", signedProof(g1, 6207, v2), g1, v2, true);
const byV1 = proof("v1 on w1", signedProof(g1, 6207, v1), g1, v1, true);

const open = (dir: string, clock: { t: number }) =>
  Ledger.open(dir, seeded(90), { now: () => clock.t, economics: { challengeWindowMs: WINDOW } });

const account = (balance: number, stake: number) => ({ balance, stake, locked: 0 });

Deno.test("a proof about the second receipt of a job assigned twice convicts its worker once, in every order, and replays alike", async () => {
  const orders: Record<string, Evidence[]> = {
    "w1 → w2 → proof → proof": [...pledges, a1, a2, byV2, byV1],
    "w2 → w1 → proof → proof": [...pledges, a2, a1, byV2, byV1],
    "w2 → proof → w1 → proof": [...pledges, a2, byV2, a1, byV1],
  };
  for (const [name, order] of Object.entries(orders)) {
    await withLedgerDir(async (dir, clock) => {
      let ledger = await open(dir, clock);
      const log = await feed(ledger, clock, order);
      const end = () => ({
        w1: ledger.account(w1.publicKey),
        w2: ledger.account(w2.publicKey),
        v1: ledger.account(v1.publicKey),
        v2: ledger.account(v2.publicKey),
        convicted: ledger.convicted(w1.publicKey),
        status: ledger.receipt(receiptId(g1))?.status,
      });
      const expected = {
        w1: account(0, 100_000 - 140),
        // Neither worker of a job assigned twice is paid.
        w2: account(0, 100_000),
        v1: account(0, 1_000),
        v2: account(70, 1_000),
        convicted: true,
        status: "fraud",
      };
      assert.deepEqual(end(), expected, name);
      assert.equal(log.refused["v1 on w1"], "not_pending", `${name}: the second proof`);
      assert.deepEqual(log.neverReady, [], name);
      await ledger.close();
      // Replayed from the log, the index lost: the same.
      await Deno.remove(join(dir, INDEX_FILE));
      ledger = await open(dir, clock);
      assert.deepEqual(end(), expected, `${name}, replayed`);
      await ledger.close();
    });
  }
});

Deno.test("a proof about a receipt never recorded is refused after the window of the receipt holding its job", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    for (const e of [...pledges, a2, a1]) await e.deliver(ledger);
    clock.t += WINDOW + 1;
    assert.equal(await byV2.deliver(ledger), "challenge_window_closed");
    assert.deepEqual(ledger.account(w1.publicKey), account(0, 100_000));
    assert.equal(ledger.receipt(receiptId(g1)), undefined, "still not recorded");
    await ledger.close();
  });
});

Deno.test("a worker convicted for a receipt never recorded is slashed once for the job: a proof about another variant of it is refused, a refuted one still costs its accuser", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    // w1's variant of its receipt for the job (other fingerprints: the same claim).
    const g1b = resigned(g1, { commitment: { ...g1.commitment, root: "45".repeat(32) } }, w1);
    const onVariant = proof("v1 on w1's variant", signedProof(g1b, 6207, v1), g1b, v1, true);
    const falseOnVariant = proof("v1 false", signedProof(g1b, 6208, v1), g1b, v1, false);
    for (const e of [...pledges, a2, a1, byV2]) {
      assert.equal(await e.deliver(ledger), e === a1 ? "double_assignment" : undefined, e.name);
    }
    assert.equal(await onVariant.deliver(ledger), "not_pending", "slashed once for the job");
    assert.equal(await falseOnVariant.deliver(ledger), undefined);
    assert.deepEqual(ledger.account(w1.publicKey), account(0, 100_000 - 140));
    assert.deepEqual(ledger.account(v1.publicKey), account(0, 1_000 - 100));
    await ledger.close();
  });
});

// A proof about a receipt this ledger never recorded, because another worker's receipt holds its
// job, settles against the receipt it carries. Any key can sign a receipt for a job recorded here,
// a key with no stake too: the ledger would never record that receipt (its worker has no stake to
// lock), yet it took it as a fraud proof's subject, so every proof about one was checked (a forward
// pass each) and settled, slashing nothing, rewarding nothing, costing its accuser nothing, and
// writing a ledger entry and index rows. One staked accuser and free keys bought any number of
// re-executions. Now such a receipt is a subject only where it could have been recorded: its worker
// has the free stake to lock it.

Deno.test("a receipt of a key with no stake for a job another receipt holds is no fraud proof's subject: nothing to check, nothing written", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    const held = receipt(6290, 7, w1);
    for (
      const e of [pledge("w1", w1, 100_000), pledge("v1", v1, 1_000), announce("w1", held, true)]
    ) {
      assert.equal(await e.deliver(ledger), undefined, e.name);
    }
    const before = ledger.length;
    // Free keys, none pledged, each signing a made-up receipt for the job w1's receipt holds.
    for (let seed = 40; seed < 45; seed++) {
      const free = seeded(seed);
      const madeUp = receipt(6290, 1_000, free);
      assert.equal(ledger.fraudSubject(madeUp), undefined, `key ${seed}: worth no check`);
      const byV1 = proof(`v1 on key ${seed}`, signedProof(madeUp, 6290, v1), madeUp, v1, true);
      assert.equal(await byV1.deliver(ledger), "unknown_receipt", `key ${seed}`);
      assert.equal(ledger.receipt(receiptId(madeUp)), undefined);
    }
    assert.equal(ledger.length, before, "no entry written for them");
    assert.deepEqual(ledger.account(v1.publicKey), { balance: 0, stake: 1_000, locked: 0 });
    await ledger.close();
  });
});

Deno.test("a staked worker's receipt for a job another receipt holds is still a subject, and its conviction slashes it once", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    const held = receipt(6291, 7, w1);
    const second = receipt(6291, 7, w2);
    for (
      const e of [
        pledge("w1", w1, 100_000),
        pledge("w2", w2, 100_000),
        pledge("v1", v1, 1_000),
        announce("w1", held, true),
      ]
    ) assert.equal(await e.deliver(ledger), undefined, e.name);
    assert.notEqual(ledger.fraudSubject(second), undefined);
    const byV1 = proof("v1 on w2", signedProof(second, 6291, v1), second, v1, true);
    assert.equal(await byV1.deliver(ledger), undefined);
    assert.deepEqual(ledger.account(w2.publicKey), { balance: 0, stake: 100_000 - 140, locked: 0 });
    assert.deepEqual(ledger.account(v1.publicKey), { balance: 70, stake: 1_000, locked: 0 });
    await ledger.close();
  });
});

// Receipt variants across ledgers. A worker can sign several receipts for one job (the same claim
// re-signed with other fingerprints, or another output): each ledger records the first it sees and
// refuses the others (`job_already_recorded`, or `equivocation` when both reach one ledger). A
// fraud proof confirmed against variant B used to be held, on the ledger that recorded variant A,
// for a receipt that never comes there: that ledger paid the cheat. A confirmed proof about a
// receipt its worker signed for a job recorded with another receipt of that worker settles against
// the recorded one; a receipt another key signed never does. A proof that reaches a ledger before
// any variant records the variant it carries (review s73), the first that ledger sees.

const WORKER_STAKE = 100_000;
const ACCUSER_STAKE = 1_000;
const { defaultTokenPrice: PRICE, slashMultiplier: M, validatorRewardShare: SHARE } =
  DEFAULT_ECONOMICS;

/** A validator whose coin never challenges: only a peer's proof can convict here. */
async function setup() {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const accuser = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "receipt-variants" });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    models: HONEST_MODELS,
  });
  for (
    const [key, amount] of [[worker, WORKER_STAKE], [me, 1_000], [accuser, ACCUSER_STAKE]] as const
  ) {
    await validator.ask({ type: "deposit", key: key.publicKey, amount });
  }
  return {
    worker,
    requester,
    accuser,
    validator,
    ...ledgerReads(() => validator, clock),
    /**
     * `by` runs a job on another model than it names (a cheat) and signs two receipts for it:
     * `a`, and `b` claiming another output (what it sends another ledger). `proof` is a peer's
     * confirmed fraud proof against `b`, checked on the served proof data of the run.
     */
    async variants(by: Identity = worker, job = textJob(requester, `job-${crypto.randomUUID()}`)) {
      const proved = await proveOn(job, by, f.otherSeed);
      const a = proved.receipt;
      const b = resigned(a, { outputHash: "ee".repeat(32) }, by);
      const served = signServedProof(receiptId(b), proved.proof, by);
      const { fraudProof } = await validateReceipt(
        { job, receipt: b, proof: served.proof },
        f.honest,
        accuser,
      );
      assert.ok(fraudProof, "the variant is caught where it was sent");
      return { job, a, b, proof: fraudProof };
    },
    announce: (receipt: Receipt, job: ReturnType<typeof textJob>) =>
      announceAssigned(validator, receipt, job, requester, { issuedAt: START }),
    gossip: (proof: unknown) =>
      validator.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin: "cd".repeat(32) }),
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a confirmed proof against the worker's variant B of a job settles the ledger that recorded its variant A: slashed, not paid, the accuser rewarded", async () => {
  const t = await setup();
  try {
    const { job, a, proof } = await t.variants();
    assert.ok((await t.announce(a, job)).recorded);
    const handled = await t.gossip(proof);
    handled.result?.catch(() => {});
    if (handled.queued) assert.equal((await handled.result!).confirmed, true);
    await t.closeWindow();
    const slash = a.tokenCount * PRICE * M;
    assert.equal((await t.record(receiptId(a)))?.status, "fraud");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - slash,
      locked: 0,
    });
    assert.equal((await t.account(t.accuser.publicKey)).balance, slash * SHARE);
  } finally {
    await t.close();
  }
});

Deno.test("a proof against variant B that arrives before any variant is recorded records B from the proof and settles it; variant A, coming after, is refused", async () => {
  const t = await setup();
  try {
    const { job, a, b, proof } = await t.variants();
    // The proof carries B, signed by its worker: the ledger records it as it records any
    // announcement (review s73: a ledger that never saw the receipt settles as the others did),
    // so B is the first variant this ledger sees, as if B had been announced first.
    const handled = await t.gossip(proof);
    assert.equal(handled.awaitingReceipt, true);
    handled.result?.catch(() => {});
    await eventually(async () => (await t.record(receiptId(b)))?.status === "fraud", "B settled");
    await t.closeWindow();
    const slashed = { balance: 0, stake: WORKER_STAKE - b.tokenCount * PRICE * M, locked: 0 };
    assert.deepEqual(await t.account(t.worker.publicKey), slashed);
    // The other variant, arriving last, is refused: the worker is not slashed twice.
    assert.equal((await t.announce(a, job)).recorded, false);
    assert.deepEqual(await t.account(t.worker.publicKey), slashed);
  } finally {
    await t.close();
  }
});

Deno.test("a copier's variant of an honest worker's receipt convicts the copier, never the worker who did not sign it", async () => {
  const t = await setup();
  try {
    const copier = Identity.generate();
    const job = textJob(t.requester, "copied");
    const a = (await proveOn(job, t.worker)).receipt;
    // The copier signs a receipt for the same job under its own key, with a lie in it: caught.
    const { proof: copied } = await t.variants(copier, job);
    // Staked, as a receipt must be to be recorded anywhere (review s62 red team: a key with no
    // stake to lock its receipt is no proof's subject, else free keys buy checks for nothing).
    await t.validator.ask({ type: "deposit", key: copier.publicKey, amount: WORKER_STAKE });
    assert.ok((await t.announce(a, job)).recorded);
    const handled = await t.gossip(copied);
    // Checked against the copier's own receipt, never recorded here (the worker's holds the job),
    // and settled against it (review s62: before, it was not taken here at all).
    assert.equal(handled.queued, true, "checked against the copier's own receipt");
    assert.equal((await handled.result!).confirmed, true);
    await t.closeWindow();
    assert.equal((await t.record(receiptId(a)))?.status, "final");
    assert.equal((await t.account(t.worker.publicKey)).stake, WORKER_STAKE);
    assert.equal((await t.record(receiptId(copied.receipt)))?.status, "fraud", "the copier's");
    const copierLock = copied.receipt.tokenCount * PRICE * M;
    assert.equal((await t.account(copier.publicKey)).stake, WORKER_STAKE - copierLock);
  } finally {
    await t.close();
  }
});

const other = Identity.generate();

/** A ledger with `a` (worker's, job 1) recorded and stakes deposited. */
async function ledgerWith(dir: string, clock: { t: number }) {
  const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
  await ledger.deposit(worker.publicKey, 1_000_000);
  await ledger.deposit(accuser.publicKey, 1_000_000);
  return ledger;
}

Deno.test("the ledger settles a proof about the worker's variant against its recorded receipt, once; the same proof again is refused; a restart replays the outcome", async () => {
  await withLedgerDir(async (dir, clock) => {
    let ledger = await ledgerWith(dir, clock);
    const a = fixtureReceipt(4_601, 40, worker);
    const b = resigned(a, { commitment: { ...a.commitment, root: "44".repeat(32) } }, worker);
    const rec = await ledger.recordReceipt(a, assigned(a));
    await assert.rejects(ledger.recordReceipt(b, assigned(b)), LedgerRejectedError);
    const settlement = {
      receiptId: receiptId(b),
      receipt: b,
      fraudProofHash: "f1".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    };
    await ledger.settleFraud(settlement);
    assert.equal(ledger.receipt(rec.receiptId)?.status, "fraud");
    await assert.rejects(ledger.settleFraud(settlement), (e: LedgerRejectedError) => {
      assert.ok(["already_settled", "not_pending"].includes(e.code), e.code);
      return true;
    });
    clock.t += ledger.economics.challengeWindowMs + 1;
    await ledger.finalizeDue();
    const slash = rec.locked;
    const expected = { balance: 0, stake: 1_000_000 - slash, locked: 0 };
    assert.deepEqual(ledger.account(worker.publicKey), expected);
    assert.equal(ledger.account(accuser.publicKey).balance, slash * SHARE);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, { now: () => clock.t, checkpointEvery: 0 });
    assert.deepEqual(ledger.account(worker.publicKey), expected);
    assert.equal(ledger.receipt(rec.receiptId)?.status, "fraud");
    await ledger.close();
  });
});

Deno.test("the ledger never charges a worker for a variant it did not sign, nor for another job; another key's receipt for the job convicts that key (review s62); a refuted proof about a variant stays refuted", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await ledgerWith(dir, clock);
    await ledger.deposit(other.publicKey, 1_000_000);
    const a = fixtureReceipt(4_602, 40, worker);
    const rec = await ledger.recordReceipt(a, assigned(a));
    const base = {
      fraudProofHash: "f2".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "output_mismatch",
    };
    // Another key's receipt for the job: not the worker's signature.
    const copied = resigned(a, { outputHash: "55".repeat(32) }, other);
    // The worker's own signature over a receipt that names it, forged: the signature fails.
    const forged = { ...resigned(a, { outputHash: "66".repeat(32) }, worker) };
    forged.sig = new Uint8Array(forged.sig).map((x, i) => i === 0 ? x ^ 1 : x);
    // The worker's receipt for another job (not recorded here).
    const elsewhere = fixtureReceipt(4_603, 40, worker);
    for (const receipt of [forged, elsewhere]) {
      await assert.rejects(
        ledger.settleFraud({ ...base, receiptId: receiptId(receipt), receipt }),
        (e: LedgerRejectedError) => e.code === "unknown_receipt",
      );
    }
    // Another key's receipt for the job settles against itself, never recorded here (review
    // s62: before, nowhere where the worker's came first): its signer is slashed what it would
    // have locked, the worker's receipt untouched.
    const onCopied = await ledger.settleFraud({
      ...base,
      fraudProofHash: "f3".repeat(32),
      receiptId: receiptId(copied),
      receipt: copied,
    });
    assert.equal(onCopied.body.receiptId, receiptId(copied));
    assert.equal(ledger.account(other.publicKey).stake, 1_000_000 - rec.locked);
    assert.equal(ledger.receipt(receiptId(copied))?.status, "fraud");
    assert.equal(ledger.receipt(rec.receiptId)?.status, "pending");
    // A receipt that is not the one the settlement names.
    const b = resigned(a, { outputHash: "77".repeat(32) }, worker);
    await assert.rejects(
      ledger.settleFraud({ ...base, receiptId: receiptId(copied), receipt: b }),
      (e: LedgerRejectedError) => e.code === "unknown_receipt",
    );
    // Refuted: the accuser pays, the recorded receipt stays pending and is paid.
    await ledger.settleFraud({ ...base, confirmed: false, receiptId: receiptId(b), receipt: b });
    assert.equal(ledger.receipt(rec.receiptId)?.status, "pending");
    clock.t += ledger.economics.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.account(worker.publicKey).balance, rec.credit);
    assert.equal(
      ledger.account(accuser.publicKey).stake,
      1_000_000 - ledger.economics.falseAccusationPenalty,
    );
    assert.equal(ledger.account(accuser.publicKey).balance, rec.locked * SHARE);
    assert.equal(ledger.account(worker.publicKey).stake, 1_000_000);
    await ledger.close();
  });
});
